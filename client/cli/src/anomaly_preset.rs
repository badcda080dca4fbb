//! `--anomaly-preset NAME`, a named anomaly configuration, read once for every command that
//! takes it (`consortium init`, `demo`, `anomaly bench` and `paper-table`, `experiment scale`).

use anyhow::Context as _;
use bcfl_processor::anomaly::{
    every_attack_config, with_features, ASCENT_MAX_RESPONSE_PPM, EVERY_ATTACK_COORDINATE_SAMPLES,
    INCONSISTENT_MIN_COSINE_PPM, LORA_COORDINATE_SAMPLES, LORA_INCONSISTENT_MIN_COSINE_PPM,
    MISLABELLED_MIN_MARGIN_PPM, SKEWED_SHARDS_FEATURES,
};
use bcfl_processor::fixed::parse_ppm;
use bcfl_processor::limits::MAX_MISLABELLED_MARGIN_PPM;
use bcfl_protos::bcfl as pb;
use clap::ValueEnum;

/// Named anomaly configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnomalyPreset {
    /// DBSCAN (robust, radius 3.5) and the modified z-score, both needed, over the update norm,
    /// the cumulative sketch distance, the coordinate sign balance and the previous-change
    /// distance; the duplicate (sketches within cosine distance 0.001 of another committer's),
    /// unchanged-update (a hundredth of the median norm), resent-change (within 0.05 of the
    /// previous change), opposed-change (summed sketches at cosine distance 1.7 or more from
    /// the consensus) and oversized-update (a norm ln 4 = 1.386 or more above the line the round's
    /// norms fit against their sample counts, in natural-log units) methods; 256 sampled
    /// coordinates unless --coordinate-samples says otherwise (docs/anomaly-detection.md, "One
    /// configuration for every attack").
    EveryAttack,
    /// `every-attack` with the inconsistent-change (cosine 0.25) and ascent (response 0.05)
    /// methods and withdrawal: for members taking plain gradient steps on a convex loss (a
    /// classification head trained by SGD, as the attack benchmark's members are), where it
    /// excluded every noise sender and sign flipper and took their first update back out
    /// (docs/anomaly-detection.md, "Taking the first update back"). Not for LoRA adapters
    /// trained with AdamW: their honest changes turn from round to round, which the
    /// inconsistent-change method flags, and do not respond to the model's moves as descent on
    /// a convex loss does.
    EveryAttackConvex,
    /// `every-attack` with 4096 sampled coordinates unless --coordinate-samples says otherwise,
    /// the inconsistent-change method at cosine 0.0625 (four times a random change's spread at
    /// 4096 coordinates) and withdrawal: for members fine-tuning LoRA adapters with AdamW (the
    /// node runtime's model), whose honest changes keep a weak direction from round to round
    /// that 256 coordinates cannot tell from noise. Through member processes it excluded every
    /// Gaussian noise sender from its second round on and took its first update back out, with
    /// Dirichlet 0.1 shards too (docs/anomaly-detection.md, "Noise senders among LoRA
    /// members"). The coordinates cost about 4 KB of ledger a commitment.
    EveryAttackLora,
}

impl AnomalyPreset {
    /// The name the flag takes (`every-attack`).
    pub fn name(self) -> &'static str {
        match self {
            AnomalyPreset::EveryAttack => "every-attack",
            AnomalyPreset::EveryAttackConvex => "every-attack-convex",
            AnomalyPreset::EveryAttackLora => "every-attack-lora",
        }
    }

    /// What the preset adds to `every-attack` (nothing for `every-attack` itself).
    pub fn additions(self) -> Additions {
        match self {
            AnomalyPreset::EveryAttack => Additions::default(),
            AnomalyPreset::EveryAttackConvex => Additions::CONVEX,
            AnomalyPreset::EveryAttackLora => Additions::LORA,
        }
    }

    /// The coordinates each commitment samples unless `--coordinate-samples` says otherwise.
    pub fn coordinate_samples(self) -> u32 {
        match self {
            AnomalyPreset::EveryAttack | AnomalyPreset::EveryAttackConvex => {
                EVERY_ATTACK_COORDINATE_SAMPLES
            }
            AnomalyPreset::EveryAttackLora => LORA_COORDINATE_SAMPLES,
        }
    }

    /// The consortium's anomaly configuration.
    pub fn config(self) -> pb::AnomalyConfig {
        self.additions()
            .apply(every_attack_config())
            .expect("a preset adds leave-one-out only beside the ascent method")
    }
}

/// The opt-in methods a command may add to a preset (`consortium init`, `demo`, `experiment
/// scale`; [`AdditionArgs`]), as their flags
/// give them: `--inconsistent-cosine` (not in `every-attack`, since members fine-tuning LoRA
/// adapters with AdamW change direction from round to round, which 256 coordinates cannot tell
/// from noise, [`bcfl_processor::anomaly::INCONSISTENT_MIN_COSINE_PPM`]),
/// `--ascent-response` (not in the preset, whose measured grids predate it,
/// [`bcfl_processor::anomaly::ASCENT_MAX_RESPONSE_PPM`]) and `--mean-copy-cosine`, and the
/// settings `--withdraw`, `--skewed-shards`, `--count-copies-once` and
/// `--dbscan-without-excluded`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Additions {
    /// The inconsistent-change method's cosine, ppm.
    pub inconsistent_cosine_ppm: Option<u32>,
    /// The ascent method's largest move response, ppm.
    pub ascent_response_ppm: Option<u32>,
    /// The mean-copy method's cosine, ppm.
    pub mean_copy_cosine_ppm: Option<u32>,
    /// The ascent method compares each member with the others' move (`--ascent-leave-one-out`,
    /// [`pb::AscentConfig::leave_one_out`]); it needs the method.
    pub ascent_leave_one_out: bool,
    /// Their flags withdraw the member's commitment to the round before (`--withdraw`,
    /// `AnomalyConfig.withdraw`).
    pub withdraw: bool,
    /// DBSCAN and the modified z-score read only the update norm and the sign balance
    /// (`--skewed-shards`, [`SKEWED_SHARDS_FEATURES`]): for members whose data differ widely,
    /// where honest members holding a rare class lie as far from the consensus as an attacker.
    pub skewed_shards: bool,
    /// Copies count once in the voting methods' medians and scales (`--count-copies-once`,
    /// `AnomalyConfig.count_copies_once`).
    pub count_copies_once: bool,
    /// DBSCAN clusters only the members no excluding method flagged
    /// (`--dbscan-without-excluded`, `AnomalyConfig.dbscan_without_excluded`).
    pub dbscan_without_excluded: bool,
}

/// The flags that add methods and settings to a preset or to a list of methods, as `consortium
/// init`, `demo` and `experiment scale` take them ([`AdditionArgs::additions`]). `--skewed-shards`
/// is not among them: each command constrains it its own way.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct AdditionArgs {
    /// The mean-copy method's cosine, from 0.5 to 1: a member whose sketch has at least this
    /// cosine with the others' mean update (their sketches, each weighted by its update's norm)
    /// sent their mean instead of an update of its own (a lone ALIE attacker) and is excluded.
    /// Honest members reached 0.93 on the attack benchmark, a lone ALIE attacker 0.99 and up
    /// [default: 0.95]. With --anomaly-preset it adds the method to the preset.
    #[arg(long, value_name = "COSINE")]
    pub mean_copy_cosine: Option<String>,
    /// The inconsistent-change method's cosine [default: 0.25]: a member whose sampled change
    /// has a cosine below this with its own previous change did not train on a shard of its
    /// own (a noise sender). With --anomaly-preset it adds the method to the preset. Suited to
    /// members whose honest changes keep their direction (heads trained by SGD); for LoRA
    /// adapters trained with AdamW only with thousands of coordinates (`--anomaly-preset
    /// every-attack-lora`: 0.0625 at 4096).
    #[arg(long)]
    pub inconsistent_cosine: Option<String>,
    /// The ascent method's largest move response, from 0 to 0.5 [default: 0.05]: a member whose
    /// changes, over its rounds, respond to the model's moves above this, as steps up its own
    /// loss do (a sign flipper), is excluded. With --anomaly-preset it adds the method to the
    /// preset. Suited to members taking gradient steps on a convex loss (heads trained by SGD),
    /// not to LoRA adapters trained with AdamW.
    #[arg(long)]
    pub ascent_response: Option<String>,
    /// The ascent method compares each member's change with the others' move: the model's
    /// move without the member's own previous change where that round accepted it. Its own
    /// change is part of the move, and where changes vary from round to round more than they
    /// respond to the model (LoRA adapters trained with AdamW), that part pulls every member's
    /// response below 0, a sign flipper's too. Needs the ascent method.
    #[arg(long)]
    pub ascent_leave_one_out: bool,
    /// The inconsistent-change and ascent methods compare a member's commitment with its own
    /// commitment to the round before, so their flag is evidence against both. With this, a
    /// member they flag has its commitment to the round before withdrawn (when that round's
    /// FedAvg aggregate is this round's parent): this round's aggregate takes its contribution
    /// back out. Needs the inconsistent-change or ascent method.
    #[arg(long)]
    pub withdraw: bool,
    /// DBSCAN and the modified z-score take each feature's median and scale from the members
    /// with distinct sketches: copies of one update (stale riders, free riders, colluders)
    /// count once, so that they cannot shrink the scale until honest members look extreme.
    /// With --anomaly-preset it adds the setting to the preset. Measured: fewer honest members
    /// flagged on the seeds where it was found, more on others.
    #[arg(long)]
    pub count_copies_once: bool,
    /// DBSCAN clusters only the members no method that excludes on its own (duplicate,
    /// unchanged, resent, inconsistent, opposed, ascent, mislabelled, oversized, mean copy)
    /// flagged this round, so that attackers already caught (colluders' copies) cannot make a
    /// cluster of honest members the smaller one; scales and scores stay as without it. With
    /// --anomaly-preset it adds the setting to the preset.
    #[arg(long)]
    pub dbscan_without_excluded: bool,
}

impl AdditionArgs {
    /// The additions these flags give (the methods' limits checked as ppm), with
    /// `skewed_shards`.
    pub fn additions(&self, skewed_shards: bool) -> anyhow::Result<Additions> {
        let ppm = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| parse_ppm(t).with_context(|| format!("--{flag} {t:?}")))
                .transpose()
        };
        Ok(Additions {
            inconsistent_cosine_ppm: ppm("inconsistent-cosine", &self.inconsistent_cosine)?,
            ascent_response_ppm: ppm("ascent-response", &self.ascent_response)?,
            mean_copy_cosine_ppm: ppm("mean-copy-cosine", &self.mean_copy_cosine)?,
            ascent_leave_one_out: self.ascent_leave_one_out,
            withdraw: self.withdraw,
            skewed_shards,
            count_copies_once: self.count_copies_once,
            dbscan_without_excluded: self.dbscan_without_excluded,
        })
    }
}

impl Additions {
    /// What `every-attack-convex` adds to `every-attack`: the inconsistent-change and ascent
    /// methods at their measured limits, and withdrawal.
    pub const CONVEX: Self = Self {
        inconsistent_cosine_ppm: Some(INCONSISTENT_MIN_COSINE_PPM),
        ascent_response_ppm: Some(ASCENT_MAX_RESPONSE_PPM),
        mean_copy_cosine_ppm: None,
        ascent_leave_one_out: false,
        withdraw: true,
        skewed_shards: false,
        count_copies_once: false,
        dbscan_without_excluded: false,
    };

    /// What `every-attack-lora` adds to `every-attack`: the inconsistent-change method at its
    /// limit for [`LORA_COORDINATE_SAMPLES`], and withdrawal.
    pub const LORA: Self = Self {
        inconsistent_cosine_ppm: Some(LORA_INCONSISTENT_MIN_COSINE_PPM),
        ascent_response_ppm: None,
        mean_copy_cosine_ppm: None,
        ascent_leave_one_out: false,
        withdraw: true,
        skewed_shards: false,
        count_copies_once: false,
        dbscan_without_excluded: false,
    };

    /// `config` with each given method added (replacing one it has), the ascent method's
    /// leave-one-out and the two settings set, and with skewed shards the voting methods over
    /// [`SKEWED_SHARDS_FEATURES`]. Refuses leave-one-out where `config` gains no ascent method.
    pub fn apply(self, mut config: pb::AnomalyConfig) -> anyhow::Result<pb::AnomalyConfig> {
        if let Some(min_cosine_ppm) = self.inconsistent_cosine_ppm {
            config.set_inconsistent(pb::InconsistentConfig {
                min_cosine_ppm,
                ..Default::default()
            });
        }
        if let Some(max_response_ppm) = self.ascent_response_ppm {
            config.set_ascent(pb::AscentConfig {
                max_response_ppm,
                ..Default::default()
            });
        }
        if self.ascent_leave_one_out {
            anyhow::ensure!(
                config.has_ascent(),
                "--ascent-leave-one-out needs the ascent method (--ascent-response, `ascent` in \
                 --anomaly, or --anomaly-preset every-attack-convex)"
            );
            config.mut_ascent().leave_one_out = true;
        }
        if let Some(min_cosine_ppm) = self.mean_copy_cosine_ppm {
            config.set_mean_copy(pb::MeanCopyConfig {
                min_cosine_ppm,
                ..Default::default()
            });
        }
        config.withdraw |= self.withdraw;
        config.count_copies_once |= self.count_copies_once;
        config.dbscan_without_excluded |= self.dbscan_without_excluded;
        if let Some(features) = self.voting_features() {
            config = with_features(config, features);
        }
        Ok(config)
    }

    /// The features DBSCAN and the z-score read instead of the preset's, if any
    /// ([`SKEWED_SHARDS_FEATURES`] with `--skewed-shards`).
    pub fn voting_features(self) -> Option<&'static [pb::Feature]> {
        self.skewed_shards.then_some(&SKEWED_SHARDS_FEATURES[..])
    }
}

/// `--mislabelled-margin X` (`consortium init`, `demo`): the mislabelled-change method's limit
/// in ppm, [`MISLABELLED_MIN_MARGIN_PPM`] without one; it must lie within 0.5 of 0.
pub fn mislabelled_margin_ppm(text: Option<&str>) -> anyhow::Result<i32> {
    let Some(text) = text else {
        return Ok(MISLABELLED_MIN_MARGIN_PPM);
    };
    let micro = bcfl_processor::fixed::parse_micro(text).context("--mislabelled-margin")?;
    if micro.abs() > i64::from(MAX_MISLABELLED_MARGIN_PPM) {
        anyhow::bail!("--mislabelled-margin must lie within 0.5 of 0, got {text}");
    }
    Ok(micro as i32)
}

/// Where commitments sample their coordinates (`--coordinate-scope`, the consortium's
/// `coordinate_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoordinateScope {
    /// Among every value of the update.
    #[default]
    Every,
    /// Among the classification head's values alone (tensors named `classifier.*`): for
    /// members fine-tuning LoRA adapters beneath a head, whose head moves far more
    /// consistently from round to round than the adapters, and where the mislabelled-change
    /// method's reference lies (docs/anomaly-detection.md, "Coordinates in the head").
    Head,
}

impl CoordinateScope {
    /// The consortium parameter's value.
    pub fn param(self) -> pb::CoordinateScope {
        match self {
            CoordinateScope::Every => pb::CoordinateScope::EVERY_TENSOR,
            CoordinateScope::Head => pb::CoordinateScope::CLASSIFIER_HEAD,
        }
    }
}

/// The coordinates each commitment samples: `given` (`--coordinate-samples`), or `preset`'s
/// when that is 0.
pub fn coordinate_samples(preset: Option<AnomalyPreset>, given: u32) -> u32 {
    match (preset, given) {
        (Some(preset), 0) => preset.coordinate_samples(),
        (_, given) => given,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mislabelled_margin_is_read_within_its_limits() {
        assert_eq!(mislabelled_margin_ppm(None).unwrap(), -30_000);
        assert_eq!(mislabelled_margin_ppm(Some("-0.05")).unwrap(), -50_000);
        assert_eq!(mislabelled_margin_ppm(Some("0.5")).unwrap(), 500_000);
        let err = mislabelled_margin_ppm(Some("-0.6"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("within 0.5 of 0, got -0.6"), "{err}");
        assert!(mislabelled_margin_ppm(Some("x")).is_err());
    }

    #[test]
    fn the_preset_brings_its_coordinates_unless_given() {
        let preset = AnomalyPreset::EveryAttack;
        assert_eq!(coordinate_samples(Some(preset), 0), 256);
        assert_eq!(coordinate_samples(Some(preset), 64), 64);
        assert_eq!(coordinate_samples(None, 0), 0);
        assert!(!preset.config().has_pagerank());
        assert_eq!(preset.config().ensemble_min_votes, 2);
        assert_eq!(AnomalyPreset::from_str(preset.name(), false), Ok(preset));
        assert!(!preset.config().has_inconsistent());
        assert!(!preset.config().has_ascent());
        let additions = AdditionArgs {
            inconsistent_cosine: Some("0.25".into()),
            ascent_response: Some("0.05".into()),
            withdraw: true,
            ..Default::default()
        }
        .additions(false)
        .unwrap();
        let added = additions.apply(preset.config()).unwrap();
        assert_eq!(added.get_inconsistent().min_cosine_ppm, 250_000);
        assert_eq!(added.get_ascent().max_response_ppm, 50_000);
        assert!(!added.get_ascent().leave_one_out);
        assert!(added.withdraw && !preset.config().withdraw);
        let none = AdditionArgs::default().additions(false).unwrap();
        assert_eq!(none.apply(preset.config()).unwrap(), preset.config());
        // Leave-one-out sets the ascent method's switch, and needs the method.
        let left_out = AdditionArgs {
            ascent_response: Some("0.05".into()),
            ascent_leave_one_out: true,
            ..Default::default()
        }
        .additions(false)
        .unwrap();
        assert!(
            left_out
                .apply(preset.config())
                .unwrap()
                .get_ascent()
                .leave_one_out
        );
        let alone = AdditionArgs {
            ascent_leave_one_out: true,
            ..Default::default()
        }
        .additions(false)
        .unwrap();
        let err = alone.apply(preset.config()).unwrap_err().to_string();
        assert!(err.contains("needs the ascent method"), "{err}");
        let on_convex = alone.apply(AnomalyPreset::EveryAttackConvex.config());
        assert!(on_convex.unwrap().get_ascent().leave_one_out);
        let err = AdditionArgs {
            ascent_response: Some("x".into()),
            ..Default::default()
        }
        .additions(false)
        .unwrap_err()
        .to_string();
        assert!(err.contains("--ascent-response"), "{err}");
    }

    /// `every-attack-convex` is `every-attack` with the three additions at their defaults, a
    /// configuration the processor accepts.
    #[test]
    fn the_convex_preset_adds_the_pair_methods_and_withdrawal() {
        let convex = AnomalyPreset::EveryAttackConvex;
        assert_eq!(AnomalyPreset::from_str(convex.name(), false), Ok(convex));
        let added = applied(
            AdditionArgs {
                inconsistent_cosine: Some("0.25".into()),
                ascent_response: Some("0.05".into()),
                withdraw: true,
                ..Default::default()
            },
            false,
        );
        assert_eq!(convex.config(), added);
        assert_eq!(coordinate_samples(Some(convex), 0), 256);
        assert_the_processor_accepts(convex.name(), convex.config(), 256);
    }

    /// `every-attack`'s configuration with what `args` (and `skewed_shards`) add.
    fn applied(args: AdditionArgs, skewed_shards: bool) -> pb::AnomalyConfig {
        args.additions(skewed_shards)
            .unwrap()
            .apply(every_attack_config())
            .unwrap()
    }

    /// A consortium set up with `config` and `coordinate_samples` parses as an
    /// `InitConsortium`.
    fn assert_the_processor_accepts(
        name: &str,
        config: pb::AnomalyConfig,
        coordinate_samples: u32,
    ) {
        let params = pb::ConsortiumParams {
            min_participants: 3,
            commit_quorum: 2,
            aggregation_rule: pb::AggregationRule::FEDAVG,
            model_id: "m".into(),
            base_model_sha256: "ab".repeat(32),
            sketch_length: 8,
            coordinate_samples,
            anomaly: Some(config).into(),
            ..Default::default()
        };
        let mut init = pb::BcflPayload::new();
        init.set_init_consortium(pb::InitConsortium {
            admin_keys: vec![
                "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc".to_owned(),
            ]
            .into(),
            params: Some(params).into(),
            ..Default::default()
        });
        let parsed = bcfl_processor::payload::Action::from_proto(&init);
        assert!(parsed.is_ok(), "{name}: {parsed:?}");
    }

    /// `every-attack-lora` is `every-attack` with the inconsistent-change method at 0.0625 and
    /// withdrawal, as `--inconsistent-cosine 0.0625 --withdraw` spell it (the flags its
    /// measurements ran with), 4096 coordinates unless given, and a configuration the
    /// processor accepts.
    #[test]
    fn the_lora_preset_adds_the_inconsistent_method_with_more_coordinates() {
        let lora = AnomalyPreset::EveryAttackLora;
        assert_eq!(AnomalyPreset::from_str(lora.name(), false), Ok(lora));
        let spelled = applied(
            AdditionArgs {
                inconsistent_cosine: Some("0.0625".into()),
                withdraw: true,
                ..Default::default()
            },
            false,
        );
        assert_eq!(lora.config(), spelled);
        assert!(!lora.config().has_ascent());
        assert_eq!(coordinate_samples(Some(lora), 0), 4096);
        assert_eq!(coordinate_samples(Some(lora), 256), 256);
        assert_the_processor_accepts(lora.name(), lora.config(), 4096);
    }

    /// `--skewed-shards` leaves the methods as they are and has DBSCAN and the z-score read the
    /// update norm and the sign balance alone; the opposed-change method keeps reading the
    /// cumulative sketch distance, which it computes on its own.
    #[test]
    fn skewed_shards_vote_over_the_norm_and_the_balance() {
        let convex = AnomalyPreset::EveryAttackConvex;
        let skewed = Additions {
            skewed_shards: true,
            ..convex.additions()
        }
        .apply(every_attack_config())
        .unwrap();
        let two = SKEWED_SHARDS_FEATURES.to_vec();
        assert_eq!(skewed.get_dbscan().features, two);
        assert_eq!(skewed.get_zscore().features, two);
        let mut expected = convex.config();
        expected.mut_dbscan().features = two.clone();
        expected.mut_zscore().features = two;
        assert_eq!(skewed, expected);
        assert!(skewed.has_opposed() && skewed.withdraw);
        assert_ne!(skewed, convex.config());
        assert_eq!(
            applied(AdditionArgs::default(), true).get_zscore().features,
            SKEWED_SHARDS_FEATURES
        );
    }

    /// `--mean-copy-cosine`, `--count-copies-once` and `--dbscan-without-excluded` add the
    /// mean-copy method and the two settings to a preset, as the attack grids' best
    /// configuration ran, and the processor accepts the result.
    #[test]
    fn the_mean_copy_method_and_the_settings_join_a_preset() {
        let added = AdditionArgs {
            mean_copy_cosine: Some("0.95".into()),
            count_copies_once: true,
            dbscan_without_excluded: true,
            ..Default::default()
        }
        .additions(true)
        .unwrap();
        let convex = Additions {
            mean_copy_cosine_ppm: added.mean_copy_cosine_ppm,
            count_copies_once: added.count_copies_once,
            dbscan_without_excluded: added.dbscan_without_excluded,
            skewed_shards: added.skewed_shards,
            ..Additions::CONVEX
        }
        .apply(every_attack_config())
        .unwrap();
        assert_eq!(convex.get_mean_copy().min_cosine_ppm, 950_000);
        assert!(convex.count_copies_once && convex.dbscan_without_excluded);
        assert!(convex.has_inconsistent() && convex.has_ascent() && convex.withdraw);
        let mut expected = AnomalyPreset::EveryAttackConvex.config();
        expected.set_mean_copy(pb::MeanCopyConfig {
            min_cosine_ppm: 950_000,
            ..Default::default()
        });
        expected.count_copies_once = true;
        expected.dbscan_without_excluded = true;
        let expected = with_features(expected, &SKEWED_SHARDS_FEATURES);
        assert_eq!(convex, expected);
        let err = AdditionArgs {
            mean_copy_cosine: Some("high".into()),
            ..Default::default()
        }
        .additions(false)
        .unwrap_err()
        .to_string();
        assert!(err.contains("--mean-copy-cosine"), "{err}");
        assert_the_processor_accepts("the grids' best", convex, 256);
    }
}
