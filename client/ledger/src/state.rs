//! Typed reads of the `bcfl` family's state.
//!
//! Every address of the family carries a type tag after the namespace (see
//! `bcfl_processor::address`), so any leaf decodes to a [`BcflObject`] without guessing.
//! [`FamilyState`] collects a whole snapshot (all leaves under the namespace at one head) into
//! maps an auditor can query; [`BcflReader`] reads single objects by address.
//!
//! ```no_run
//! # async fn run() -> Result<(), bcfl_ledger::rest::RestError> {
//! use bcfl_ledger::rest::RestClient;
//! use bcfl_ledger::state::BcflReader;
//!
//! let reader = BcflReader::new(RestClient::new("http://127.0.0.1:8008")?);
//! if let Some(consortium) = reader.consortium(None).await? {
//!     println!("current round {}", consortium.current_round);
//! }
//! let state = reader.family_state(None).await?;
//! println!("{} members at head {}", state.members.len(), state.head);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use bcfl_processor::address::{self, AddressKind};
use bcfl_processor::anomaly::stored;
use bcfl_processor::NAMESPACE;
use bcfl_protos::bcfl as pb;
use bcfl_protos::compact::Compact;
use protobuf::Message;

use super::rest::{RestClient, RestError, StateSnapshot};

/// A state leaf that is not a `bcfl` object.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The address is outside the namespace or has an unknown type tag.
    #[error("{0} is not a bcfl address (unknown namespace or type tag)")]
    UnknownAddress(String),
    /// The bytes do not decode as the object the tag names.
    #[error("{address} does not hold a valid {kind}: {reason}")]
    Malformed {
        /// The address.
        address: String,
        /// The expected message.
        kind: &'static str,
        /// The protobuf error.
        reason: String,
    },
}

impl From<StateError> for RestError {
    fn from(e: StateError) -> Self {
        let address = match &e {
            StateError::UnknownAddress(a) | StateError::Malformed { address: a, .. } => a.clone(),
        };
        RestError::State {
            address,
            reason: e.to_string(),
        }
    }
}

/// One decoded state object.
#[derive(Debug, Clone, PartialEq)]
pub enum BcflObject {
    /// Tag `00`.
    Consortium(pb::Consortium),
    /// Tag `01`: the members at one address (collisions share it).
    Members(pb::MemberList),
    /// Tag `02`.
    Round(pb::Round),
    /// Tag `03`: commitments of one (round, member) address.
    Commitments(pb::CommitmentList),
    /// Tag `04`: links of one (from, to) address.
    Links(pb::LinkList),
    /// Tag `05`.
    Verdict(pb::Verdict),
    /// Tag `06`.
    Aggregate(pb::Aggregate),
    /// Tag `07`: the member directory (key and status of every member).
    Directory(pb::MemberList),
    /// Tag `08`: the sketch sums of one member-keyed address (collisions share it).
    SketchSums(pb::SketchSumList),
    /// Tag `09`: the consensus sketch.
    Consensus(pb::ConsensusSketch),
    /// Tag `0a`: the link indexes of one member-keyed address (collisions share it).
    LinkIndexes(pb::LinkIndexList),
    /// Tag `0b`: the consensus sum after one round, kept for the sums that still count it.
    ConsensusArchive(pb::ConsensusArchive),
}

fn parse<M: Message>(address: &str, kind: &'static str, data: &[u8]) -> Result<M, StateError> {
    M::parse_from_bytes(data).map_err(|e| StateError::Malformed {
        address: address.to_owned(),
        kind,
        reason: e.to_string(),
    })
}

/// [`parse`] for a record stored with its keys and digests as bytes, expanded
/// ([`bcfl_protos::compact`]).
fn parse_expanded<M: Message + Compact>(
    address: &str,
    kind: &'static str,
    data: &[u8],
) -> Result<M, StateError> {
    parse::<M>(address, kind, data)?
        .expanded()
        .map_err(|e| StateError::Malformed {
            address: address.to_owned(),
            kind,
            reason: e.to_string(),
        })
}

impl BcflObject {
    /// Decodes the bytes at `address` by the address's type tag; the records stored with their
    /// keys and digests as bytes come back with them as hex, as the rules see them.
    pub fn decode(address: &str, data: &[u8]) -> Result<Self, StateError> {
        let kind = AddressKind::of(address)
            .ok_or_else(|| StateError::UnknownAddress(address.to_owned()))?;
        Ok(match kind {
            AddressKind::Consortium => Self::Consortium(parse(address, "Consortium", data)?),
            AddressKind::Member => Self::Members(parse(address, "MemberList", data)?),
            AddressKind::Round => Self::Round(parse_expanded(address, "Round", data)?),
            AddressKind::Commitment => {
                Self::Commitments(parse_expanded(address, "CommitmentList", data)?)
            }
            AddressKind::Link => Self::Links(parse(address, "LinkList", data)?),
            AddressKind::Verdict => Self::Verdict(parse_expanded(address, "Verdict", data)?),
            AddressKind::Aggregate => Self::Aggregate(parse(address, "Aggregate", data)?),
            AddressKind::Directory => Self::Directory(parse(address, "MemberList", data)?),
            AddressKind::SketchSum => {
                Self::SketchSums(parse_expanded(address, "SketchSumList", data)?)
            }
            AddressKind::Consensus => Self::Consensus(parse(address, "ConsensusSketch", data)?),
            AddressKind::LinkIndex => Self::LinkIndexes(parse(address, "LinkIndexList", data)?),
            AddressKind::ConsensusArchive => {
                Self::ConsensusArchive(parse(address, "ConsensusArchive", data)?)
            }
        })
    }

    /// The object's type name as `audit export` writes it: `consortium`, `members`, `round`,
    /// `commitments`, `links`, `verdict`, `aggregate`, `directory`, `sketch_sums`, `consensus`,
    /// `link_indexes` or `consensus_archive`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Consortium(_) => "consortium",
            Self::Members(_) => "members",
            Self::Round(_) => "round",
            Self::Commitments(_) => "commitments",
            Self::Links(_) => "links",
            Self::Verdict(_) => "verdict",
            Self::Aggregate(_) => "aggregate",
            Self::Directory(_) => "directory",
            Self::SketchSums(_) => "sketch_sums",
            Self::Consensus(_) => "consensus",
            Self::LinkIndexes(_) => "link_indexes",
            Self::ConsensusArchive(_) => "consensus_archive",
        }
    }

    /// The protobuf message inside.
    pub fn message(&self) -> &dyn Message {
        match self {
            Self::Consortium(m) => m,
            Self::Members(m) | Self::Directory(m) => m,
            Self::Round(m) => m,
            Self::Commitments(m) => m,
            Self::Links(m) => m,
            Self::Verdict(m) => m,
            Self::Aggregate(m) => m,
            Self::SketchSums(m) => m,
            Self::Consensus(m) => m,
            Self::LinkIndexes(m) => m,
            Self::ConsensusArchive(m) => m,
        }
    }
}

/// The whole family state at one head, sorted and keyed for queries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FamilyState {
    /// The block the state was read at.
    pub head: String,
    /// The consortium, once initialized.
    pub consortium: Option<pb::Consortium>,
    /// Every member (full records), by public key.
    pub members: BTreeMap<String, pb::Member>,
    /// Rounds by number.
    pub rounds: BTreeMap<u64, pb::Round>,
    /// Commitments by (round, member).
    pub commitments: BTreeMap<(u64, String), pb::Commitment>,
    /// Links by (from, to).
    pub links: BTreeMap<(String, String), pb::Link>,
    /// Verdicts by round, each `accepted` restored from its round's committers
    /// ([`pb::Verdict::restored`]).
    pub verdicts: BTreeMap<u64, pb::Verdict>,
    /// Aggregates by round.
    pub aggregates: BTreeMap<u64, pb::Aggregate>,
    /// Every stored sketch sum, sorted by member, and the consensus sketch (empty before the
    /// first evaluation); each sum's `consensus` restored from what it stores
    /// ([`bcfl_processor::anomaly::stored`]), as `EvaluateRound` restores it.
    pub sketch_history: pb::SketchHistory,
    /// The consensus sums archived after rounds, by round.
    pub consensus_archives: BTreeMap<u64, Vec<i64>>,
    /// Every leaf, decoded, in address order.
    pub objects: Vec<(String, BcflObject)>,
}

/// A stored verdict with its excluded and accepted members restored from its round's
/// `committers` ([`pb::Verdict::restored`]); positions that name no committer are a malformed
/// verdict.
fn restored_verdict(stored: pb::Verdict, committers: &[String]) -> Result<pb::Verdict, StateError> {
    let round = stored.round;
    stored
        .restored(committers)
        .map_err(|e| StateError::Malformed {
            address: address::verdict_address(round),
            kind: "Verdict",
            reason: e.to_string(),
        })
}

impl FamilyState {
    /// Decodes every leaf of a snapshot of the namespace.
    pub fn from_snapshot(snapshot: StateSnapshot) -> Result<Self, StateError> {
        let mut state = FamilyState {
            head: snapshot.head,
            ..Default::default()
        };
        for entry in snapshot.entries {
            let object = BcflObject::decode(&entry.address, &entry.data)?;
            match &object {
                BcflObject::Consortium(c) => state.consortium = Some(c.clone()),
                BcflObject::Members(list) => {
                    for m in list.get_entries() {
                        state.members.insert(m.public_key.clone(), m.clone());
                    }
                }
                BcflObject::Round(r) => {
                    state.rounds.insert(r.number, r.clone());
                }
                BcflObject::Commitments(list) => {
                    for c in list.get_entries() {
                        state
                            .commitments
                            .insert((c.round, c.member.clone()), c.clone());
                    }
                }
                BcflObject::Links(list) => {
                    for l in list.get_entries() {
                        state
                            .links
                            .insert((l.from.clone(), l.to.clone()), l.clone());
                    }
                }
                BcflObject::Verdict(v) => {
                    state.verdicts.insert(v.round, v.clone());
                }
                BcflObject::Aggregate(a) => {
                    state.aggregates.insert(a.round, a.clone());
                }
                // Derived records: the members (tag 01) and the links (04) are read in full.
                BcflObject::Directory(_) | BcflObject::LinkIndexes(_) => {}
                BcflObject::Consensus(c) => state.sketch_history.set_consensus(c.clone()),
                BcflObject::ConsensusArchive(a) => {
                    state.consensus_archives.insert(a.round, a.sum.clone());
                }
                BcflObject::SketchSums(list) => {
                    state
                        .sketch_history
                        .entries
                        .extend(list.entries.iter().cloned());
                }
            }
            state.objects.push((entry.address, object));
        }
        state
            .sketch_history
            .entries
            .sort_by(|a, b| a.member.cmp(&b.member));
        for (round, verdict) in state.verdicts.iter_mut() {
            let committers = state
                .rounds
                .get(round)
                .map(|r| r.committers.to_vec())
                .unwrap_or_default();
            *verdict = restored_verdict(std::mem::take(verdict), &committers)?;
        }
        state.sketch_history.entries = restored_entries(
            &state.sketch_history,
            &state.consensus_archives,
            &state.commitments,
        )
        .into();
        Ok(state)
    }

    /// The sketch history replayed from the ledger's own records: the commitments of every
    /// evaluated round before `round` (a round is evaluated when it has a verdict) and the
    /// members each verdict accepted, added in round order; with `reads_previous` (the
    /// consortium's methods compare members with their own previous commitment,
    /// [`bcfl_processor::anomaly::reads_own_previous`]) each round also reads those
    /// commitments, as `EvaluateRound` does, and extends the response sums with them; with the
    /// consortium's reference (`MislabelledConfig`) it extends the margin sums too, and with
    /// `AscentConfig.leave_one_out` it computes the responses against the others' move and
    /// records whom each verdict accepted. An auditor compares it with the stored
    /// [`Self::sketch_history`]: `previous`, the reference and the leave-one-out switch, never
    /// stored with the sums, are left empty in what it returns.
    pub fn replayed_sketch_history(&self, round: u64, reads_previous: bool) -> pb::SketchHistory {
        let mut history = pb::SketchHistory::default();
        bcfl_processor::anomaly::features::configure(&mut history, self.anomaly_config());
        for (&r, verdict) in self.verdicts.range(..round) {
            if reads_previous {
                // The state holds every commitment the history names; one it lacks leaves the
                // response sums short, which the comparison with the stored history shows.
                history.previous = self
                    .previous_commitments(&history)
                    .unwrap_or_default()
                    .into();
            }
            // Disputed and unrevealed commitments never enter the history (`EvaluateRound`
            // leaves them out).
            let commitments: Vec<pb::Commitment> = self
                .round_commitments(r)
                .filter(|c| {
                    !verdict.disputed.contains(&c.member) && !verdict.unrevealed.contains(&c.member)
                })
                .cloned()
                .collect();
            history = bcfl_processor::anomaly::features::extend_after_verdict(
                &history,
                r,
                &commitments,
                &verdict.accepted,
                &verdict.withdrawn_members(),
            );
        }
        // What `configure` gave it is never stored: the default configuration's is empty.
        bcfl_processor::anomaly::features::configure(
            &mut history,
            pb::AnomalyConfig::default_instance(),
        );
        history
    }

    /// The consortium's anomaly configuration (the default, no method, before
    /// `InitConsortium`): what `EvaluateRound` gives the sketch history
    /// ([`bcfl_processor::anomaly::features::configure`]).
    pub fn anomaly_config(&self) -> &pb::AnomalyConfig {
        self.consortium
            .as_ref()
            .map_or(pb::AnomalyConfig::default_instance(), |c| {
                c.get_params().get_anomaly()
            })
    }

    /// Each member's commitment to the last round its entry in `history` counts
    /// ([`bcfl_processor::anomaly::features::previous_rounds`]): what `EvaluateRound` reads into
    /// `SketchHistory.previous` when a method compares members with their own previous change.
    /// The first `(round, member)` the state lacks is the error.
    pub fn previous_commitments(
        &self,
        history: &pb::SketchHistory,
    ) -> Result<Vec<pb::Commitment>, (u64, String)> {
        bcfl_processor::anomaly::features::previous_rounds(history)
            .into_iter()
            .map(|(round, member)| {
                self.commitments
                    .get(&(round, member.to_owned()))
                    .cloned()
                    .ok_or_else(|| (round, member.to_owned()))
            })
            .collect()
    }

    /// The model commitment `c` was trained from: its base round's parent model (the
    /// commitment stores the base round, not the model's hash again). `None` when that round
    /// is not in the state.
    pub fn base_model_of(&self, c: &pb::Commitment) -> Option<&str> {
        self.rounds
            .get(&c.trained_from_round())
            .map(|r| r.parent_model_sha256.as_str())
    }

    /// The commitments of round `round`, sorted by member.
    pub fn round_commitments(&self, round: u64) -> impl Iterator<Item = &pb::Commitment> {
        self.commitments
            .range((round, String::new())..)
            .take_while(move |((r, _), _)| *r == round)
            .map(|(_, c)| c)
    }
}

/// The stored sums of `history` restored against its consensus record, `archives` and the
/// members' `commitments` to their last rounds. A sum whose round has no archive, or whose
/// member's commitment to its last round is missing (a ledger no `EvaluateRound` wrote), is
/// restored against the consensus record and without that sketch, so that the auditor's
/// comparison with the replayed history shows it.
fn restored_entries(
    history: &pb::SketchHistory,
    archives: &BTreeMap<u64, Vec<i64>>,
    commitments: &BTreeMap<(u64, String), pb::Commitment>,
) -> Vec<pb::SketchSum> {
    let consensus = history.get_consensus();
    history
        .entries
        .iter()
        .map(|s| {
            let base = stored::base_of(s, consensus, archives).unwrap_or(&consensus.sum);
            let last = commitments
                .get(&(s.last_round, s.member.clone()))
                .map(pb::Commitment::sketch_values)
                .unwrap_or_default();
            stored::restored_sum(s, base, &last)
        })
        .collect()
}

/// Reads `bcfl` objects through a [`RestClient`].
#[derive(Debug, Clone)]
pub struct BcflReader {
    client: RestClient,
}

impl BcflReader {
    /// A reader over `client`.
    pub fn new(client: RestClient) -> Self {
        Self { client }
    }

    /// The underlying REST client.
    pub fn client(&self) -> &RestClient {
        &self.client
    }

    async fn object(
        &self,
        address: &str,
        head: Option<&str>,
    ) -> Result<Option<BcflObject>, RestError> {
        match self.client.state(address, head).await? {
            Some(data) => Ok(Some(BcflObject::decode(address, &data)?)),
            None => Ok(None),
        }
    }

    /// The consortium, or `None` before `consortium init`.
    pub async fn consortium(
        &self,
        head: Option<&str>,
    ) -> Result<Option<pb::Consortium>, RestError> {
        match self.object(&address::consortium_address(), head).await? {
            Some(BcflObject::Consortium(c)) => Ok(Some(c)),
            _ => Ok(None),
        }
    }

    /// The member with `public_key`.
    pub async fn member(
        &self,
        public_key: &str,
        head: Option<&str>,
    ) -> Result<Option<pb::Member>, RestError> {
        match self
            .object(&address::member_address(public_key), head)
            .await?
        {
            Some(BcflObject::Members(list)) => Ok(list
                .get_entries()
                .iter()
                .find(|m| m.public_key == public_key)
                .cloned()),
            _ => Ok(None),
        }
    }

    /// Round `round`.
    pub async fn round(
        &self,
        round: u64,
        head: Option<&str>,
    ) -> Result<Option<pb::Round>, RestError> {
        match self.object(&address::round_address(round), head).await? {
            Some(BcflObject::Round(r)) => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    /// `member`'s commitment to round `round`.
    pub async fn commitment(
        &self,
        round: u64,
        member: &str,
        head: Option<&str>,
    ) -> Result<Option<pb::Commitment>, RestError> {
        match self
            .object(&address::commitment_address(round, member), head)
            .await?
        {
            Some(BcflObject::Commitments(list)) => Ok(list
                .get_entries()
                .iter()
                .find(|c| c.member == member && c.round == round)
                .cloned()),
            _ => Ok(None),
        }
    }

    /// The verdict of round `round`, its `excluded` and `accepted` restored from the round's
    /// committers ([`pb::Verdict::restored`]; the round is read too: its committers never
    /// change once it has a verdict).
    pub async fn verdict(
        &self,
        round: u64,
        head: Option<&str>,
    ) -> Result<Option<pb::Verdict>, RestError> {
        match self.object(&address::verdict_address(round), head).await? {
            Some(BcflObject::Verdict(v)) => {
                let committers = self
                    .round(round, head)
                    .await?
                    .map(|r| r.committers.to_vec())
                    .unwrap_or_default();
                Ok(Some(restored_verdict(v, &committers)?))
            }
            _ => Ok(None),
        }
    }

    /// The aggregate of round `round`.
    pub async fn aggregate(
        &self,
        round: u64,
        head: Option<&str>,
    ) -> Result<Option<pb::Aggregate>, RestError> {
        match self
            .object(&address::aggregate_address(round), head)
            .await?
        {
            Some(BcflObject::Aggregate(a)) => Ok(Some(a)),
            _ => Ok(None),
        }
    }

    /// Every object of the family at one head (`head`, or the chain head).
    pub async fn family_state(&self, head: Option<&str>) -> Result<FamilyState, RestError> {
        let snapshot = self.client.state_list(NAMESPACE, head).await?;
        Ok(FamilyState::from_snapshot(snapshot)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::StateEntry;

    fn entry(address: String, message: &dyn Message) -> StateEntry {
        StateEntry {
            address,
            data: message.write_to_bytes().unwrap(),
        }
    }

    use bcfl_processor::testing::{test_key, MemoryLedger};

    fn submit(ledger: &mut MemoryLedger, key: &str, build: impl FnOnce(&mut pb::BcflPayload)) {
        let mut p = pb::BcflPayload::default();
        build(&mut p);
        ledger.submit(key, &p).unwrap();
    }

    /// A ledger with a consortium of `params` (admin `admin`) and `members` registered.
    fn consortium(params: pb::ConsortiumParams, members: &[String]) -> (MemoryLedger, String) {
        let admin = test_key("admin");
        let mut ledger = MemoryLedger::new();
        submit(&mut ledger, &admin, |p| {
            p.set_init_consortium(pb::InitConsortium {
                admin_keys: vec![admin.clone()].into(),
                params: Some(params).into(),
                ..Default::default()
            })
        });
        for (i, key) in members.iter().enumerate() {
            submit(&mut ledger, &admin, |p| {
                p.set_register_member(pb::RegisterMember {
                    public_key: key.clone(),
                    name: format!("m{i}"),
                    endpoint: format!("http://127.0.0.1:{}", 7000 + i),
                    ..Default::default()
                })
            });
        }
        (ledger, admin)
    }

    /// Round `round` opened (aggregator `aggregator`), `commits` committed, evaluated and
    /// closed by `admin`.
    fn round(
        ledger: &mut MemoryLedger,
        admin: &str,
        round: u64,
        aggregator: &str,
        commits: &[(&String, pb::CommitUpdate)],
    ) {
        submit(ledger, admin, |p| {
            p.set_open_round(pb::OpenRound {
                round,
                aggregator: aggregator.to_owned(),
                parent_model_sha256: "ab".repeat(32),
                mode: pb::RoundMode::SERVERLESS,
                ..Default::default()
            })
        });
        for (key, commit) in commits {
            submit(ledger, key, |p| p.set_commit_update(commit.clone()));
        }
        submit(ledger, admin, |p| {
            p.set_evaluate_round(pb::EvaluateRound {
                round,
                ..Default::default()
            })
        });
        submit(ledger, admin, |p| {
            p.set_close_round(pb::CloseRound {
                round,
                ..Default::default()
            })
        });
    }

    /// The family state of `ledger`'s whole state.
    fn family_state(ledger: &MemoryLedger) -> FamilyState {
        FamilyState::from_snapshot(StateSnapshot {
            head: "head".into(),
            entries: ledger
                .state()
                .iter()
                .map(|(address, data)| StateEntry {
                    address: address.clone(),
                    data: data.clone(),
                })
                .collect(),
        })
        .unwrap()
    }

    /// Member `i`'s commitment to round `n` with `sketch` (and nothing sampled).
    fn commit(n: u64, i: usize, sketch: &[i8]) -> pb::CommitUpdate {
        pb::CommitUpdate {
            round: n,
            update_sha256: format!("{:064x}", 100 * n + i as u64),
            size_bytes: 64,
            num_samples: 10,
            norm_micro: 1_000_000,
            sketch: bcfl_protos::signed_bytes::from_i8(sketch),
            ..Default::default()
        }
    }

    fn params(members: u32, quorum: u32) -> pb::ConsortiumParams {
        pb::ConsortiumParams {
            min_participants: members,
            commit_quorum: quorum,
            aggregation_rule: pb::AggregationRule::FEDAVG,
            model_id: "m".into(),
            base_model_sha256: "ab".repeat(32),
            sketch_length: 2,
            ..Default::default()
        }
    }

    /// An auditor's replay of the sketch history matches what `EvaluateRound` stored when the
    /// consortium has a reference (the mislabelled-change method's margin sums), and the
    /// reference itself is never part of what is compared.
    #[test]
    fn the_replayed_history_holds_the_margin_sums() {
        let members = [test_key("m0"), test_key("m1"), test_key("m2")];
        let mut anomaly = pb::AnomalyConfig::default();
        anomaly.mut_mislabelled().reference_steps = vec![3, 252, 0];
        let params = pb::ConsortiumParams {
            coordinate_samples: 3,
            anomaly: Some(anomaly).into(),
            ..params(3, 3)
        };
        let (mut ledger, admin) = consortium(params, &members);
        let steps: [[i8; 3]; 3] = [[3, -4, 1], [-3, 4, 0], [1, 1, 1]];
        for n in 1..=2u64 {
            let commits: Vec<(&String, pb::CommitUpdate)> = members
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let commit = pb::CommitUpdate {
                        coordinate_step_nano: 1_000,
                        coordinate_steps: bcfl_protos::signed_bytes::from_i8(&steps[i]),
                        ..commit(n, i, &[1, 2])
                    };
                    (key, commit)
                })
                .collect();
            round(&mut ledger, &admin, n, &members[0], &commits);
        }
        let state = family_state(&ledger);
        assert_eq!(
            state.anomaly_config().get_mislabelled().reference_steps,
            [3, 252, 0]
        );
        let replayed = state.replayed_sketch_history(3, false);
        assert_eq!(replayed, state.sketch_history);
        assert!(replayed.reference_steps.is_empty());
        // Each member's margin sums hold both rounds: m1 lies against the reference.
        let m1 = replayed
            .entries
            .iter()
            .find(|e| e.member == members[1])
            .unwrap();
        assert_eq!((m1.margin_sum_ppm, m1.margin_rounds), (-2_000_000, 2));
        // Replayed without the reference (an auditor that left it out), the sums differ.
        let mut without = state.clone();
        without
            .consortium
            .as_mut()
            .unwrap()
            .mut_params()
            .mut_anomaly()
            .clear_mislabelled();
        assert_ne!(
            without.replayed_sketch_history(3, false),
            state.sketch_history
        );
    }

    #[test]
    fn decodes_by_tag_and_collects() {
        let key = format!("02{}", "ab".repeat(32));
        let consortium = pb::Consortium {
            current_round: 2,
            ..Default::default()
        };
        let member = pb::Member {
            public_key: key.clone(),
            name: "a".into(),
            ..Default::default()
        };
        let commitment = |round| pb::Commitment {
            round,
            member: key.clone(),
            update_sha256: "00".repeat(32),
            ..Default::default()
        };
        let list = |round| pb::CommitmentList {
            entries: vec![commitment(round)].into(),
            ..Default::default()
        };
        let snapshot = StateSnapshot {
            head: "h".into(),
            entries: vec![
                entry(address::consortium_address(), &consortium),
                entry(
                    address::member_address(&key),
                    &pb::MemberList {
                        entries: vec![member.clone()].into(),
                        ..Default::default()
                    },
                ),
                entry(address::commitment_address(1, &key), &list(1)),
                entry(address::commitment_address(2, &key), &list(2)),
                entry(
                    address::round_address(2),
                    &pb::Round {
                        number: 2,
                        ..Default::default()
                    },
                ),
            ],
        };
        let state = FamilyState::from_snapshot(snapshot).unwrap();
        assert_eq!(state.consortium.as_ref().unwrap().current_round, 2);
        assert_eq!(state.members[&key], member);
        assert_eq!(state.rounds[&2].number, 2);
        let round2: Vec<_> = state.round_commitments(2).collect();
        assert_eq!(round2, vec![&commitment(2)]);
        assert_eq!(state.round_commitments(3).count(), 0);
        assert_eq!(state.objects.len(), 5);
        assert_eq!(state.objects[0].1.type_name(), "consortium");
    }

    #[test]
    fn rejects_foreign_and_malformed_leaves() {
        let foreign = format!("000000{}", "00".repeat(32));
        assert!(matches!(
            BcflObject::decode(&foreign, b""),
            Err(StateError::UnknownAddress(_))
        ));
        let err = BcflObject::decode(&address::round_address(1), &[0xff, 0xff]).unwrap_err();
        assert!(
            matches!(err, StateError::Malformed { kind: "Round", .. }),
            "{err}"
        );
        // A commitment whose stored key is cut short: no key to expand it to.
        let cut = pb::CommitmentList {
            entries: vec![pb::Commitment {
                round: 1,
                member_key: vec![2; 20],
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        };
        let at = address::commitment_address(1, &test_key("m0"));
        let err = BcflObject::decode(&at, &cut.write_to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(&err, StateError::Malformed { kind: "CommitmentList", reason, .. }
                if reason.contains("Commitment.member_key holds 20 bytes")),
            "{err}"
        );
    }

    /// A consortium whose members sit rounds out: the state an auditor reads restores each
    /// member's consensus (from the consortium's record, or from the archive of the round its
    /// sum last counts) and each verdict's accepted members (from the round's committers), as
    /// `EvaluateRound` does, and the history it replays from the commitments and verdicts is
    /// the stored one; a ledger that lost an archive no longer matches it.
    #[test]
    fn members_that_sit_rounds_out_are_restored_as_replayed() {
        let members = [test_key("m0"), test_key("m1"), test_key("m2")];
        let (mut ledger, admin) = consortium(params(3, 2), &members);
        // Member 2 sits round 2 out, member 0 round 4.
        let rounds: [&[usize]; 4] = [&[0, 1, 2], &[0, 1], &[0, 1, 2], &[1, 2]];
        for (r, who) in rounds.iter().enumerate() {
            let n = r as u64 + 1;
            let commits: Vec<(&String, pb::CommitUpdate)> = who
                .iter()
                .map(|&i| {
                    let sketch = [(10 * n as i8) - i as i8, 3 * i as i8 - n as i8];
                    (&members[i], commit(n, i, &sketch))
                })
                .collect();
            round(&mut ledger, &admin, n, &members[1], &commits);
        }
        let state = family_state(&ledger);
        assert_eq!(
            state.consensus_archives.keys().copied().collect::<Vec<_>>(),
            vec![1, 3]
        );
        // Member 2 stores the consensus of round 2, which it missed; the others none.
        let record = |i: usize| {
            state
                .objects
                .iter()
                .find_map(|(_, o)| match o {
                    BcflObject::SketchSums(list) => list
                        .entries
                        .iter()
                        .find(|e| e.member == members[i])
                        .cloned(),
                    _ => None,
                })
                .unwrap()
        };
        assert!(!record(2).missed_consensus.is_empty());
        assert!(record(0).missed_consensus.is_empty() && record(1).missed_consensus.is_empty());
        assert!(record(2).consensus.is_empty());
        let replayed = state.replayed_sketch_history(5, false);
        assert_eq!(replayed, state.sketch_history);
        // Every verdict accepted all its committers (no anomaly method configured).
        for (n, verdict) in &state.verdicts {
            assert_eq!(verdict.accepted, state.rounds[n].committers, "round {n}");
        }
        // Member 2's record counts round 4 since it returned; member 0's still counts round 3:
        // without that round's archive its consensus cannot be what the chain says.
        let archive = bcfl_processor::address::consensus_archive_address(3);
        ledger.state_mut().remove(&archive);
        let lost = family_state(&ledger);
        assert_ne!(lost.replayed_sketch_history(5, false), lost.sketch_history);
    }
}
