//! JSON rendering of protobuf messages with stable field names.
//!
//! The `bcfl` CLI's `--json` output and `audit export` render the family's state objects with
//! this module. The mapping is fixed and documented in `docs/cli.md`:
//!
//! - field names are the `.proto` field names (snake_case), every field is present;
//! - integers are JSON numbers (64-bit ones too; values above 2^53 lose nothing in Rust or Python
//!   readers, but JavaScript readers should beware);
//! - enums are their value names (`"FEDAVG"`), bytes are lowercase hex, except the bytes that
//!   hold small signed numbers one each (`sketch`, `coordinate_steps`:
//!   `bcfl_protos::signed_bytes`), which are arrays of those numbers;
//! - an unset message field is `null`; repeated fields are arrays.
//!
//! ```
//! use bcfl_protos::bcfl::{AggregationRule, Aggregate};
//!
//! let mut aggregate = Aggregate::new();
//! aggregate.set_round(2);
//! aggregate.set_rule(AggregationRule::FEDAVG);
//! let json = bcfl_ledger::json::message_to_json(&aggregate);
//! assert_eq!(json["round"], 2);
//! assert_eq!(json["rule"], "FEDAVG");
//! assert_eq!(json["committee"], serde_json::json!([]));
//! ```

use protobuf::descriptor::FieldDescriptorProto_Type as FieldType;
use protobuf::reflect::{FieldDescriptor, ReflectFieldRef, ReflectValueRef};
use protobuf::Message;
use serde_json::{Map, Value};

/// Renders a verdict as [`message_to_json`] does, with the committers its methods scored added
/// as `scored` (derived, not stored: `Verdict::scored()`), so that a reader can align each
/// method's `scores_micro` and `flagged` positions with members, and the members at the
/// `withdrawn` positions as `withdrawn_members`.
pub fn verdict_to_json(verdict: &bcfl_protos::bcfl::Verdict) -> Value {
    let mut json = message_to_json(verdict);
    json["scored"] = Value::from(verdict.scored());
    json["withdrawn_members"] = Value::from(verdict.withdrawn_members());
    json
}

/// `bytes` fields that hold one signed number per byte ([`bcfl_protos::signed_bytes`]).
const SIGNED_BYTES_FIELDS: [&str; 2] = ["sketch", "coordinate_steps"];

/// Renders any protobuf message as a JSON object (see the module docs for the mapping).
pub fn message_to_json(message: &dyn Message) -> Value {
    let mut object = Map::new();
    for field in message.descriptor().fields() {
        if field.proto().get_field_type() == FieldType::TYPE_BYTES
            && SIGNED_BYTES_FIELDS.contains(&field.name())
        {
            let bytes = match field.get_reflect(message) {
                ReflectFieldRef::Optional(Some(ReflectValueRef::Bytes(b))) => b,
                _ => &[],
            };
            let values = bcfl_protos::signed_bytes::unpack(bytes);
            object.insert(field.name().to_owned(), Value::from(values));
            continue;
        }
        let value = match field.get_reflect(message) {
            ReflectFieldRef::Optional(Some(value)) => value_to_json(value),
            ReflectFieldRef::Optional(None) => default_to_json(field, message),
            ReflectFieldRef::Repeated(list) => Value::Array(
                list.reflect_iter()
                    .map(|item| value_to_json(item.as_ref()))
                    .collect(),
            ),
            ReflectFieldRef::Map(map) => Value::Object(
                map.reflect_iter()
                    .map(|(k, v)| (key_text(k.as_ref()), value_to_json(v.as_ref())))
                    .collect(),
            ),
        };
        object.insert(field.name().to_owned(), value);
    }
    Value::Object(object)
}

fn value_to_json(value: ReflectValueRef<'_>) -> Value {
    match value {
        ReflectValueRef::U32(v) => Value::from(v),
        ReflectValueRef::U64(v) => Value::from(v),
        ReflectValueRef::I32(v) => Value::from(v),
        ReflectValueRef::I64(v) => Value::from(v),
        ReflectValueRef::F32(v) => Value::from(f64::from(v)),
        ReflectValueRef::F64(v) => Value::from(v),
        ReflectValueRef::Bool(v) => Value::from(v),
        ReflectValueRef::String(v) => Value::from(v),
        ReflectValueRef::Bytes(v) => Value::from(hex::encode(v)),
        ReflectValueRef::Enum(v) => Value::from(v.name()),
        ReflectValueRef::Message(m) => message_to_json(m),
    }
}

fn key_text(value: ReflectValueRef<'_>) -> String {
    match value_to_json(value) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The value of an unset singular field: proto3 defaults, `null` for messages.
fn default_to_json(field: &FieldDescriptor, message: &dyn Message) -> Value {
    match field.proto().get_field_type() {
        FieldType::TYPE_MESSAGE | FieldType::TYPE_GROUP => Value::Null,
        FieldType::TYPE_ENUM => Value::from(field.get_enum(message).name()),
        FieldType::TYPE_STRING => Value::from(""),
        FieldType::TYPE_BYTES => Value::from(""),
        FieldType::TYPE_BOOL => Value::from(false),
        FieldType::TYPE_DOUBLE | FieldType::TYPE_FLOAT => Value::from(0.0),
        _ => Value::from(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcfl_protos::bcfl::{
        AnomalyConfig, Consortium, ConsortiumParams, Feature, MethodVerdict, PageRankConfig,
        Verdict,
    };

    #[test]
    fn nested_messages_enums_and_defaults() {
        let mut params = ConsortiumParams::new();
        params.set_sketch_length(256);
        let mut anomaly = AnomalyConfig::new();
        let mut pagerank = PageRankConfig::new();
        pagerank.set_damping_ppm(850_000);
        anomaly.set_pagerank(pagerank);
        params.set_anomaly(anomaly);
        let mut consortium = Consortium::new();
        consortium.set_params(params);
        consortium.set_admin_keys(vec!["02aa".to_owned()].into());
        consortium.set_current_round(u64::MAX);

        let json = message_to_json(&consortium);
        assert_eq!(json["admin_keys"], serde_json::json!(["02aa"]));
        assert_eq!(json["current_round"], u64::MAX);
        assert_eq!(json["params"]["sketch_length"], 256);
        assert_eq!(json["params"]["aggregation_rule"], "AGGREGATION_RULE_UNSET");
        assert_eq!(
            json["params"]["anomaly"]["pagerank"]["damping_ppm"],
            850_000
        );
        assert_eq!(
            json["params"]["anomaly"]["pagerank"]["weight"],
            "PAGERANK_WEIGHT_UNSET"
        );
        assert_eq!(json["params"]["anomaly"]["dbscan"], Value::Null);
        assert_eq!(json["params"]["model_id"], "");
    }

    #[test]
    fn signed_and_repeated_enums() {
        let mut method = MethodVerdict::new();
        method.set_scores_micro(vec![-42, 7]);
        method.set_flagged(vec![0]);
        let mut verdict = Verdict::new();
        verdict.set_accepted(vec!["02bb".to_owned(), "02cc".to_owned()].into());
        verdict.set_methods(vec![method].into());
        let json = message_to_json(&verdict);
        assert_eq!(json["accepted"], serde_json::json!(["02bb", "02cc"]));
        assert_eq!(json.get("scored"), None);
        // With the derived list of the scored committers.
        verdict.set_excluded(vec!["02aa".to_owned()].into());
        let json = verdict_to_json(&verdict);
        assert_eq!(json["scored"], serde_json::json!(["02aa", "02bb", "02cc"]));
        assert_eq!(
            json["methods"][0]["scores_micro"],
            serde_json::json!([-42, 7])
        );
        assert_eq!(json["methods"][0]["flagged"], serde_json::json!([0]));
        assert_eq!(json["methods"][0]["method"], "ANOMALY_METHOD_UNSET");

        let mut z = bcfl_protos::bcfl::ZScoreConfig::new();
        z.set_features(vec![Feature::UPDATE_NORM, Feature::TRAINING_LOSS]);
        let json = message_to_json(&z);
        assert_eq!(
            json["features"],
            serde_json::json!(["UPDATE_NORM", "TRAINING_LOSS"])
        );
    }

    #[test]
    fn round_schedules_and_commitment_bases() {
        use bcfl_protos::bcfl::{Commitment, PrivacyGuarantee, Round, RoundSync};
        let round = Round {
            number: 3,
            sync: RoundSync::BUFFERED_ASYNC,
            buffer_size: 4,
            max_staleness: 2,
            privacy: vec![PrivacyGuarantee::SECURE_AGGREGATION],
            ..Default::default()
        };
        let json = message_to_json(&round);
        assert_eq!(json["sync"], "BUFFERED_ASYNC");
        assert_eq!(json["buffer_size"], 4);
        assert_eq!(json["max_staleness"], 2);
        assert_eq!(json["privacy"], serde_json::json!(["SECURE_AGGREGATION"]));
        let json = message_to_json(&Round::new());
        assert_eq!(json["sync"], "ROUND_SYNC_UNSET");
        assert_eq!(json["privacy"], serde_json::json!([]));
        let commitment = Commitment {
            round: 3,
            base_round: 2,
            staleness: 1,
            ..Default::default()
        };
        let json = message_to_json(&commitment);
        // Sketches and coordinate steps read as numbers, one per byte.
        assert_eq!(json["sketch"], serde_json::json!([]));
        let sketched = Commitment {
            sketch: vec![9, 0xfe, 0x7f, 0x80],
            coordinate_steps: vec![0xff],
            ..Default::default()
        };
        let numbers = message_to_json(&sketched);
        assert_eq!(numbers["sketch"], serde_json::json!([9, -2, 127, -128]));
        assert_eq!(numbers["coordinate_steps"], serde_json::json!([-1]));
        assert_eq!(json["base_round"], 2);
        assert_eq!(json["staleness"], 1);
    }
}
