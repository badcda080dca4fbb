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

    /// The verdict as the ledger stores it, with `committers` its round's committers (sorted):
    /// `accepted` left empty, since it is the committers that are not `excluded`, and
    /// `excluded` as positions among the committers (`excluded_positions`) when every excluded
    /// member is one, as the processor's rules make it (else as keys, so nothing is lost).
    /// Every key is then stored once a round, in the round's `committers`; [`Self::restored`]
    /// gives the verdict back.
    pub fn stored(&self, committers: &[String]) -> bcfl::Verdict {
        let positions: Option<Vec<u32>> = self
            .excluded
            .iter()
            .map(|k| {
                committers
                    .binary_search(k)
                    .ok()
                    .and_then(|i| u32::try_from(i).ok())
            })
            .collect();
        let (excluded, excluded_positions) = match positions {
            Some(positions) if self.excluded_positions.is_empty() => (Vec::new().into(), positions),
            _ => (self.excluded.clone(), self.excluded_positions.clone()),
        };
        bcfl::Verdict {
            accepted: Vec::new().into(),
            excluded,
            excluded_positions,
            ..self.clone()
        }
    }

    /// The verdict a stored one stands for, with `committers` its round's committers (sorted):
    /// `excluded` from its positions among them (when stored so), and `accepted` every
    /// committer not `excluded`, sorted. Positions that are not ascending, or past the
    /// committers, or stored beside excluded keys, are refused.
    pub fn restored(mut self, committers: &[String]) -> Result<bcfl::Verdict, StoredVerdictError> {
        let round = self.round;
        if !self.excluded_positions.is_empty() {
            if !self.excluded.is_empty() || !self.excluded_keys.is_empty() {
                return Err(StoredVerdictError::Both { round });
            }
            if self.excluded_positions.windows(2).any(|w| w[0] >= w[1]) {
                return Err(StoredVerdictError::NotAscending { round });
            }
            let excluded = std::mem::take(&mut self.excluded_positions)
                .into_iter()
                .map(|i| {
                    committers
                        .get(i as usize)
                        .cloned()
                        .ok_or(StoredVerdictError::Past {
                            round,
                            position: i,
                            committers: committers.len(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.excluded = excluded.into();
        }
        self.accepted = committers
            .iter()
            .filter(|k| self.excluded.binary_search(k).is_err())
            .cloned()
            .collect::<Vec<_>>()
            .into();
        Ok(self)
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

/// A stored verdict whose excluded positions do not name the round's committers
/// ([`bcfl::Verdict::restored`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredVerdictError {
    /// A position past the round's committers.
    #[error("the verdict of round {round} excludes position {position}, past the round's {committers} committers")]
    Past {
        /// The verdict's round.
        round: u64,
        /// The position.
        position: u32,
        /// How many committers the round has.
        committers: usize,
    },
    /// Positions that are not strictly ascending.
    #[error("the verdict of round {round} stores its excluded positions out of order")]
    NotAscending {
        /// The verdict's round.
        round: u64,
    },
    /// Excluded members stored both as keys and as positions.
    #[error(
        "the verdict of round {round} stores its excluded members both as keys and as positions"
    )]
    Both {
        /// The verdict's round.
        round: u64,
    },
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
        let committers = keys(&["a", "b", "c", "d", "e"]);
        let stored = verdict.stored(&committers);
        assert!(stored.accepted.is_empty());
        // The excluded as their positions among the committers.
        assert!(stored.excluded.is_empty());
        assert_eq!(stored.excluded_positions, vec![1, 3]);
        assert!(stored.write_to_bytes().unwrap().len() < verdict.write_to_bytes().unwrap().len());
        let restored = stored.clone().restored(&committers).unwrap();
        assert_eq!(restored, verdict);
        assert_eq!(restored.withdrawn_members(), keys(&["b"]));

        // An excluded member that is no committer (never stored by the rules) stays a key.
        let odd = Verdict {
            excluded: keys(&["b", "z"]).into(),
            accepted: keys(&["a", "c", "d", "e"]).into(),
            ..verdict.clone()
        };
        let kept = odd.stored(&committers);
        assert_eq!(kept.excluded.to_vec(), keys(&["b", "z"]));
        assert!(kept.excluded_positions.is_empty());
        assert_eq!(kept.restored(&committers).unwrap(), odd);

        // Positions that name no committer, out of order, or beside keys are refused.
        let past = Verdict {
            excluded_positions: vec![1, 5],
            ..stored.clone()
        };
        assert_eq!(
            past.restored(&committers).unwrap_err().to_string(),
            "the verdict of round 4 excludes position 5, past the round's 5 committers"
        );
        let unordered = Verdict {
            excluded_positions: vec![3, 1],
            ..stored.clone()
        };
        assert!(matches!(
            unordered.restored(&committers),
            Err(super::StoredVerdictError::NotAscending { round: 4 })
        ));
        let both = Verdict {
            excluded: keys(&["b"]).into(),
            ..stored
        };
        assert!(matches!(
            both.restored(&committers),
            Err(super::StoredVerdictError::Both { round: 4 })
        ));
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
