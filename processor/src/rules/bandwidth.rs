//! Bandwidth reports: measured throughput of the signer's outgoing links.
//!
//! `ReportBandwidth` (active member): every measurement is of a link from the signer to another
//! registered member (active or suspended); a link keeps its newest
//! [`LINK_SAMPLES_KEPT`] samples, oldest first, and a sample's epoch may not be older than the
//! link's newest sample. The links feed routing (latency `M / B_ij`) and the anomaly evidence.
//! The signer's link index (whom it has reported links to) gains the report's targets, so that
//! `EvaluateRound` reads the links among a round's committers without trying every pair.

use bcfl_protos::bcfl as pb;

use super::{attr, ensure, require_active_member, require_consortium, Attributes};
use crate::address;
use crate::error::Result;
use crate::limits::LINK_SAMPLES_KEPT;
use crate::payload::{PublicKey, ReportBandwidth};
use crate::state::BcflState;

/// `ReportBandwidth`: appends one sample to each measured link of the signer.
pub fn report_bandwidth(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &ReportBandwidth,
) -> Result<Attributes> {
    let from = signer.as_str();
    // Everything this action reads, in one state request (each request is a round trip to the
    // validator): the consortium, the signer, and each target with its link.
    let mut prefetch: Vec<String> = Vec::with_capacity(2 + 2 * action.measurements.len());
    prefetch.push(address::consortium_address());
    prefetch.push(address::member_address(from));
    prefetch.push(address::link_index_address(from));
    for m in &action.measurements {
        prefetch.push(address::member_address(m.to.as_str()));
        prefetch.push(address::link_address(from, m.to.as_str()));
    }
    state.prefetch(&prefetch)?;
    require_consortium(state)?;
    require_active_member(state, from, "signer")?;
    for m in &action.measurements {
        ensure!(m.to != *signer, "a member may not report a link to itself");
    }
    for m in &action.measurements {
        let to = m.to.as_str();
        ensure!(
            state.member(to)?.is_some(),
            "link target {to} is not a registered member"
        );
    }
    for m in &action.measurements {
        let to = m.to.as_str();
        let mut link = state.link(from, to)?.unwrap_or_else(|| pb::Link {
            from: from.to_owned(),
            to: to.to_owned(),
            ..Default::default()
        });
        if let Some(newest) = link.samples.last() {
            ensure!(
                action.epoch >= newest.epoch,
                "epoch {} is older than the newest sample (epoch {}) of link {from} -> {to}",
                action.epoch,
                newest.epoch
            );
        }
        link.samples.push(pb::LinkSample {
            epoch: action.epoch,
            bytes_per_sec: m.bytes_per_sec,
            rtt_us: m.rtt_us,
            probe_bytes: m.probe_bytes,
            ..Default::default()
        });
        let excess = link.samples.len().saturating_sub(LINK_SAMPLES_KEPT);
        if excess > 0 {
            let kept = link.samples.to_vec().split_off(excess);
            link.samples = kept.into();
        }
        state.put_link(link)?;
    }
    state.add_link_targets(from, action.measurements.iter().map(|m| m.to.as_str()))?;
    Ok(vec![
        attr("member", signer),
        attr("epoch", action.epoch),
        attr("links", action.measurements.len()),
    ])
}
