//! Protobuf messages of the `bcfl` transaction family, version 1.0.
//!
//! `proto/bcfl.proto` is the source of truth: one [`bcfl::BcflPayload`] per transaction carrying
//! exactly one action, and the state objects the processor stores (consortium, members, rounds,
//! commitments, links, verdicts, aggregates). The Rust types are generated at build time with the
//! protobuf 2.x code generator, the same runtime `sawtooth-sdk` 0.5 uses, so one `protobuf`
//! crate serves both.
//!
//! Beside them, Sawtooth's own [`transaction`] and [`batch`] messages (the envelope every
//! client signs and the REST API takes), so that a client builds batches without linking the
//! Sawtooth SDK and its ZMQ transport.
//!
//! Encodings are canonical: proto3 with fields written in field-number order (rust-protobuf
//! writes them in declaration order, so every message declares its fields by number), and every
//! repeated key field kept sorted by the processor, so the same state always has the same bytes.
//! Repeated numbers and enumerations are packed, as proto3 specifies; rust-protobuf 2.28's
//! generator packs them only when the field says `[packed = true]`, so every such field in
//! `bcfl.proto` says it. Parsers accept both forms, as protobuf requires. Sketches and sampled
//! coordinate steps, small signed numbers, are `bytes` of one value each ([`signed_bytes`]).
//!
//! ```
//! use bcfl_protos::bcfl::{BcflPayload, CloseRound};
//! use protobuf::Message;
//!
//! let mut close = CloseRound::new();
//! close.set_round(3);
//! let mut payload = BcflPayload::new();
//! payload.set_close_round(close);
//! let bytes = payload.write_to_bytes().unwrap();
//! let back = BcflPayload::parse_from_bytes(&bytes).unwrap();
//! assert_eq!(back.get_close_round().get_round(), 3);
//! ```

/// Generated messages of `proto/bcfl.proto` (rust-protobuf 2.28 API: `get_*`/`set_*` accessors).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results,
    unused_parens,
    rust_2018_idioms,
    unknown_lints,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
pub mod bcfl {
    include!(concat!(env!("OUT_DIR"), "/bcfl_gen.rs"));
}

/// Sawtooth 1.2's `TransactionHeader`, `Transaction` and `TransactionList`
/// (`proto/sawtooth/transaction.proto`, copied unchanged from the Sawtooth SDK, Apache-2.0).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results,
    unused_parens,
    rust_2018_idioms,
    unknown_lints,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
pub mod transaction {
    include!(concat!(env!("OUT_DIR"), "/transaction_gen.rs"));
}

/// Sawtooth 1.2's `BatchHeader`, `Batch` and `BatchList` (`proto/sawtooth/batch.proto`, copied
/// unchanged from the Sawtooth SDK, Apache-2.0).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results,
    unused_parens,
    rust_2018_idioms,
    unknown_lints,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
pub mod batch {
    include!(concat!(env!("OUT_DIR"), "/batch_gen.rs"));
}

pub use protobuf;

pub mod compact;

/// Small signed integers stored one byte each in `bytes` fields (a commitment's `sketch` and
/// `coordinate_steps`): two's complement, [`signed_bytes::MIN`]..=[`signed_bytes::MAX`]. A packed
/// `sint32` took two bytes for every value beyond -64..=63.
///
/// ```
/// use bcfl_protos::signed_bytes::{pack, unpack};
///
/// assert_eq!(pack(&[0, 1, -1, 127, -128]), Some(vec![0, 1, 255, 127, 128]));
/// assert_eq!(unpack(&[0, 1, 255, 127, 128]), vec![0, 1, -1, 127, -128]);
/// assert_eq!(pack(&[128]), None);
/// ```
pub mod signed_bytes {
    /// The smallest value a byte holds.
    pub const MIN: i32 = i8::MIN as i32;
    /// The largest value a byte holds.
    pub const MAX: i32 = i8::MAX as i32;

    /// The values one byte each; `None` when one lies outside `MIN..=MAX`.
    pub fn pack<T: Copy + TryInto<i8>>(values: &[T]) -> Option<Vec<u8>> {
        values
            .iter()
            .map(|&v| v.try_into().ok().map(|b: i8| b as u8))
            .collect()
    }

    /// The values of bytes [`pack`] wrote (every byte is one).
    pub fn unpack(bytes: &[u8]) -> Vec<i32> {
        bytes.iter().map(|&b| i32::from(b as i8)).collect()
    }

    /// Bytes of values that are bytes already (the payload's typed sketches).
    pub fn from_i8(values: &[i8]) -> Vec<u8> {
        values.iter().map(|&v| v as u8).collect()
    }

    /// The values of the bytes as `i8`.
    pub fn to_i8(bytes: &[u8]) -> Vec<i8> {
        bytes.iter().map(|&b| b as i8).collect()
    }
}

impl bcfl::Commitment {
    /// The sketch's values, one per byte of `sketch` ([`signed_bytes`]).
    pub fn sketch_values(&self) -> Vec<i32> {
        signed_bytes::unpack(&self.sketch)
    }

    /// The round whose parent model the update was trained from: `base_round`, which the
    /// processor always writes, or the commitment's own round for one stored before it did.
    pub fn trained_from_round(&self) -> u64 {
        if self.base_round == 0 {
            self.round
        } else {
            self.base_round
        }
    }
}

impl bcfl::Verdict {
    /// The committers the anomaly methods scored, sorted: the accepted and the excluded that
    /// were neither disputed nor unrevealed (every `MethodVerdict`'s scores are aligned with
    /// them). The verdict stores each key once, in `accepted` or `excluded` (and `disputed` or
    /// `unrevealed`), so this list is
    /// derived rather than stored; without an anomaly configuration it is every committer not
    /// disputed, and no method scored them.
    pub fn scored(&self) -> Vec<String> {
        let excluded = self.excluded.iter().filter(|k| {
            self.disputed.binary_search(k).is_err() && self.unrevealed.binary_search(k).is_err()
        });
        let mut scored: Vec<String> = self.accepted.iter().chain(excluded).cloned().collect();
        scored.sort();
        scored
    }

    /// The verdict as the ledger stores it: `accepted` left empty, since it is the round's
    /// committers that are not `excluded` ([`Self::restored`] gives it back). Every key is then
    /// stored once a round, in the round's `committers`, and the verdict adds only the excluded.
    pub fn stored(&self) -> bcfl::Verdict {
        bcfl::Verdict {
            accepted: Vec::new().into(),
            ..self.clone()
        }
    }

    /// The verdict a stored one stands for, with `committers` its round's committers (sorted):
    /// `accepted` is every committer not `excluded`, sorted.
    pub fn restored(mut self, committers: &[String]) -> bcfl::Verdict {
        self.accepted = committers
            .iter()
            .filter(|k| self.excluded.binary_search(k).is_err())
            .cloned()
            .collect::<Vec<_>>()
            .into();
        self
    }

    /// The members whose commitment to the round before this verdict withdrew (`withdrawn`
    /// holds their positions among [`Self::scored`]), sorted; a position past the scored list
    /// names nobody.
    pub fn withdrawn_members(&self) -> Vec<String> {
        let scored = self.scored();
        self.withdrawn
            .iter()
            .filter_map(|&i| scored.get(i as usize).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::bcfl::{Commitment, Feature, Verdict, ZScoreConfig};
    use protobuf::Message;

    #[test]
    fn a_verdict_is_stored_without_its_accepted_and_restored_from_the_committers() {
        let keys = |v: &[&str]| -> Vec<String> { v.iter().map(|k| k.to_string()).collect() };
        let verdict = Verdict {
            round: 4,
            accepted: keys(&["a", "c", "e"]).into(),
            excluded: keys(&["b", "d"]).into(),
            disputed: keys(&["d"]).into(),
            withdrawn: vec![1],
            ..Default::default()
        };
        let stored = verdict.stored();
        assert!(stored.accepted.is_empty());
        assert!(stored.write_to_bytes().unwrap().len() < verdict.write_to_bytes().unwrap().len());
        let committers = keys(&["a", "b", "c", "d", "e"]);
        let restored = stored.restored(&committers);
        assert_eq!(restored, verdict);
        assert_eq!(restored.withdrawn_members(), keys(&["b"]));
    }

    #[test]
    fn a_commitment_reads_its_sketch_and_base_round() {
        let c = Commitment {
            round: 5,
            sketch: vec![1, 0xff, 0x80],
            ..Default::default()
        };
        assert_eq!(c.sketch_values(), vec![1, -1, -128]);
        assert_eq!(c.trained_from_round(), 5);
        let stale = Commitment { base_round: 3, ..c };
        assert_eq!(stale.trained_from_round(), 3);
    }

    #[test]
    fn a_verdict_scored_its_accepted_and_excluded_but_not_its_disputed() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let verdict = Verdict {
            accepted: keys(&["a", "d"]).into(),
            excluded: keys(&["b", "c", "e"]).into(),
            disputed: keys(&["c"]).into(),
            ..Default::default()
        };
        assert_eq!(verdict.scored(), keys(&["a", "b", "d", "e"]));
        assert!(Verdict::default().scored().is_empty());
        // Nobody left to score: every committer disputed.
        let all_disputed = Verdict {
            excluded: keys(&["x"]).into(),
            disputed: keys(&["x"]).into(),
            ..Default::default()
        };
        assert!(all_disputed.scored().is_empty());
    }

    /// One key byte (field number and wire type) of a length-delimited field: packed.
    fn packed_key(field: u32) -> u8 {
        (field << 3 | 2) as u8
    }

    #[test]
    fn repeated_numbers_are_packed_and_unpacked_ones_still_parse() {
        // Sketches and coordinate steps are bytes: one per value, whatever its sign.
        let commitment = Commitment {
            sketch: super::signed_bytes::pack(&[1; 256]).unwrap(),
            coordinate_step_nano: 1,
            coordinate_steps: super::signed_bytes::pack(&[-1, 127, -128, 0]).unwrap(),
            ..Default::default()
        };
        let bytes = commitment.write_to_bytes().unwrap();
        // Field 14 (the step, a key and a varint), then field 16 (the sketch: a two-byte key,
        // a two-byte length, 256 bytes) and field 17 (the steps).
        assert_eq!(&bytes[..2], &[14 << 3, 1]);
        assert_eq!(&bytes[2..6], &[0x82, 0x01, 0x80, 0x02]);
        assert_eq!(&bytes[262..], &[0x8a, 0x01, 4, 0xff, 0x7f, 0x80, 0x00]);
        assert_eq!(Commitment::parse_from_bytes(&bytes).unwrap(), commitment);

        // Repeated numbers are packed; the unpacked form (one key per value) parses alike.
        let zscore = ZScoreConfig {
            features: vec![Feature::UPDATE_NORM, Feature::SKETCH_COSINE_DISTANCE],
            ..Default::default()
        };
        let packed = zscore.write_to_bytes().unwrap();
        assert_eq!(packed[0], packed_key(2));
        let mut unpacked = Vec::new();
        for f in &zscore.features {
            unpacked.extend([2 << 3, *f as u8]);
        }
        assert_eq!(ZScoreConfig::parse_from_bytes(&unpacked).unwrap(), zscore);
    }
}
