//! The ways a member misbehaves: one list of attack kinds for every place that applies them.
//!
//! A member's update proposes a change of the global model, its *delta* `d` (`local − parent`).
//! An attacker replaces it, or what it trains on, or its links:
//!
//! | kind | name | what the attacker sends instead of its honest delta `d` | synthetic | demo | head training |
//! | --- | --- | --- | :---: | :---: | :---: |
//! | [`AttackKind::SignFlip`] | `sign-flip` | `−d` (pushes the model back) | yes | yes | yes |
//! | [`AttackKind::Scale`] | `scale-x10` | [`SCALE_FACTOR`] `· d` (dominates a mean) | yes | yes | yes |
//! | [`AttackKind::GaussianNoise`] | `gaussian-noise` | Gaussian noise scaled to `‖d‖` | yes | yes | yes |
//! | [`AttackKind::FreeRider`] | `free-rider` | zero: the parent model back, nothing trained | yes | yes | yes |
//! | [`AttackKind::StaleRider`] | `stale-rider` | the previous round's change of the global model (zero in round 1), nothing trained | no | no | yes |
//! | [`AttackKind::LabelFlip`] | `label-flip` | `d` trained on labels shifted by one class ([`flipped_label`]) | no | yes | yes |
//! | [`AttackKind::SlowLink`] | `slow-link` | `d` unchanged, but its links run [`SLOW_LINK_FACTOR`] times slower | yes | no | yes |
//! | [`AttackKind::DisguisedScale`] | `disguised-scale` | [`SCALE_FACTOR`] `· d`, committed with the statistics (norm, sketch) of `d`: a hostile update behind honest-looking evidence, which only recomputing the statistics from the blob reveals | no | yes | yes |
//! | [`AttackKind::Alie`] | `alie` | colluding: the honest mean minus `z` honest standard deviations ("a little is enough") | yes | no | yes |
//! | [`AttackKind::InnerProduct`] | `ipm` | colluding: a small negative multiple of the honest mean (inner-product manipulation) | yes | no | yes |
//! | [`AttackKind::MinMax`] | `min-max` | colluding: the honest mean shifted as far as it stays no farther from any honest update than two honest updates are apart | yes | no | yes |
//! | [`AttackKind::MinSum`] | `min-sum` | colluding: as min-max, bounding the sum of squared distances to the honest updates | yes | no | yes |
//! | [`AttackKind::InflatedSamples`] | `inflated-samples` | [`SCALE_FACTOR`] `· d`, committed with [`SAMPLE_INFLATION`] times its sample count ([`AttackKind::claimed_samples`]): FedAvg weighs an update by its claim, and the norm lies where larger shards' norms do | no | yes | yes |
//! | [`AttackKind::HiddenReversal`] | `hidden-reversal` | adaptive: the part of `d` the round's statistics see (the sketch's projection, the sampled coordinates) kept, the rest, with its norm, turned against the global model's previous change (`−d`'s in round 1): statistics identical to the honest update's, norm included | no | yes | yes |
//!
//! The colluding kinds ([`AttackKind::colludes`]) are crafted from the honest members' updates
//! of the round, the same update for every attacker; [`collusion`](super::collusion) has the
//! maths and the threat model. The adaptive kind ([`AttackKind::ADAPTIVE`]) is aimed at bcfl's
//! own defence: it knows the sketch's projection and the sampled positions, which are public
//! before anyone commits, and hides its change where neither looks (the client's
//! `bcfl_fed::sketch::visible_part`). It is no published attack, so `bcfl anomaly bench
//! --attacks all` leaves it out (`--attacks adaptive` runs it). The claim kind
//! ([`AttackKind::CLAIMS`]) lies about its sample count instead. What stops it is the
//! processor, not a statistic of the update: `CommitUpdate` refuses a claim above the cap the
//! consortium registered for the member (`RegisterMember.max_samples`, which `bcfl demo`
//! sets to each member's shard size). `--attacks all` leaves it out too (`--attacks
//! inflated-samples` runs it, on a consortium registered without caps).
//!
//! The places: *synthetic* is [`simulate`](super::simulate) (`f64` vectors, the processor's
//! detection bench); *demo* is `bcfl demo --attack KIND:COUNT` (real update blobs, real loopback
//! links, so no slow links); *head training* is `bcfl anomaly bench` and `paper-table` (the
//! client's `train::attack::experiment`). A place asked for a kind it cannot apply refuses it
//! with [`AttackError::Unsupported`].
//!
//! Names: [`AttackKind::name`] is the one name of a kind; [`FromStr`] also accepts it with `_`
//! for `-` (`sign_flip`), and the older spellings `scale`, `scale_x10`, `noise` and
//! `gaussian_noise`. Serde uses the name.
//!
//! ```
//! use bcfl_processor::anomaly::attack::AttackKind;
//!
//! let kind: AttackKind = "sign_flip".parse().unwrap();
//! assert_eq!(kind, AttackKind::SignFlip);
//! assert_eq!(kind.to_string(), "sign-flip");
//! assert_eq!("noise".parse::<AttackKind>().unwrap(), AttackKind::GaussianNoise);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The class a [`AttackKind::LabelFlip`] attacker trains an example of class `label` as, of
/// `classes`: the next one, `label + 1 mod classes`.
pub fn flipped_label(label: usize, classes: usize) -> usize {
    (label + 1) % classes
}

/// How many times its sample count an [`AttackKind::InflatedSamples`] attacker claims:
/// [`SCALE_FACTOR`] squared, so that under a norm growing as the square root of the shard size
/// its scaled update lies where an honest one of the claimed shard would.
pub const SAMPLE_INFLATION: u64 = 100;

/// The factor of [`AttackKind::Scale`].
pub const SCALE_FACTOR: f64 = 10.0;

/// How much slower the links of an [`AttackKind::SlowLink`] attacker run.
pub const SLOW_LINK_FACTOR: f64 = 100.0;

/// A way for a member to misbehave (see the module docs for what each does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum AttackKind {
    /// Trains on labels shifted by one class (class `c` learned as `c + 1 mod K`).
    LabelFlip,
    /// Sends its negated delta.
    SignFlip,
    /// Sends its delta times [`SCALE_FACTOR`].
    Scale,
    /// Sends Gaussian noise with its delta's L2 norm.
    GaussianNoise,
    /// Trains nothing and sends a zero delta (the parent model back).
    FreeRider,
    /// Trains nothing and resends the previous round's change of the global model.
    StaleRider,
    /// Trains honestly behind links [`SLOW_LINK_FACTOR`] times slower.
    SlowLink,
    /// Sends its delta times [`SCALE_FACTOR`] but commits the statistics of its honest delta.
    DisguisedScale,
    /// Colluding: sends the honest mean minus `z` honest standard deviations.
    Alie,
    /// Colluding: sends a small negative multiple of the honest mean.
    InnerProduct,
    /// Colluding: the honest mean shifted within the largest honest pairwise distance.
    MinMax,
    /// Colluding: the honest mean shifted within the largest honest sum of squared distances.
    MinSum,
    /// Adaptive: keeps what the statistics see of its delta and turns the rest against the
    /// global model's previous change.
    HiddenReversal,
    /// Sends its delta times [`SCALE_FACTOR`] and claims [`SAMPLE_INFLATION`] times its
    /// samples.
    InflatedSamples,
}

/// Spellings accepted besides the names (after `_` is read as `-`).
const ALIASES: [(&str, AttackKind); 3] = [
    ("scale", AttackKind::Scale),
    ("noise", AttackKind::GaussianNoise),
    ("inner-product", AttackKind::InnerProduct),
];

impl AttackKind {
    /// Every kind, in a fixed order (the order of `bcfl anomaly bench --attacks all`).
    pub const ALL: [AttackKind; 14] = [
        AttackKind::LabelFlip,
        AttackKind::SignFlip,
        AttackKind::Scale,
        AttackKind::GaussianNoise,
        AttackKind::FreeRider,
        AttackKind::StaleRider,
        AttackKind::SlowLink,
        AttackKind::DisguisedScale,
        AttackKind::Alie,
        AttackKind::InnerProduct,
        AttackKind::MinMax,
        AttackKind::MinSum,
        AttackKind::HiddenReversal,
        AttackKind::InflatedSamples,
    ];

    /// The published kinds: [`AttackKind::ALL`] without the [`AttackKind::ADAPTIVE`] one and
    /// the [`AttackKind::CLAIMS`] one (what `bcfl anomaly bench --attacks all` runs).
    pub fn published() -> Vec<AttackKind> {
        Self::ALL
            .into_iter()
            .filter(|k| !Self::ADAPTIVE.contains(k) && !Self::CLAIMS.contains(k))
            .collect()
    }

    /// The kinds that lie about their sample count (see the module docs).
    pub const CLAIMS: [AttackKind; 1] = [AttackKind::InflatedSamples];

    /// The sample count an attacker of this kind claims for an update trained on `samples`
    /// examples: [`SAMPLE_INFLATION`] times it for [`AttackKind::InflatedSamples`] (saturating),
    /// `samples` for every other kind.
    pub fn claimed_samples(self, samples: u64) -> u64 {
        match self {
            AttackKind::InflatedSamples => samples.saturating_mul(SAMPLE_INFLATION),
            _ => samples,
        }
    }

    /// The kinds aimed at bcfl's own statistics (see the module docs).
    pub const ADAPTIVE: [AttackKind; 1] = [AttackKind::HiddenReversal];

    /// The colluding kinds, in [`AttackKind::ALL`] order: crafted from the honest updates
    /// ([`collusion`](super::collusion)).
    pub const COLLUDING: [AttackKind; 4] = [
        AttackKind::Alie,
        AttackKind::InnerProduct,
        AttackKind::MinMax,
        AttackKind::MinSum,
    ];

    /// Whether the attackers of this kind craft one update together from the honest ones.
    pub fn colludes(self) -> bool {
        Self::COLLUDING.contains(&self)
    }

    /// The kind's name (kebab-case; see the module docs).
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::LabelFlip => "label-flip",
            AttackKind::SignFlip => "sign-flip",
            AttackKind::Scale => "scale-x10",
            AttackKind::GaussianNoise => "gaussian-noise",
            AttackKind::FreeRider => "free-rider",
            AttackKind::StaleRider => "stale-rider",
            AttackKind::SlowLink => "slow-link",
            AttackKind::DisguisedScale => "disguised-scale",
            AttackKind::Alie => "alie",
            AttackKind::InnerProduct => "ipm",
            AttackKind::MinMax => "min-max",
            AttackKind::MinSum => "min-sum",
            AttackKind::HiddenReversal => "hidden-reversal",
            AttackKind::InflatedSamples => "inflated-samples",
        }
    }

    /// The error of a place (e.g. "a synthetic update") that cannot apply this kind.
    pub fn unsupported(self, place: &'static str) -> AttackError {
        AttackError::Unsupported { kind: self, place }
    }

    /// What applying this kind needs beyond an honest delta (for [`AttackError::Unsupported`]).
    fn needs(self) -> &'static str {
        match self {
            AttackKind::LabelFlip => "it changes the labels the member trains on",
            AttackKind::StaleRider => "it resends the previous round's change of the global model",
            AttackKind::SlowLink => "it slows the member's network links",
            AttackKind::DisguisedScale => {
                "it commits statistics of another update than the blob it sends"
            }
            AttackKind::Alie
            | AttackKind::InnerProduct
            | AttackKind::MinMax
            | AttackKind::MinSum => {
                "it crafts one update from the honest members' updates of the round"
            }
            AttackKind::HiddenReversal => {
                "it hides a change where the round's sketch and sampled coordinates do not look"
            }
            AttackKind::InflatedSamples => "it claims more samples than it trained on",
            AttackKind::SignFlip
            | AttackKind::Scale
            | AttackKind::GaussianNoise
            | AttackKind::FreeRider => "it replaces the member's delta",
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<AttackKind> for &'static str {
    fn from(kind: AttackKind) -> Self {
        kind.name()
    }
}

impl FromStr for AttackKind {
    type Err = AttackError;

    fn from_str(text: &str) -> Result<Self, AttackError> {
        let spelled = text.replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| k.name() == spelled)
            .or_else(|| {
                ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == spelled)
                    .map(|&(_, kind)| kind)
            })
            .ok_or_else(|| AttackError::Unknown(text.to_owned()))
    }
}

impl TryFrom<String> for AttackKind {
    type Error = AttackError;

    fn try_from(text: String) -> Result<Self, AttackError> {
        text.parse()
    }
}

/// Every kind's name, comma-separated, in [`AttackKind::ALL`] order.
fn known_names() -> String {
    AttackKind::ALL.map(AttackKind::name).join(", ")
}

/// An attack that is unknown, or that a place cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttackError {
    /// Not the name of any kind.
    #[error("unknown attack {0:?} (one of {names}; `_` for `-` is accepted)", names = known_names())]
    Unknown(String),
    /// A colluding update could not be crafted.
    #[error(transparent)]
    Collusion(#[from] super::collusion::CollusionError),
    /// A kind this place cannot apply.
    #[error("attack {kind} cannot be applied to {place}: {}", kind.needs())]
    Unsupported {
        /// The kind.
        kind: AttackKind,
        /// The place, e.g. "a synthetic update".
        place: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_in_both_spellings() {
        for kind in AttackKind::ALL {
            assert_eq!(kind.name().parse::<AttackKind>().unwrap(), kind);
            assert_eq!(
                kind.name().replace('-', "_").parse::<AttackKind>().unwrap(),
                kind
            );
            assert_eq!(kind.to_string(), kind.name());
        }
        let names: std::collections::BTreeSet<_> = AttackKind::ALL.map(AttackKind::name).into();
        assert_eq!(names.len(), AttackKind::ALL.len());
    }

    #[test]
    fn only_the_claim_kind_claims_other_than_it_trained_on() {
        for kind in AttackKind::ALL {
            let claimed = kind.claimed_samples(37);
            if AttackKind::CLAIMS.contains(&kind) {
                assert_eq!(claimed, 37 * SAMPLE_INFLATION);
            } else {
                assert_eq!(claimed, 37, "{kind}");
            }
        }
        assert_eq!(
            AttackKind::InflatedSamples.claimed_samples(u64::MAX / 2),
            u64::MAX
        );
        assert!(!AttackKind::published().contains(&AttackKind::InflatedSamples));
    }

    /// Every spelling a command line accepted before the kinds were unified.
    #[test]
    fn older_spellings_still_parse() {
        let known = [
            ("sign-flip", AttackKind::SignFlip),
            ("scale", AttackKind::Scale),
            ("noise", AttackKind::GaussianNoise),
            ("free-rider", AttackKind::FreeRider),
            ("label_flip", AttackKind::LabelFlip),
            ("sign_flip", AttackKind::SignFlip),
            ("scale_x10", AttackKind::Scale),
            ("gaussian_noise", AttackKind::GaussianNoise),
            ("free_rider", AttackKind::FreeRider),
            ("stale_rider", AttackKind::StaleRider),
            ("slow_link", AttackKind::SlowLink),
            ("min_max", AttackKind::MinMax),
            ("inner-product", AttackKind::InnerProduct),
            ("ipm", AttackKind::InnerProduct),
        ];
        for (text, kind) in known {
            assert_eq!(text.parse::<AttackKind>().unwrap(), kind, "{text}");
        }
        for bad in ["", "boost", "Sign-Flip", "sign flip", "scale-x"] {
            assert_eq!(
                bad.parse::<AttackKind>(),
                Err(AttackError::Unknown(bad.into()))
            );
        }
    }

    #[test]
    fn serde_uses_the_name() {
        let json = serde_json::to_string(&AttackKind::GaussianNoise).unwrap();
        assert_eq!(json, "\"gaussian-noise\"");
        for kind in AttackKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(serde_json::from_str::<AttackKind>(&json).unwrap(), kind);
        }
        assert_eq!(
            serde_json::from_str::<AttackKind>("\"sign_flip\"").unwrap(),
            AttackKind::SignFlip
        );
        assert!(serde_json::from_str::<AttackKind>("\"boost\"").is_err());
    }

    #[test]
    fn unsupported_says_why() {
        let e = AttackKind::LabelFlip.unsupported("a synthetic update");
        assert_eq!(
            e.to_string(),
            "attack label-flip cannot be applied to a synthetic update: it changes the labels \
             the member trains on"
        );
    }
}
