//! The addresses a transaction must declare in its header.
//!
//! A Sawtooth validator lets a transaction read only addresses that start with one of its header
//! `inputs`, and write only addresses that start with one of its `outputs`. [`declared_addresses`]
//! gives, for a payload and its signer, exactly the lists the rules in [`crate::rules`] use, so a
//! client builds headers with it. The lists are sorted, deduplicated, and drop any entry covered
//! by a shorter prefix in the same list, so they are deterministic.
//!
//! | action | inputs | outputs |
//! | --- | --- | --- |
//! | InitConsortium | consortium | consortium |
//! | RegisterMember | consortium, member, directory | member, directory |
//! | UpdateMember | consortium, member | member |
//! | SuspendMember | consortium, member, directory | member, directory |
//! | OpenRound N | consortium, directory, aggregator's member, round N; for N > 1 also round N-1, aggregate N-1 and verdict N-1 | consortium, round N |
//! | CommitUpdate N (base round B) | consortium, signer's member, round N, commitment (N, signer); round B when B != N | round N, commitment (N, signer) |
//! | ReportBandwidth | consortium, signer's member, each target's member, links out of the signer (prefix), the signer's link index | links out of the signer (prefix), the signer's link index |
//! | EvaluateRound N | consortium, signer's member, round N, verdict N, round, verdict and aggregate N-1 (from round 2), all commitments (type prefix: round N's, and each committer's last evaluated one), all links and link indexes (type prefixes), all sketch sums (type prefix), consensus sketch, consensus archives (type prefix) | round N, verdict N, all sketch sums (type prefix), consensus sketch, consensus archives (type prefix) |
//! | CommitAggregate N | consortium, signer's member, round N, verdict N, aggregate N, commitments of N (prefix) | round N, aggregate N |
//! | CloseRound N | consortium, round N | round N |
//! | SealRound N | consortium, signer's member, round N, commitments of N (prefix) | round N |
//! | RevealSketch N | consortium, round N, commitment (N, signer) | commitment (N, signer) |
//!
//! ```
//! use bcfl_processor::access::declared_addresses;
//! use bcfl_processor::address;
//! use bcfl_protos::bcfl::{BcflPayload, CloseRound};
//!
//! let signer = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";
//! let mut payload = BcflPayload::new();
//! payload.set_close_round(CloseRound { round: 2, ..Default::default() });
//! let (inputs, outputs) = declared_addresses(&payload, signer).unwrap();
//! assert_eq!(outputs, vec![address::round_address(2)]);
//! assert!(inputs.contains(&address::consortium_address()));
//! ```

use bcfl_protos::bcfl as pb;

use crate::address::{self, AddressKind};
use crate::payload::{field, Action, PayloadError, PublicKey};

/// The header `inputs` and `outputs` of a transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    /// Addresses or prefixes the transaction reads.
    pub inputs: Vec<String>,
    /// Addresses or prefixes the transaction writes.
    pub outputs: Vec<String>,
}

impl AccessList {
    fn new(inputs: Vec<String>, outputs: Vec<String>) -> Self {
        Self {
            inputs: normalize(inputs),
            outputs: normalize(outputs),
        }
    }
}

/// Sorts, deduplicates, and drops entries covered by another (shorter) prefix in the list.
fn normalize(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list.dedup();
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for entry in list {
        // Sorted order puts a prefix right before the entries it covers.
        if out.last().is_some_and(|p| entry.starts_with(p.as_str())) {
            continue;
        }
        out.push(entry);
    }
    out
}

/// The header inputs and outputs of a transaction carrying `payload`, signed by
/// `signer_public_key`. Fails when the payload or the key does not parse.
pub fn declared_addresses(
    payload: &pb::BcflPayload,
    signer_public_key: &str,
) -> Result<(Vec<String>, Vec<String>), PayloadError> {
    let signer = field("signer_public_key", PublicKey::parse(signer_public_key))?;
    let action = Action::from_proto(payload)?;
    let access = action_addresses(&action, &signer);
    Ok((access.inputs, access.outputs))
}

/// The header inputs and outputs of a transaction carrying `action`, signed by `signer`.
pub fn action_addresses(action: &Action, signer: &PublicKey) -> AccessList {
    let consortium = address::consortium_address();
    let signer_member = address::member_address(signer.as_str());
    match action {
        Action::InitConsortium(_) => AccessList::new(vec![consortium.clone()], vec![consortium]),
        Action::RegisterMember(a) => {
            let member = address::member_address(a.public_key.as_str());
            let directory = address::directory_address();
            AccessList::new(
                vec![consortium, member.clone(), directory.clone()],
                vec![member, directory],
            )
        }
        Action::UpdateMember(a) => {
            let member = address::member_address(a.public_key.as_str());
            AccessList::new(vec![consortium, member.clone()], vec![member])
        }
        Action::SuspendMember(a) => {
            let member = address::member_address(a.public_key.as_str());
            let directory = address::directory_address();
            AccessList::new(
                vec![consortium, member.clone(), directory.clone()],
                vec![member, directory],
            )
        }
        Action::OpenRound(a) => {
            let round = address::round_address(a.round);
            let mut inputs = vec![
                consortium.clone(),
                address::directory_address(),
                address::member_address(a.aggregator.as_str()),
                round.clone(),
            ];
            if a.round > 1 {
                inputs.push(address::round_address(a.round - 1));
                inputs.push(address::aggregate_address(a.round - 1));
                inputs.push(address::verdict_address(a.round - 1));
            }
            AccessList::new(inputs, vec![consortium, round])
        }
        Action::CommitUpdate(a) => {
            let round = address::round_address(a.round);
            let commitment = address::commitment_address(a.round, signer.as_str());
            let mut inputs = vec![consortium, signer_member, round.clone(), commitment.clone()];
            if a.base_round != a.round {
                inputs.push(address::round_address(a.base_round));
            }
            AccessList::new(inputs, vec![round, commitment])
        }
        Action::ReportBandwidth(a) => {
            let links = address::links_from_prefix(signer.as_str());
            let index = address::link_index_address(signer.as_str());
            let mut inputs = vec![consortium, signer_member, links.clone(), index.clone()];
            inputs.extend(
                a.measurements
                    .iter()
                    .map(|m| address::member_address(m.to.as_str())),
            );
            AccessList::new(inputs, vec![links, index])
        }
        Action::EvaluateRound(a) => {
            let round = address::round_address(a.round);
            let verdict = address::verdict_address(a.round);
            let history = address::type_prefix(AddressKind::SketchSum);
            let consensus = address::consensus_address();
            let archives = address::type_prefix(AddressKind::ConsensusArchive);
            let mut inputs = vec![
                consortium,
                signer_member,
                round.clone(),
                verdict.clone(),
                // This round's commitments, and each committer's last evaluated one.
                address::type_prefix(AddressKind::Commitment),
                address::type_prefix(AddressKind::Link),
                address::type_prefix(AddressKind::LinkIndex),
                history.clone(),
                consensus.clone(),
                archives.clone(),
            ];
            if a.round >= 2 {
                // A withdrawal reads the round before's verdict (restored from its round's
                // committers) and aggregate.
                inputs.push(address::round_address(a.round - 1));
                inputs.push(address::verdict_address(a.round - 1));
                inputs.push(address::aggregate_address(a.round - 1));
            }
            AccessList::new(inputs, vec![round, verdict, history, consensus, archives])
        }
        Action::CommitAggregate(a) => {
            let round = address::round_address(a.round);
            let aggregate = address::aggregate_address(a.round);
            AccessList::new(
                vec![
                    consortium,
                    signer_member,
                    round.clone(),
                    address::verdict_address(a.round),
                    aggregate.clone(),
                    address::commitments_prefix(a.round),
                    address::directory_address(),
                ],
                vec![round, aggregate],
            )
        }
        Action::CloseRound(a) => {
            let round = address::round_address(a.round);
            AccessList::new(
                vec![
                    consortium,
                    round.clone(),
                    address::aggregate_address(a.round),
                ],
                vec![round],
            )
        }
        Action::DisputeCommitment(a) => {
            let round = address::round_address(a.round);
            AccessList::new(
                vec![
                    consortium,
                    signer_member,
                    round.clone(),
                    address::commitment_address(a.round, a.member.as_str()),
                ],
                vec![round],
            )
        }
        Action::SealRound(a) => {
            let round = address::round_address(a.round);
            AccessList::new(
                vec![
                    consortium,
                    signer_member,
                    round.clone(),
                    address::commitments_prefix(a.round),
                ],
                vec![round],
            )
        }
        Action::RevealSketch(a) => {
            let commitment = address::commitment_address(a.round, signer.as_str());
            AccessList::new(
                vec![
                    consortium,
                    address::round_address(a.round),
                    commitment.clone(),
                ],
                vec![commitment],
            )
        }
        Action::AttestAggregate(a) => {
            let aggregate = address::aggregate_address(a.round);
            AccessList::new(
                vec![
                    consortium,
                    signer_member,
                    address::round_address(a.round),
                    address::verdict_address(a.round),
                    aggregate.clone(),
                ],
                vec![aggregate],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_sorts_dedups_and_drops_covered() {
        let list = vec![
            "abcd".to_owned(),
            "ab".to_owned(),
            "0011".to_owned(),
            "ab".to_owned(),
            "abff".to_owned(),
            "ac".to_owned(),
        ];
        assert_eq!(normalize(list), vec!["0011", "ab", "ac"]);
    }

    #[test]
    fn bad_signer_is_an_error() {
        let mut payload = pb::BcflPayload::new();
        payload.set_close_round(pb::CloseRound {
            round: 1,
            ..Default::default()
        });
        let err = declared_addresses(&payload, "nope").unwrap_err();
        assert!(err.to_string().starts_with("signer_public_key:"));
    }
}
