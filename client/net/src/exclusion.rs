//! Exclusion-aware routing: the members a round's on-chain verdict excluded leave the routing
//! graph for that round.
//!
//! The processor's `EvaluateRound` stores each round's verdict (`bcfl_protos::bcfl::Verdict`)
//! with its combined exclusion set. A transfer planned or run "for round N" ([`plan`] with
//! `--ledger --round N`, [`node`] `fetch|distribute --round N`) reads that set from the typed
//! family state ([`FamilyState::verdicts`]) and removes those members from the bandwidth graph
//! (they relay nothing) and from the peers (they receive nothing), and says so in its output.
//! A round without a verdict is an error rather than a silent "nobody excluded".
//!
//! [`plan`]: super::plan
//! [`node`]: super::node
//!
//! ```
//! use bcfl_ledger::state::FamilyState;
//! use bcfl_net::exclusion::RoundExclusion;
//! use bcfl_protos::bcfl::Verdict;
//!
//! let mut state = FamilyState::default();
//! let mut verdict = Verdict::new();
//! verdict.round = 3;
//! verdict.excluded = vec!["m4".into()].into();
//! state.verdicts.insert(3, verdict);
//! let exclusion = RoundExclusion::from_state(&state, 3)?;
//! assert_eq!(exclusion.excluded, ["m4"]);
//! assert!(RoundExclusion::from_state(&state, 4).is_err());
//! # Ok::<(), bcfl_net::NetError>(())
//! ```

use bcfl_processor::graph::BandwidthGraph;
use serde::{Deserialize, Serialize};

use super::error::{NetError, Result};
use super::route::Peers;
use bcfl_ledger::state::FamilyState;

/// The members a round's verdict excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundExclusion {
    /// The round.
    pub round: u64,
    /// The excluded members (public keys), sorted as the verdict stores them.
    pub excluded: Vec<String>,
}

impl RoundExclusion {
    /// The exclusion set of `round`'s verdict in `state`; [`NetError::NoVerdict`] when the
    /// round has none.
    pub fn from_state(state: &FamilyState, round: u64) -> Result<Self> {
        let verdict = state
            .verdicts
            .get(&round)
            .ok_or(NetError::NoVerdict { round })?;
        Ok(Self {
            round,
            excluded: verdict.excluded.to_vec(),
        })
    }

    /// Whether `node` is excluded.
    pub fn excludes(&self, node: &str) -> bool {
        self.excluded.iter().any(|e| e == node)
    }

    /// `graph` without the excluded members it contains.
    pub fn graph(&self, graph: &BandwidthGraph) -> Result<BandwidthGraph> {
        let present: Vec<&String> = self.excluded.iter().filter(|n| graph.contains(n)).collect();
        Ok(graph.without_nodes(&present)?)
    }

    /// `peers` without the excluded members.
    pub fn peers(&self, peers: &Peers) -> Peers {
        Peers(
            peers
                .0
                .iter()
                .filter(|(node, _)| !self.excludes(node))
                .map(|(node, url)| (node.clone(), url.clone()))
                .collect(),
        )
    }

    /// A one-line account for people: `round N verdict: excluded a, b (removed from routing)`.
    pub fn describe(&self) -> String {
        if self.excluded.is_empty() {
            format!("round {} verdict: no member excluded", self.round)
        } else {
            format!(
                "round {} verdict: excluded {} (removed from routing)",
                self.round,
                self.excluded.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exclusion() -> RoundExclusion {
        RoundExclusion {
            round: 2,
            excluded: vec!["b".into(), "z".into()],
        }
    }

    #[test]
    fn excluded_members_leave_graph_and_peers() {
        let graph =
            BandwidthGraph::from_links([("a", "b", 10.0), ("b", "c", 10.0), ("a", "c", 1.0)])
                .unwrap();
        // z is not in the graph: ignored there.
        let without = exclusion().graph(&graph).unwrap();
        assert_eq!(without.nodes().len(), 2);
        assert!(!without.contains("b"));
        assert_eq!(without.bandwidth("a", "c"), Some(1.0));
        let peers = Peers(
            [("a", "u1"), ("b", "u2"), ("c", "u3")]
                .into_iter()
                .map(|(n, u)| (n.to_owned(), u.to_owned()))
                .collect(),
        );
        let kept = exclusion().peers(&peers);
        assert_eq!(kept.0.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(
            exclusion().describe(),
            "round 2 verdict: excluded b, z (removed from routing)"
        );
        let none = RoundExclusion {
            round: 1,
            excluded: vec![],
        };
        assert_eq!(none.describe(), "round 1 verdict: no member excluded");
        assert_eq!(none.graph(&graph).unwrap(), graph);
    }

    #[test]
    fn a_round_without_a_verdict_is_an_error() {
        let err = RoundExclusion::from_state(&FamilyState::default(), 5).unwrap_err();
        assert!(matches!(err, NetError::NoVerdict { round: 5 }), "{err}");
        assert!(err.to_string().contains("round 5"), "{err}");
    }
}
