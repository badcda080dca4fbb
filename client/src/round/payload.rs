//! The payloads a member builds from its own work, shared by the member role ([`super::member`],
//! feature `train`) and the experiments that commit synthetic updates ([`crate::scale`]).

use bcfl_fed::sketch::UpdateStats;
use bcfl_net::manifest::BlobId;
use bcfl_protos::bcfl as pb;

use super::{Error, Result};
use crate::fixed;

/// The `CommitUpdate` of an update blob `id` of `size` bytes for `round`, trained from
/// `base_round`'s parent model.
pub fn commit_payload(
    round: u64,
    base_round: u64,
    id: &BlobId,
    size: u64,
    stats: &UpdateStats,
) -> Result<pb::BcflPayload> {
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_update(pb::CommitUpdate {
        round,
        update_sha256: id.as_str().to_owned(),
        size_bytes: size,
        num_samples: stats.samples,
        loss_micro: fixed::f64_to_micro(stats.loss).map_err(|source| Error::Fixed {
            what: "the training loss",
            source,
        })?,
        norm_micro: fixed::f64_to_micro_unsigned(stats.l2_norm).map_err(|source| Error::Fixed {
            what: "the update norm",
            source,
        })?,
        sketch: bcfl_protos::signed_bytes::pack(&stats.sketch).ok_or_else(|| {
            Error::Config("the sketch has a value beyond one byte (-128..=127)".into())
        })?,
        coordinate_step_nano: stats.coordinates.step_nano(),
        coordinate_steps: stats.coordinates.packed_steps(),
        base_round,
        ..Default::default()
    });
    Ok(payload)
}
