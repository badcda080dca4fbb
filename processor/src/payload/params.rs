//! Validation of `ConsortiumParams` (the settings `InitConsortium` fixes for the consortium's
//! life).
//!
//! The result is the canonical form that is stored: feature lists sorted. Every bound is listed in
//! `docs/transaction-family.md`.

use bcfl_protos::bcfl as pb;

use super::fields::{check_text, Sha256Hash};
use super::{field, invalid, reject_unknown_fields, PayloadError};
use crate::anomaly::voting_features;
use crate::limits::{
    MAX_ASCENT_RESPONSE_PPM, MAX_COMMITTEE, MAX_COORDINATE_SAMPLES, MAX_DUPLICATE_DISTANCE_PPM,
    MAX_FEATURES, MAX_INCONSISTENT_COSINE_PPM, MAX_MEMBERS, MAX_MISLABELLED_MARGIN_PPM,
    MAX_MODEL_ID_CHARS, MAX_OPPOSED_DISTANCE_PPM, MAX_OVERSIZED_RESIDUAL_PPM,
    MAX_PAGERANK_ITERATIONS, MAX_RESENT_DISTANCE_PPM, MAX_ROUND_COMMITTERS, MAX_SKETCH_LENGTH,
    MAX_THRESHOLD_PPM, MAX_UNCHANGED_RATIO_PPM, MIN_MEAN_COPY_COSINE_PPM, MIN_OPPOSED_DISTANCE_PPM,
    MIN_OVERSIZED_RESIDUAL_PPM, PPM,
};

fn in_range(name: &'static str, value: u32, low: u32, high: u32) -> Result<(), PayloadError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            name,
            format!("must be in {low}..={high}, got {value}"),
        ))
    }
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Validates and canonicalizes consortium parameters: what `InitConsortium` stores, or why it
/// refuses them (clients check their parameters with it before sending anything).
pub fn validate_params(
    params: &pb::ConsortiumParams,
) -> Result<pb::ConsortiumParams, PayloadError> {
    reject_unknown_fields(params, "init_consortium.params")?;
    let mut out = params.clone();
    in_range(
        "params.min_participants",
        params.min_participants,
        1,
        as_u32(MAX_MEMBERS),
    )?;
    let quorum_max = params.min_participants.min(as_u32(MAX_ROUND_COMMITTERS));
    in_range("params.commit_quorum", params.commit_quorum, 1, quorum_max)?;
    check_rule(params)?;
    field(
        "params.model_id",
        check_text(&params.model_id, MAX_MODEL_ID_CHARS),
    )?;
    field(
        "params.base_model_sha256",
        Sha256Hash::parse(&params.base_model_sha256),
    )?;
    if !params.initial_model_sha256.is_empty() {
        field(
            "params.initial_model_sha256",
            Sha256Hash::parse(&params.initial_model_sha256),
        )?;
    }
    in_range(
        "params.sketch_length",
        params.sketch_length,
        1,
        as_u32(MAX_SKETCH_LENGTH),
    )?;
    in_range(
        "params.committee_size",
        params.committee_size,
        0,
        as_u32(MAX_COMMITTEE),
    )?;
    if params.link_agreement_ppm != 0 {
        in_range(
            "params.link_agreement_ppm",
            params.link_agreement_ppm,
            PPM,
            MAX_THRESHOLD_PPM,
        )?;
    }
    in_range("params.sample_ppm", params.sample_ppm, 0, PPM)?;
    in_range(
        "params.coordinate_samples",
        params.coordinate_samples,
        0,
        as_u32(MAX_COORDINATE_SAMPLES),
    )?;
    if params.has_anomaly() {
        let anomaly = validate_anomaly(params.get_anomaly())?;
        let reads_coordinates = anomaly.has_resent()
            || anomaly.has_inconsistent()
            || anomaly.has_ascent()
            || anomaly.has_mislabelled()
            || voting_features(&anomaly).any(|f| {
                matches!(
                    f,
                    pb::Feature::COORDINATE_SIGN_BALANCE
                        | pb::Feature::PREVIOUS_CHANGE_DISTANCE
                        | pb::Feature::OWN_CHANGE_COSINE
                        | pb::Feature::MOVE_RESPONSE
                        | pb::Feature::REFERENCE_MARGIN
                )
            });
        if reads_coordinates && params.coordinate_samples == 0 {
            return Err(invalid(
                "params.coordinate_samples",
                "must be at least 1 when a method uses sampled coordinates \
                 (COORDINATE_SIGN_BALANCE, PREVIOUS_CHANGE_DISTANCE, OWN_CHANGE_COSINE, \
                 MOVE_RESPONSE, REFERENCE_MARGIN)"
                    .into(),
            ));
        }
        let reference = anomaly.get_mislabelled().reference_steps.len();
        if anomaly.has_mislabelled() && reference != params.coordinate_samples as usize {
            return Err(invalid(
                "params.anomaly.mislabelled.reference_steps",
                format!(
                    "must hold one value per sampled coordinate ({}), got {reference}",
                    params.coordinate_samples
                ),
            ));
        }
        *out.mut_anomaly() = anomaly;
    }
    Ok(out)
}

/// A method configured by one limit: no unknown fields, and the limit `(value, low, high)` in
/// `low..=high`.
fn check_limit<M: protobuf::Message>(
    config: &M,
    message: &'static str,
    field: &'static str,
    (value, low, high): (u32, u32, u32),
) -> Result<(), PayloadError> {
    reject_unknown_fields(config, message)?;
    in_range(field, value, low, high)
}

fn check_rule(params: &pb::ConsortiumParams) -> Result<(), PayloadError> {
    use pb::AggregationRule::*;
    let rule = params.aggregation_rule;
    if rule == AGGREGATION_RULE_UNSET {
        return Err(invalid("params.aggregation_rule", "must be set".into()));
    }
    if rule == TRIMMED_MEAN {
        in_range("params.trim_ppm", params.trim_ppm, 1, PPM / 2 - 1)?;
    } else if params.trim_ppm != 0 {
        return Err(invalid(
            "params.trim_ppm",
            "must be 0 unless the rule is TRIMMED_MEAN".into(),
        ));
    }
    let f = params.krum_byzantine;
    match rule {
        KRUM | MULTI_KRUM => {
            let needed = f.saturating_mul(2).saturating_add(3);
            if params.commit_quorum < needed {
                return Err(invalid(
                    "params.krum_byzantine",
                    format!("Krum needs commit_quorum >= 2f + 3 = {needed}"),
                ));
            }
            if rule == KRUM && params.krum_select != 0 {
                return Err(invalid(
                    "params.krum_select",
                    "must be 0 for KRUM (it selects one update)".into(),
                ));
            }
            if rule == MULTI_KRUM {
                in_range(
                    "params.krum_select",
                    params.krum_select,
                    1,
                    params.commit_quorum - f,
                )?;
            }
        }
        _ if f != 0 || params.krum_select != 0 => {
            return Err(invalid(
                "params.krum_byzantine",
                "krum_byzantine and krum_select must be 0 unless the rule is KRUM or MULTI_KRUM"
                    .into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn validate_features(
    name: &'static str,
    features: &[pb::Feature],
) -> Result<Vec<pb::Feature>, PayloadError> {
    if features.is_empty() || features.len() > MAX_FEATURES {
        return Err(invalid(
            name,
            format!("must list 1..={MAX_FEATURES} features"),
        ));
    }
    if features.contains(&pb::Feature::FEATURE_UNSET) {
        return Err(invalid(name, "must not contain FEATURE_UNSET".into()));
    }
    let mut sorted = features.to_vec();
    sorted.sort_by_key(|f| *f as i32);
    sorted.dedup();
    if sorted.len() != features.len() {
        return Err(invalid(name, "must not repeat a feature".into()));
    }
    Ok(sorted)
}

fn validate_anomaly(anomaly: &pb::AnomalyConfig) -> Result<pb::AnomalyConfig, PayloadError> {
    reject_unknown_fields(anomaly, "params.anomaly")?;
    let mut out = anomaly.clone();
    let mut methods = 0;
    if anomaly.has_pagerank() {
        methods += 1;
        let p = anomaly.get_pagerank();
        reject_unknown_fields(p, "params.anomaly.pagerank")?;
        in_range("pagerank.damping_ppm", p.damping_ppm, 1, PPM - 1)?;
        in_range("pagerank.k_ppm", p.k_ppm, 1, MAX_THRESHOLD_PPM)?;
        if p.weight == pb::PageRankWeight::PAGERANK_WEIGHT_UNSET {
            return Err(invalid("pagerank.weight", "must be set".into()));
        }
        in_range(
            "pagerank.max_iterations",
            p.max_iterations,
            1,
            MAX_PAGERANK_ITERATIONS,
        )?;
        in_range("pagerank.tolerance_ppb", p.tolerance_ppb, 1, 1_000_000_000)?;
    }
    if anomaly.has_dbscan() {
        methods += 1;
        let d = anomaly.get_dbscan();
        reject_unknown_fields(d, "params.anomaly.dbscan")?;
        in_range("dbscan.eps_ppm", d.eps_ppm, 1, MAX_THRESHOLD_PPM)?;
        in_range(
            "dbscan.min_points",
            d.min_points,
            1,
            as_u32(MAX_ROUND_COMMITTERS),
        )?;
        out.mut_dbscan().features = validate_features("dbscan.features", &d.features)?;
    }
    if anomaly.has_zscore() {
        methods += 1;
        let z = anomaly.get_zscore();
        reject_unknown_fields(z, "params.anomaly.zscore")?;
        in_range(
            "zscore.threshold_ppm",
            z.threshold_ppm,
            1,
            MAX_THRESHOLD_PPM,
        )?;
        out.mut_zscore().features = validate_features("zscore.features", &z.features)?;
    }
    // The methods that exclude on their own: one limit each.
    if anomaly.has_duplicate() {
        let d = anomaly.get_duplicate();
        let limit = (d.max_distance_ppm, 1, MAX_DUPLICATE_DISTANCE_PPM);
        check_limit(
            d,
            "params.anomaly.duplicate",
            "duplicate.max_distance_ppm",
            limit,
        )?;
    }
    if anomaly.has_unchanged() {
        let u = anomaly.get_unchanged();
        let limit = (u.max_norm_ratio_ppm, 0, MAX_UNCHANGED_RATIO_PPM);
        check_limit(
            u,
            "params.anomaly.unchanged",
            "unchanged.max_norm_ratio_ppm",
            limit,
        )?;
    }
    if anomaly.has_resent() {
        let r = anomaly.get_resent();
        let limit = (r.max_distance_ppm, 1, MAX_RESENT_DISTANCE_PPM);
        check_limit(r, "params.anomaly.resent", "resent.max_distance_ppm", limit)?;
    }
    if anomaly.has_inconsistent() {
        let i = anomaly.get_inconsistent();
        let limit = (i.min_cosine_ppm, 1, MAX_INCONSISTENT_COSINE_PPM);
        check_limit(
            i,
            "params.anomaly.inconsistent",
            "inconsistent.min_cosine_ppm",
            limit,
        )?;
    }
    if anomaly.has_opposed() {
        let o = anomaly.get_opposed();
        let limit = (
            o.min_distance_ppm,
            MIN_OPPOSED_DISTANCE_PPM,
            MAX_OPPOSED_DISTANCE_PPM,
        );
        check_limit(
            o,
            "params.anomaly.opposed",
            "opposed.min_distance_ppm",
            limit,
        )?;
    }
    if anomaly.has_ascent() {
        let a = anomaly.get_ascent();
        let limit = (a.max_response_ppm, 0, MAX_ASCENT_RESPONSE_PPM);
        check_limit(a, "params.anomaly.ascent", "ascent.max_response_ppm", limit)?;
    }
    if anomaly.has_mislabelled() {
        let m = anomaly.get_mislabelled();
        reject_unknown_fields(m, "params.anomaly.mislabelled")?;
        if m.min_margin_ppm.abs() > MAX_MISLABELLED_MARGIN_PPM {
            return Err(invalid(
                "mislabelled.min_margin_ppm",
                format!(
                    "must be in -{MAX_MISLABELLED_MARGIN_PPM}..={MAX_MISLABELLED_MARGIN_PPM}, got {}",
                    m.min_margin_ppm
                ),
            ));
        }
        if crate::anomaly::features::covered_positions(&m.reference_steps) == 0 {
            return Err(invalid(
                "mislabelled.reference_steps",
                "must hold a non-zero direction at some position it covers".into(),
            ));
        }
    }
    if anomaly.has_oversized() {
        let o = anomaly.get_oversized();
        let limit = (
            o.min_residual_ppm,
            MIN_OVERSIZED_RESIDUAL_PPM,
            MAX_OVERSIZED_RESIDUAL_PPM,
        );
        check_limit(
            o,
            "params.anomaly.oversized",
            "oversized.min_residual_ppm",
            limit,
        )?;
    }
    if anomaly.has_mean_copy() {
        let m = anomaly.get_mean_copy();
        let limit = (m.min_cosine_ppm, MIN_MEAN_COPY_COSINE_PPM, PPM);
        check_limit(
            m,
            "params.anomaly.mean_copy",
            "mean_copy.min_cosine_ppm",
            limit,
        )?;
    }
    let margin_votes = voting_features(anomaly).any(|f| *f == pb::Feature::REFERENCE_MARGIN);
    if margin_votes && !anomaly.has_mislabelled() {
        return Err(invalid(
            "params.anomaly",
            "REFERENCE_MARGIN needs the mislabelled method's reference_steps".into(),
        ));
    }
    if anomaly.withdraw && !(anomaly.has_inconsistent() || anomaly.has_ascent()) {
        return Err(invalid(
            "params.anomaly.withdraw",
            "needs the inconsistent-change or ascent method, whose flags it acts on".into(),
        ));
    }
    let evidence = anomaly.has_duplicate()
        || anomaly.has_unchanged()
        || anomaly.has_resent()
        || anomaly.has_inconsistent()
        || anomaly.has_opposed()
        || anomaly.has_ascent()
        || anomaly.has_mislabelled()
        || anomaly.has_oversized()
        || anomaly.has_mean_copy();
    if methods == 0 && !evidence {
        return Err(invalid(
            "params.anomaly",
            "configures no method; omit it to disable anomaly evaluation".into(),
        ));
    }
    in_range(
        "anomaly.ensemble_min_votes",
        anomaly.ensemble_min_votes,
        0,
        methods,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sane() -> pb::ConsortiumParams {
        pb::ConsortiumParams {
            min_participants: 3,
            commit_quorum: 2,
            aggregation_rule: pb::AggregationRule::FEDAVG,
            model_id: "sentence-transformers/all-MiniLM-L6-v2".into(),
            base_model_sha256: "ab".repeat(32),
            sketch_length: 8,
            ..Default::default()
        }
    }

    fn err(p: &pb::ConsortiumParams) -> String {
        validate_params(p).unwrap_err().to_string()
    }

    #[test]
    fn sane_params_pass() {
        assert_eq!(validate_params(&sane()).unwrap(), sane());
    }

    /// Either scope of the sampled coordinates passes and is kept; a value the family does not
    /// know is refused as an unknown enum value.
    #[test]
    fn the_coordinate_scope_is_one_the_family_knows() {
        use protobuf::Message as _;
        let mut p = sane();
        p.coordinate_samples = 16;
        p.coordinate_scope = pb::CoordinateScope::CLASSIFIER_HEAD;
        assert_eq!(validate_params(&p).unwrap(), p);
        p.coordinate_scope = pb::CoordinateScope::EVERY_TENSOR;
        assert_eq!(validate_params(&p).unwrap(), p);
        // Field 17, varint 7.
        let mut bytes = sane().write_to_bytes().unwrap();
        bytes.extend_from_slice(&[0x88, 0x01, 0x07]);
        let unknown = pb::ConsortiumParams::parse_from_bytes(&bytes).unwrap();
        assert_eq!(
            err(&unknown),
            "init_consortium.params carries unknown fields or enum values"
        );
    }

    #[test]
    fn counts_and_lengths() {
        let mut p = sane();
        p.commit_quorum = 0;
        assert!(err(&p).contains("params.commit_quorum: must be in 1..=3"));
        p.commit_quorum = 4;
        assert!(err(&p).contains("params.commit_quorum"));
        let mut p = sane();
        p.min_participants = 0;
        assert!(err(&p).contains("params.min_participants"));
        let mut p = sane();
        p.sample_ppm = PPM + 1;
        assert!(err(&p).contains("params.sample_ppm: must be in 0..=1000000, got 1000001"));
        p.sample_ppm = PPM;
        assert!(validate_params(&p).is_ok());
        let mut p = sane();
        p.coordinate_samples = 4097;
        assert!(err(&p).contains("params.coordinate_samples: must be in 0..=4096, got 4097"));
        p.coordinate_samples = 4096;
        assert!(validate_params(&p).is_ok());
        let mut p = sane();
        p.sketch_length = 4097;
        assert!(err(&p).contains("params.sketch_length: must be in 1..=4096, got 4097"));
        let mut p = sane();
        p.base_model_sha256 = "xyz".into();
        assert!(err(&p).contains("params.base_model_sha256"));
        let mut p = sane();
        p.initial_model_sha256 = "AB".repeat(32);
        assert_eq!(
            err(&p),
            "params.initial_model_sha256: must be 64 lowercase hex characters (a SHA-256 digest)"
        );
        p.initial_model_sha256 = "cd".repeat(32);
        assert_eq!(validate_params(&p).unwrap(), p);
        let mut p = sane();
        p.model_id.clear();
        assert!(err(&p).contains("params.model_id: must not be empty"));
    }

    #[test]
    fn rule_specific_fields() {
        let mut p = sane();
        p.aggregation_rule = pb::AggregationRule::AGGREGATION_RULE_UNSET;
        assert!(err(&p).contains("aggregation_rule: must be set"));
        let mut p = sane();
        p.trim_ppm = 10;
        assert!(err(&p).contains("must be 0 unless the rule is TRIMMED_MEAN"));
        p.aggregation_rule = pb::AggregationRule::TRIMMED_MEAN;
        assert!(validate_params(&p).is_ok());
        p.trim_ppm = 500_000;
        assert!(err(&p).contains("params.trim_ppm"));
        let mut p = sane();
        p.aggregation_rule = pb::AggregationRule::MULTI_KRUM;
        p.min_participants = 7;
        p.commit_quorum = 5;
        p.krum_byzantine = 1;
        p.krum_select = 4;
        assert!(validate_params(&p).is_ok());
        p.krum_select = 5;
        assert!(err(&p).contains("params.krum_select: must be in 1..=4"));
        p.krum_byzantine = 2;
        assert!(err(&p).contains("2f + 3 = 7"));
    }

    #[test]
    fn the_coordinate_feature_needs_sampled_coordinates() {
        let mut p = sane();
        let z = p.mut_anomaly().mut_zscore();
        z.threshold_ppm = 3_500_000;
        z.features = vec![
            pb::Feature::UPDATE_NORM,
            pb::Feature::COORDINATE_SIGN_BALANCE,
        ];
        let message = "params.coordinate_samples: must be at least 1 when a method uses \
                       sampled coordinates (COORDINATE_SIGN_BALANCE, PREVIOUS_CHANGE_DISTANCE, \
                       OWN_CHANGE_COSINE, MOVE_RESPONSE, REFERENCE_MARGIN)";
        assert_eq!(err(&p), message);
        p.mut_anomaly().mut_zscore().features = vec![pb::Feature::PREVIOUS_CHANGE_DISTANCE];
        assert_eq!(err(&p), message);
        p.mut_anomaly().mut_zscore().features = vec![pb::Feature::OWN_CHANGE_COSINE];
        assert_eq!(err(&p), message);
        p.coordinate_samples = 64;
        assert!(validate_params(&p).is_ok());
    }

    #[test]
    fn the_every_attack_preset_is_valid_with_coordinates_only() {
        let mut p = sane();
        p.set_anomaly(crate::anomaly::every_attack_config());
        assert!(err(&p).contains("params.coordinate_samples: must be at least 1"));
        p.coordinate_samples = crate::anomaly::EVERY_ATTACK_COORDINATE_SAMPLES;
        let out = validate_params(&p).unwrap();
        assert_eq!(out.get_anomaly(), &crate::anomaly::every_attack_config());
    }

    #[test]
    fn anomaly_config() {
        let mut p = sane();
        p.mut_anomaly();
        assert!(err(&p).contains("configures no method"));
        let z = p.mut_anomaly().mut_zscore();
        z.threshold_ppm = 3_500_000;
        z.features = vec![pb::Feature::UPDATE_NORM, pb::Feature::TRAINING_LOSS];
        let out = validate_params(&p).unwrap();
        assert_eq!(out.get_anomaly().get_zscore().features.len(), 2);
        p.mut_anomaly().mut_zscore().features = vec![
            pb::Feature::TRAINING_LOSS,
            pb::Feature::UPDATE_NORM,
            pb::Feature::TRAINING_LOSS,
        ];
        assert!(err(&p).contains("must not repeat a feature"));
        p.mut_anomaly().mut_zscore().features =
            vec![pb::Feature::TRAINING_LOSS, pb::Feature::UPDATE_NORM];
        let sorted = validate_params(&p).unwrap();
        assert_eq!(
            sorted.get_anomaly().get_zscore().features,
            vec![pb::Feature::UPDATE_NORM, pb::Feature::TRAINING_LOSS]
        );
        p.mut_anomaly().ensemble_min_votes = 2;
        assert!(err(&p).contains("anomaly.ensemble_min_votes: must be in 0..=1"));
        p.mut_anomaly().ensemble_min_votes = 0;
        p.mut_anomaly().mut_pagerank().damping_ppm = 1_000_000;
        assert!(err(&p).contains("pagerank.damping_ppm"));
    }

    #[test]
    fn duplicate_config() {
        let mut p = sane();
        // The duplicate method alone is a configuration; it casts no vote.
        p.mut_anomaly().mut_duplicate().max_distance_ppm = 1_000;
        assert_eq!(validate_params(&p).unwrap(), p);
        p.mut_anomaly().ensemble_min_votes = 1;
        assert!(err(&p).contains("anomaly.ensemble_min_votes: must be in 0..=0"));
        p.mut_anomaly().ensemble_min_votes = 0;
        for bad in [0, MAX_DUPLICATE_DISTANCE_PPM + 1] {
            p.mut_anomaly().mut_duplicate().max_distance_ppm = bad;
            assert!(err(&p).contains("duplicate.max_distance_ppm"), "{bad}");
        }
        p.mut_anomaly().mut_duplicate().max_distance_ppm = MAX_DUPLICATE_DISTANCE_PPM;
        assert!(validate_params(&p).is_ok());
    }

    #[test]
    fn unchanged_config() {
        let mut p = sane();
        // The unchanged-update method alone is a configuration; it casts no vote. Ratio 0
        // flags only a zero norm, and is allowed.
        for ratio in [0, 10_000, MAX_UNCHANGED_RATIO_PPM] {
            p.mut_anomaly().mut_unchanged().max_norm_ratio_ppm = ratio;
            assert_eq!(validate_params(&p).unwrap(), p);
        }
        p.mut_anomaly().ensemble_min_votes = 1;
        assert!(err(&p).contains("anomaly.ensemble_min_votes: must be in 0..=0"));
        p.mut_anomaly().ensemble_min_votes = 0;
        p.mut_anomaly().mut_unchanged().max_norm_ratio_ppm = MAX_UNCHANGED_RATIO_PPM + 1;
        assert!(err(&p).contains("unchanged.max_norm_ratio_ppm"));
    }

    /// The resent-change, inconsistent-change and ascent methods: each alone is a
    /// configuration, casting no vote, needs sampled coordinates and keeps its limit within the
    /// processor's bounds.
    #[test]
    fn coordinate_method_configs() {
        type Set = fn(&mut pb::AnomalyConfig, u32);
        let methods: [(Set, &str, u32, u32); 3] = [
            (
                |a, v| a.mut_resent().max_distance_ppm = v,
                "resent.max_distance_ppm",
                1,
                MAX_RESENT_DISTANCE_PPM,
            ),
            (
                |a, v| a.mut_inconsistent().min_cosine_ppm = v,
                "inconsistent.min_cosine_ppm",
                1,
                MAX_INCONSISTENT_COSINE_PPM,
            ),
            (
                |a, v| a.mut_ascent().max_response_ppm = v,
                "ascent.max_response_ppm",
                0,
                MAX_ASCENT_RESPONSE_PPM,
            ),
        ];
        for (set, field, min, max) in methods {
            let mut p = sane();
            set(p.mut_anomaly(), max / 2);
            assert!(err(&p).contains("params.coordinate_samples: must be at least 1"));
            p.coordinate_samples = 64;
            assert_eq!(validate_params(&p).unwrap(), p);
            p.mut_anomaly().ensemble_min_votes = 1;
            assert!(err(&p).contains("anomaly.ensemble_min_votes: must be in 0..=0"));
            p.mut_anomaly().ensemble_min_votes = 0;
            for bad in min.checked_sub(1).into_iter().chain([max + 1]) {
                set(p.mut_anomaly(), bad);
                assert!(err(&p).contains(field), "{field} {bad}");
            }
            for good in [min, max] {
                set(p.mut_anomaly(), good);
                assert!(validate_params(&p).is_ok(), "{field} {good}");
            }
        }
    }

    /// The mislabelled-change method: alone a configuration casting no vote; its reference
    /// holds one non-zero direction of exactly the consortium's sampled coordinates, its limit
    /// lies within half either side of 0; the margin as a voting feature needs the reference.
    #[test]
    fn mislabelled_config() {
        let mut p = sane();
        p.mut_anomaly().mut_mislabelled().reference_steps = vec![1, 255, 0, 3];
        assert!(err(&p).contains("params.coordinate_samples: must be at least 1"));
        p.coordinate_samples = 3;
        assert!(err(&p).contains("must hold one value per sampled coordinate (3), got 4"));
        p.coordinate_samples = 4;
        assert_eq!(validate_params(&p).unwrap(), p);
        p.mut_anomaly().ensemble_min_votes = 1;
        assert!(err(&p).contains("anomaly.ensemble_min_votes: must be in 0..=0"));
        p.mut_anomaly().ensemble_min_votes = 0;
        for (margin, ok) in [
            (-MAX_MISLABELLED_MARGIN_PPM - 1, false),
            (-MAX_MISLABELLED_MARGIN_PPM, true),
            (MAX_MISLABELLED_MARGIN_PPM, true),
            (MAX_MISLABELLED_MARGIN_PPM + 1, false),
        ] {
            p.mut_anomaly().mut_mislabelled().min_margin_ppm = margin;
            assert_eq!(validate_params(&p).is_ok(), ok, "{margin}");
        }
        p.mut_anomaly().mut_mislabelled().min_margin_ppm = 0;
        p.mut_anomaly().mut_mislabelled().reference_steps = vec![0; 4];
        assert!(err(&p).contains("mislabelled.reference_steps: must hold a non-zero direction"));
        // Positions outside the reference's tensors are no direction either.
        p.mut_anomaly().mut_mislabelled().reference_steps = vec![0x80, 0, 0x80, 0];
        assert!(err(&p).contains("at some position it covers"));
        p.mut_anomaly().mut_mislabelled().reference_steps = vec![0x80, 0, 0x80, 2];
        assert_eq!(validate_params(&p).unwrap(), p);
        p.mut_anomaly().clear_mislabelled();
        p.mut_anomaly().mut_zscore().features = vec![pb::Feature::REFERENCE_MARGIN];
        p.mut_anomaly().mut_zscore().threshold_ppm = 3_500_000;
        assert!(err(&p).contains("REFERENCE_MARGIN needs the mislabelled method"));
    }

    /// Withdrawing acts on the inconsistent-change and ascent methods' flags: without either it
    /// is refused.
    #[test]
    fn withdraw_needs_a_method_that_compares_with_the_previous_commitment() {
        let mut p = sane();
        p.mut_anomaly().withdraw = true;
        assert!(
            err(&p).contains("params.anomaly.withdraw: needs the inconsistent-change or ascent")
        );
        p.coordinate_samples = 64;
        p.mut_anomaly().mut_ascent().max_response_ppm = 50_000;
        assert_eq!(validate_params(&p).unwrap(), p);
        p.mut_anomaly().clear_ascent();
        p.mut_anomaly().mut_inconsistent().min_cosine_ppm = 250_000;
        assert_eq!(validate_params(&p).unwrap(), p);
    }

    /// The opposed-change method alone is a configuration, casting no vote; it reads the
    /// cumulative sketch distance, not the sampled coordinates, and flags at a distance from 1
    /// (orthogonal to the consensus) to 2 (against it).
    #[test]
    fn opposed_config() {
        let mut p = sane();
        p.mut_anomaly().mut_opposed().min_distance_ppm = 1_500_000;
        assert_eq!(validate_params(&p).unwrap(), p);
        p.mut_anomaly().ensemble_min_votes = 1;
        assert!(err(&p).contains("anomaly.ensemble_min_votes: must be in 0..=0"));
        p.mut_anomaly().ensemble_min_votes = 0;
        for good in [MIN_OPPOSED_DISTANCE_PPM, MAX_OPPOSED_DISTANCE_PPM] {
            p.mut_anomaly().mut_opposed().min_distance_ppm = good;
            assert!(validate_params(&p).is_ok(), "{good}");
        }
        for bad in [
            0,
            MIN_OPPOSED_DISTANCE_PPM - 1,
            MAX_OPPOSED_DISTANCE_PPM + 1,
        ] {
            p.mut_anomaly().mut_opposed().min_distance_ppm = bad;
            assert!(
                err(&p).contains("opposed.min_distance_ppm: must be in"),
                "{bad}"
            );
        }
    }

    /// The oversized-update method alone is a configuration, casting no vote; it reads the
    /// norms and sample counts, not the sampled coordinates, and flags at a residual from ln 2
    /// to 10.
    #[test]
    fn oversized_config() {
        let mut p = sane();
        p.mut_anomaly().mut_oversized().min_residual_ppm = 1_386_294;
        assert_eq!(validate_params(&p).unwrap(), p);
        for good in [MIN_OVERSIZED_RESIDUAL_PPM, MAX_OVERSIZED_RESIDUAL_PPM] {
            p.mut_anomaly().mut_oversized().min_residual_ppm = good;
            assert!(validate_params(&p).is_ok(), "{good}");
        }
        for bad in [
            0,
            MIN_OVERSIZED_RESIDUAL_PPM - 1,
            MAX_OVERSIZED_RESIDUAL_PPM + 1,
        ] {
            p.mut_anomaly().mut_oversized().min_residual_ppm = bad;
            assert!(
                err(&p).contains("oversized.min_residual_ppm: must be in"),
                "{bad}"
            );
        }
    }

    /// The mean-copy method alone is a configuration, casting no vote; it flags at a cosine
    /// from one half to 1.
    #[test]
    fn mean_copy_config() {
        let mut p = sane();
        p.mut_anomaly().mut_mean_copy().min_cosine_ppm = 950_000;
        assert_eq!(validate_params(&p).unwrap(), p);
        for good in [MIN_MEAN_COPY_COSINE_PPM, PPM] {
            p.mut_anomaly().mut_mean_copy().min_cosine_ppm = good;
            assert!(validate_params(&p).is_ok(), "{good}");
        }
        for bad in [0, MIN_MEAN_COPY_COSINE_PPM - 1, PPM + 1] {
            p.mut_anomaly().mut_mean_copy().min_cosine_ppm = bad;
            assert!(
                err(&p).contains("mean_copy.min_cosine_ppm: must be in"),
                "{bad}"
            );
        }
    }
}
