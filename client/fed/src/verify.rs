//! A commitment checked against its blob: the statistics recomputed from the bytes, and the
//! `DisputeCommitment` to file when they contradict what the member committed.
//!
//! A member commits its update's size, L2 norm, sketch and sampled coordinates
//! (`bcfl_processor::statistics` says when recomputed values match). The norm and sketch are those of the member's *change*, the
//! update minus the model it trained from (the commitment's `base_model_sha256`), sketched with
//! the round's seed — the round it was committed to, or, when sketches come after the
//! commitments, the seed `SealRound` drew — exactly what the member computed
//! ([`crate::sketch::UpdateStats`]). A commitment without a sketch (one not revealed yet) is
//! checked on everything else. The aggregator checks every committed blob before it
//! evaluates a round; the verifier committee checks every disputed one.
//!
//! ```
//! use std::collections::BTreeMap;
//! use bcfl_fed::sketch::StatsShape;
//! use bcfl_fed::update::{Encoding, Update};
//! use bcfl_fed::verify::{check, recompute};
//! use bcfl_protos::bcfl as pb;
//!
//! let model = |v: f32| Update { tensors: BTreeMap::from([("w".to_string(), (vec![2], vec![v, v]))]) };
//! let bytes = model(1.0).to_bytes(Encoding::F32);
//! let shape = StatsShape { sketch_length: 4, coordinate_samples: 2, ..StatsShape::default() };
//! let stats = recompute(&bytes, &model(0.0), shape, 7).unwrap();
//! let honest = pb::Commitment {
//!     round: 7,
//!     size_bytes: stats.size_bytes,
//!     norm_micro: stats.norm_micro,
//!     sketch: bcfl_protos::signed_bytes::pack(&stats.sketch).unwrap(),
//!     coordinate_step_nano: stats.coordinates.step_nano(),
//!     coordinate_steps: stats.coordinates.packed_steps(),
//!     ..Default::default()
//! };
//! assert_eq!(check(&honest, &bytes, &model(0.0), shape, 7), None);
//! let shrunk = pb::Commitment { norm_micro: 1, ..honest.clone() };
//! assert_eq!(check(&shrunk, &bytes, &model(0.0), shape, 7).unwrap().mismatch, pb::StatMismatch::NORM);
//! let moved = pb::Commitment { coordinate_steps: vec![0, 0], ..honest.clone() };
//! assert_eq!(check(&moved, &bytes, &model(0.0), shape, 7).unwrap().mismatch, pb::StatMismatch::COORDINATES);
//! // A commitment with no sketch yet (not revealed) is checked on everything else.
//! let unrevealed = pb::Commitment { sketch: Vec::new(), ..honest };
//! assert_eq!(check(&unrevealed, &bytes, &model(0.0), shape, 8), None);
//! ```

use bcfl_processor::fixed;
use bcfl_processor::statistics::{mismatch, Recomputed};
use bcfl_protos::bcfl as pb;
use bcfl_protos::signed_bytes;

use crate::sketch::{coordinates, l2_norm, sketch, StatsShape, COORDINATE_SEED};
use crate::update::Update;
use crate::{Error, Result};

/// The statistics of update blob `bytes` trained from `base`, in the consortium's `shape`,
/// sketched with `seed` (the round's: see the module docs), its coordinates sampled at
/// [`COORDINATE_SEED`]'s positions in the shape's scope. An error means
/// the blob is not an update of `base`'s tensors, or its norm is not a finite number: a
/// `MALFORMED` blob.
pub fn recompute(bytes: &[u8], base: &Update, shape: StatsShape, seed: u64) -> Result<Recomputed> {
    let change = Update::from_bytes(bytes)?.minus(base)?;
    let norm = l2_norm(&change);
    let norm_micro = fixed::f64_to_micro_unsigned(norm)
        .map_err(|e| Error::Update(format!("the update's norm {norm} has no fixed point: {e}")))?;
    Ok(Recomputed {
        size_bytes: bytes.len() as u64,
        norm_micro,
        sketch: sketch(&change, shape.sketch_length, seed),
        coordinates: coordinates(
            &change,
            shape.coordinate_samples,
            shape.coordinate_scope,
            COORDINATE_SEED,
        ),
    })
}

/// The dispute to file when `bytes` (which hashed to the commitment's `update_sha256`) does not
/// match `commitment`, trained from `base`; `None` when it matches. `shape` is the consortium's
/// ([`StatsShape::of`]), `seed` the round's sketch seed.
pub fn check(
    commitment: &pb::Commitment,
    bytes: &[u8],
    base: &Update,
    shape: StatsShape,
    seed: u64,
) -> Option<pb::DisputeCommitment> {
    let mut dispute = pb::DisputeCommitment {
        round: commitment.round,
        member: commitment.member.clone(),
        ..Default::default()
    };
    match recompute(bytes, base, shape, seed) {
        Err(_) => dispute.mismatch = pb::StatMismatch::MALFORMED,
        Ok(mut recomputed) => {
            if commitment.sketch.is_empty() {
                // Not revealed yet: nothing to compare the sketch with.
                recomputed.sketch.clear();
            }
            dispute.mismatch = mismatch(commitment, &recomputed)?;
            dispute.size_bytes = recomputed.size_bytes;
            dispute.norm_micro = recomputed.norm_micro;
            dispute.sketch = signed_bytes::pack(&recomputed.sketch)
                .expect("a recomputed sketch lies within 127");
            dispute.coordinate_step_nano = recomputed.coordinates.step_nano();
            dispute.coordinate_steps = recomputed.coordinates.packed_steps();
        }
    }
    Some(dispute)
}

/// Whether a recorded dispute holds for `bytes`: [`check`] finds a mismatch too (any statistic:
/// the verifier does not need to agree on which one differs first). A committee member reports a
/// dispute that does not hold as false.
pub fn dispute_holds(
    commitment: &pb::Commitment,
    bytes: &[u8],
    base: &Update,
    shape: StatsShape,
    seed: u64,
) -> bool {
    check(commitment, bytes, base, shape, seed).is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sketch::UpdateStats;
    use crate::update::Encoding;

    fn model(values: &[f32]) -> Update {
        Update {
            tensors: BTreeMap::from([("w".to_string(), (vec![values.len()], values.to_vec()))]),
        }
    }

    const SHAPE: StatsShape = StatsShape {
        sketch_length: 8,
        coordinate_samples: 3,
        coordinate_scope: pb::CoordinateScope::EVERY_TENSOR,
    };

    /// The commitment a member computes (the member role's `commit_payload` arithmetic).
    fn committed(bytes: &[u8], base: &Update, round: u64) -> pb::Commitment {
        let sent = Update::from_bytes(bytes).unwrap();
        let stats = UpdateStats::new(&sent.minus(base).unwrap(), 10, 0.5, SHAPE, round);
        pb::Commitment {
            round,
            member: "m".into(),
            size_bytes: bytes.len() as u64,
            norm_micro: fixed::f64_to_micro_unsigned(stats.l2_norm).unwrap(),
            sketch: signed_bytes::pack(&stats.sketch).unwrap(),
            coordinate_step_nano: stats.coordinates.step_nano(),
            coordinate_steps: stats.coordinates.packed_steps(),
            ..Default::default()
        }
    }

    #[test]
    fn an_honest_commitment_matches_in_both_encodings() {
        let base = model(&[0.5, -0.25, 1.0, 0.0]);
        for encoding in [Encoding::F32, Encoding::Int8] {
            let bytes = model(&[0.75, -0.5, 1.5, 0.125]).to_bytes(encoding);
            let c = committed(&bytes, &base, 3);
            assert_eq!(
                check(&c, &bytes, &base, SHAPE, c.round),
                None,
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn each_lie_is_found() {
        let base = model(&[0.5, -0.25, 1.0, 0.0]);
        let bytes = model(&[5.0, -5.0, 9.0, 3.0]).to_bytes(Encoding::F32);
        let honest = committed(&bytes, &base, 3);
        let mismatch_of =
            |c: &pb::Commitment| check(c, &bytes, &base, SHAPE, c.round).unwrap().mismatch;
        let small = pb::Commitment {
            norm_micro: honest.norm_micro / 10,
            ..honest.clone()
        };
        let d = check(&small, &bytes, &base, SHAPE, small.round).unwrap();
        assert_eq!(d.mismatch, pb::StatMismatch::NORM);
        assert_eq!(d.norm_micro, honest.norm_micro);
        let mut flipped = honest.clone();
        flipped.sketch = honest
            .sketch
            .iter()
            .map(|&v| (v as i8).wrapping_neg() as u8)
            .collect();
        assert_eq!(mismatch_of(&flipped), pb::StatMismatch::SKETCH);
        let resized = pb::Commitment {
            size_bytes: honest.size_bytes + 1,
            ..honest.clone()
        };
        assert_eq!(mismatch_of(&resized), pb::StatMismatch::SIZE);
        let mut shifted = honest.clone();
        shifted.coordinate_steps[1] += 2;
        let d = check(&shifted, &bytes, &base, SHAPE, shifted.round).unwrap();
        assert_eq!(d.mismatch, pb::StatMismatch::COORDINATES);
        assert_eq!(d.coordinate_steps, honest.coordinate_steps);
        assert_eq!(d.coordinate_step_nano, honest.coordinate_step_nano);
        // A step two nano-units off (every value scaled with it) is a mismatch too.
        let rescaled = pb::Commitment {
            coordinate_step_nano: honest.coordinate_step_nano + 2,
            ..honest.clone()
        };
        assert_eq!(mismatch_of(&rescaled), pb::StatMismatch::COORDINATES);
        // Another round's seed gives another sketch.
        let elsewhere = pb::Commitment {
            round: 4,
            ..honest.clone()
        };
        assert_eq!(mismatch_of(&elsewhere), pb::StatMismatch::SKETCH);
        assert!(dispute_holds(&small, &bytes, &base, SHAPE, small.round));
        assert!(!dispute_holds(&honest, &bytes, &base, SHAPE, honest.round));
    }

    #[test]
    fn a_blob_of_other_tensors_is_malformed() {
        let base = model(&[0.5, -0.25]);
        let honest = committed(&model(&[1.0, 1.0]).to_bytes(Encoding::F32), &base, 2);
        let other = model(&[1.0, 1.0, 1.0]).to_bytes(Encoding::F32);
        let d = check(&honest, &other, &base, SHAPE, honest.round).unwrap();
        assert_eq!(d.mismatch, pb::StatMismatch::MALFORMED);
        assert_eq!(
            (
                d.size_bytes,
                d.norm_micro,
                d.sketch.len(),
                d.coordinate_step_nano,
                d.coordinate_steps.len()
            ),
            (0, 0, 0, 0, 0)
        );
        let garbage = b"not a safetensors file";
        assert_eq!(
            check(&honest, garbage, &base, SHAPE, honest.round)
                .unwrap()
                .mismatch,
            pb::StatMismatch::MALFORMED
        );
    }
}
