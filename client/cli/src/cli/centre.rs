//! `round open --aggregator centre`: the deterministic aggregator choice of the design, made from
//! on-chain evidence only.
//!
//! The candidates are the ACTIVE members; the graph is their measured links, each the median of
//! its kept samples (`BandwidthGraph::from_ledger_links`, the processor's own graph code); the
//! aggregator is the graph centre: the member whose worst round trip (collect an update, send the
//! model back) is smallest, ties by total then by key. Anyone can recompute the choice from the
//! ledger with `bcfl audit bandwidth`.

use anyhow::{anyhow, Context as _};
use bcfl_ledger::state::FamilyState;
use bcfl_processor::graph::{BandwidthGraph, CentreCriterion, TransferModel};
use bcfl_processor::limits::LINK_SAMPLES_KEPT;
use bcfl_protos::bcfl::MemberStatus;

/// Size of the transfer the centre is computed for. Store-and-forward latencies all scale with
/// it, so the choice does not depend on it.
const MODEL_BYTES: f64 = 1_048_576.0;

/// The centre of the bandwidth graph among active members.
pub(crate) fn centre_aggregator(state: &FamilyState) -> anyhow::Result<String> {
    let active = |key: &str| {
        state
            .members
            .get(key)
            .is_some_and(|m| m.status == MemberStatus::ACTIVE)
    };
    let links = state
        .links
        .values()
        .filter(|l| active(&l.from) && active(&l.to));
    let graph = BandwidthGraph::from_ledger_links(links, LINK_SAMPLES_KEPT)
        .context("building the bandwidth graph")?;
    let model = TransferModel::new(MODEL_BYTES, MODEL_BYTES)?;
    let centre = graph.centre(&model, CentreCriterion::MinMax).map_err(|e| {
        anyhow!(
            "no aggregator can be chosen from the measured links ({e}): every active member \
                 must reach and be reached by the others (bcfl bandwidth report), or pass \
                 --aggregator KEY"
        )
    })?;
    tracing::info!(
        centre = centre.node.as_str(),
        eccentricity_s = centre.eccentricity_s,
        "aggregator chosen"
    );
    Ok(centre.node.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcfl_protos::bcfl::{Link, LinkSample, Member};

    fn key(c: char) -> String {
        format!("02{}", c.to_string().repeat(64))
    }

    fn state(members: &[(char, MemberStatus)], links: &[(char, char, u64)]) -> FamilyState {
        let mut state = FamilyState::default();
        for (c, status) in members {
            state.members.insert(
                key(*c),
                Member {
                    public_key: key(*c),
                    status: *status,
                    ..Default::default()
                },
            );
        }
        for (from, to, bps) in links {
            let sample = LinkSample {
                epoch: 1,
                bytes_per_sec: *bps,
                rtt_us: 100,
                probe_bytes: 1,
                ..Default::default()
            };
            state.links.insert(
                (key(*from), key(*to)),
                Link {
                    from: key(*from),
                    to: key(*to),
                    samples: vec![sample].into(),
                    ..Default::default()
                },
            );
        }
        state
    }

    #[test]
    fn picks_the_hub_of_a_star() {
        use MemberStatus::ACTIVE;
        // b is one fast hop from everyone; a and c only reach each other through b.
        let links = [
            ('a', 'b', 1000),
            ('b', 'a', 1000),
            ('c', 'b', 1000),
            ('b', 'c', 1000),
        ];
        let s = state(&[('a', ACTIVE), ('b', ACTIVE), ('c', ACTIVE)], &links);
        assert_eq!(centre_aggregator(&s).unwrap(), key('b'));
    }

    #[test]
    fn suspended_members_are_not_candidates_or_relays() {
        use MemberStatus::{ACTIVE, SUSPENDED};
        let links = [
            ('a', 'b', 1000),
            ('b', 'a', 1000),
            ('c', 'b', 1000),
            ('b', 'c', 1000),
            ('a', 'c', 10),
            ('c', 'a', 10),
        ];
        let s = state(&[('a', ACTIVE), ('b', SUSPENDED), ('c', ACTIVE)], &links);
        // Without b, a and c only have their slow direct link; the tie goes to the smaller key.
        assert_eq!(centre_aggregator(&s).unwrap(), key('a'));
        let s = state(&[('a', ACTIVE), ('b', SUSPENDED)], &links[..2]);
        assert!(centre_aggregator(&s).is_err());
    }
}
