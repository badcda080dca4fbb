//! What the auditor's page shows, computed from the family state: the overview (consortium,
//! members, the rounds' timeline), one round or member in detail, every recorded hash by value (the verify
//! box's lookup), the bandwidth graph of a round and the charts of the nodes' report files.
//!
//! Everything the page displays is prepared here, typed and named (members by name as well as
//! key, fixed-point values as numbers), so that the page's script only lays it out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bcfl_client::figures::{self, RoundSeries};
use bcfl_client::fixed::{micro_to_f64, micro_unsigned_to_f64};
use bcfl_client::round::report::{NodeEvent, Report};
use bcfl_client::round::summary::{self, MemberInfo};
use bcfl_ledger::state::FamilyState;
use bcfl_processor::anomaly::member_scores;
use bcfl_protos::bcfl as pb;
use serde::Serialize;

/// The consortium's parameters, as the page shows them.
#[derive(Debug, Serialize)]
pub(crate) struct ConsortiumView {
    admins: Vec<String>,
    current_round: u64,
    model_id: String,
    base_model_sha256: String,
    initial_model_sha256: String,
    rule: String,
    min_participants: u32,
    commit_quorum: u32,
    committee_size: u32,
    anomaly: Vec<String>,
}

/// A member.
#[derive(Debug, Serialize)]
pub(crate) struct MemberView {
    key: String,
    name: String,
    endpoint: String,
    status: String,
    suspend_reason: String,
    since_round: u64,
    commitments: usize,
}

/// A round on the timeline.
#[derive(Debug, Serialize)]
pub(crate) struct RoundView {
    number: u64,
    phase: String,
    mode: String,
    sync: String,
    aggregator: String,
    aggregator_name: String,
    /// How many members the ledger drew to train the round (None: every member may).
    drawn: Option<usize>,
    commitments: usize,
    excluded: Vec<String>,
    disputed: Vec<String>,
    model_sha256: Option<String>,
    model_size_bytes: u64,
    finality: Option<String>,
    committee: usize,
    attestations: usize,
    attestations_matching: usize,
    closed_unverified: bool,
}

/// A hash recorded on chain, for the verify box.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HashView {
    sha256: String,
    size_bytes: u64,
    /// `commitment` (a member's update) or `aggregate` (a round's global model).
    kind: &'static str,
    round: u64,
    /// The committing member's name (commitments) or the submitter's (aggregates).
    member: String,
}

/// The page's overview.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    ledger: String,
    head: String,
    consortium: Option<ConsortiumView>,
    members: Vec<MemberView>,
    rounds: Vec<RoundView>,
    charts: bool,
}

/// A commitment in a round's detail.
#[derive(Debug, Serialize)]
pub(crate) struct CommitmentView {
    member: String,
    name: String,
    samples: u64,
    loss: f64,
    norm: f64,
    size_bytes: u64,
    update_sha256: String,
    base_round: u64,
    staleness: u32,
}

/// One anomaly method's scores in a round.
#[derive(Debug, Serialize)]
pub(crate) struct MethodView {
    method: String,
    scores: Vec<ScoreView>,
}

/// A member's score under one method.
#[derive(Debug, Serialize)]
pub(crate) struct ScoreView {
    member: String,
    name: String,
    score: f64,
    flagged: bool,
}

/// A committee member's attestation of an aggregate.
#[derive(Debug, Serialize)]
pub(crate) struct AttestationView {
    member: String,
    name: String,
    matches: bool,
    model_sha256: String,
    false_disputes: Vec<String>,
}

/// A round's aggregate.
#[derive(Debug, Serialize)]
pub(crate) struct AggregateView {
    model_sha256: String,
    size_bytes: u64,
    rule: String,
    submitted_by: String,
    contributors: Vec<String>,
    excluded: Vec<String>,
    /// Members whose update of the round before this aggregate took back out.
    withdrawn: Vec<String>,
    blob_uri: String,
    finality: String,
    committee: Vec<String>,
    attestations: Vec<AttestationView>,
}

/// A disputed commitment.
#[derive(Debug, Serialize)]
pub(crate) struct DisputeView {
    member: String,
    mismatch: String,
    reported_by: String,
}

/// One round in detail.
#[derive(Debug, Serialize)]
pub(crate) struct RoundDetail {
    round: RoundView,
    parent_model_sha256: String,
    opened_by: String,
    drawn: Vec<String>,
    commitments: Vec<CommitmentView>,
    /// [`crate::cli::audit::sketch_agreement`] over the round's commitments.
    sketch_agreement: Option<f64>,
    evaluated_by: Option<String>,
    methods: Vec<MethodView>,
    accepted: Vec<String>,
    excluded: Vec<String>,
    disputes: Vec<DisputeView>,
    aggregate: Option<AggregateView>,
}

/// A member's commitment in its history.
#[derive(Debug, Serialize)]
pub(crate) struct MemberCommitmentView {
    round: u64,
    samples: u64,
    loss: f64,
    norm: f64,
    size_bytes: u64,
    update_sha256: String,
    /// `accepted` or `excluded` by the round's verdict, `pending` before it.
    verdict: &'static str,
}

/// A measured link of a member, its latest sample.
#[derive(Debug, Serialize)]
pub(crate) struct LinkView {
    peer: String,
    peer_name: String,
    bytes_per_sec: u64,
    rtt_us: u64,
    epoch: u64,
    samples: usize,
}

/// One member in detail: its record, commitments round by round and links.
#[derive(Debug, Serialize)]
pub(crate) struct MemberDetail {
    key: String,
    name: String,
    endpoint: String,
    status: String,
    suspend_reason: String,
    since_round: u64,
    commitments: Vec<MemberCommitmentView>,
    aggregated: Vec<u64>,
    links_out: Vec<LinkView>,
    links_in: Vec<LinkView>,
}

/// A member's name, or the start of its key when it is not a member (or has no name).
fn name_of(state: &FamilyState, key: &str) -> String {
    match state.members.get(key) {
        Some(m) if !m.name.is_empty() => m.name.clone(),
        _ => key.chars().take(12).collect(),
    }
}

fn names(state: &FamilyState, keys: &[String]) -> Vec<String> {
    keys.iter().map(|k| name_of(state, k)).collect()
}

fn finality(a: &pb::Aggregate) -> String {
    format!("{:?}", super::super::audit::finality(a))
}

fn anomaly_methods(p: &pb::ConsortiumParams) -> Vec<String> {
    if !p.has_anomaly() {
        return Vec::new();
    }
    bcfl_processor::anomaly::configured_method_names(p.get_anomaly())
        .into_iter()
        .map(String::from)
        .collect()
}

fn round_view(state: &FamilyState, r: &pb::Round) -> RoundView {
    let verdict = state.verdicts.get(&r.number);
    let aggregate = state.aggregates.get(&r.number);
    let attestations = aggregate.map_or(&[][..], |a| a.get_attestations());
    RoundView {
        number: r.number,
        phase: format!("{:?}", r.phase),
        mode: format!("{:?}", r.mode),
        sync: format!("{:?}", bcfl_processor::rules::rounds::round_sync(r)),
        aggregator: r.aggregator.clone(),
        aggregator_name: name_of(state, &r.aggregator),
        drawn: (!r.participants.is_empty()).then_some(r.participants.len()),
        commitments: state.round_commitments(r.number).count(),
        excluded: verdict.map_or_else(Vec::new, |v| names(state, &v.excluded)),
        disputed: verdict.map_or_else(Vec::new, |v| names(state, &v.disputed)),
        model_sha256: aggregate.map(|a| a.model_sha256.clone()),
        model_size_bytes: aggregate.map_or(0, |a| a.size_bytes),
        finality: aggregate.map(finality),
        committee: aggregate.map_or(0, |a| a.committee.len()),
        attestations: attestations.len(),
        attestations_matching: attestations
            .iter()
            .filter(|at| aggregate.is_some_and(|a| a.model_sha256 == at.model_sha256))
            .count(),
        closed_unverified: r.closed_unverified,
    }
}

/// The overview of `state`, read from `ledger`; `charts` says whether report files were given.
pub(crate) fn overview(state: &FamilyState, ledger: &str, charts: bool) -> Overview {
    let consortium = state.consortium.as_ref().map(|c| {
        let p = c.get_params();
        ConsortiumView {
            admins: c.admin_keys.to_vec(),
            current_round: c.current_round,
            model_id: p.model_id.clone(),
            base_model_sha256: p.base_model_sha256.clone(),
            initial_model_sha256: p.initial_model_sha256.clone(),
            rule: format!("{:?}", p.aggregation_rule),
            min_participants: p.min_participants,
            commit_quorum: p.commit_quorum,
            committee_size: p.committee_size,
            anomaly: anomaly_methods(p),
        }
    });
    let mut commitments_of: BTreeMap<&str, usize> = BTreeMap::new();
    for c in state.commitments.values() {
        *commitments_of.entry(c.member.as_str()).or_default() += 1;
    }
    let mut members: Vec<MemberView> = state
        .members
        .values()
        .map(|m| MemberView {
            key: m.public_key.clone(),
            name: m.name.clone(),
            endpoint: m.endpoint.clone(),
            status: format!("{:?}", m.status),
            suspend_reason: m.suspend_reason.clone(),
            since_round: m.registered_at_round,
            commitments: commitments_of
                .get(m.public_key.as_str())
                .copied()
                .unwrap_or(0),
        })
        .collect();
    // By name as people read them (`member-2` before `member-10`), then by key.
    members.sort_by(|a, b| figures::natural_cmp(&a.name, &b.name).then_with(|| a.key.cmp(&b.key)));
    let rounds = state
        .rounds
        .values()
        .map(|r| round_view(state, r))
        .collect();
    Overview {
        ledger: ledger.to_owned(),
        head: state.head.clone(),
        consortium,
        members,
        rounds,
        charts,
    }
}

/// Every commitment's update and every aggregate's model, by SHA-256 (the verify box's
/// lookup).
pub(crate) fn hash_index(state: &FamilyState) -> HashMap<String, Vec<HashView>> {
    let mut index: HashMap<String, Vec<HashView>> = HashMap::new();
    let commitments = state.commitments.values().map(|c| HashView {
        sha256: c.update_sha256.clone(),
        size_bytes: c.size_bytes,
        kind: "commitment",
        round: c.round,
        member: name_of(state, &c.member),
    });
    let aggregates = state.aggregates.values().map(|a| HashView {
        sha256: a.model_sha256.clone(),
        size_bytes: a.size_bytes,
        kind: "aggregate",
        round: a.round,
        member: name_of(state, &a.submitted_by),
    });
    for view in commitments.chain(aggregates) {
        index.entry(view.sha256.clone()).or_default().push(view);
    }
    index
}

/// Member `key` in detail; None when it is not a member.
pub(crate) fn member_detail(state: &FamilyState, key: &str) -> Option<MemberDetail> {
    let m = state.members.get(key)?;
    let commitments = state
        .commitments
        .values()
        .filter(|c| c.member == key)
        .map(|c| MemberCommitmentView {
            round: c.round,
            samples: c.num_samples,
            loss: micro_to_f64(c.loss_micro),
            norm: micro_unsigned_to_f64(c.norm_micro),
            size_bytes: c.size_bytes,
            update_sha256: c.update_sha256.clone(),
            verdict: match state.verdicts.get(&c.round) {
                Some(v) if v.excluded.iter().any(|k| k == key) => "excluded",
                Some(v) if v.accepted.iter().any(|k| k == key) => "accepted",
                Some(_) => "not evaluated",
                None => "pending",
            },
        })
        .collect();
    // The member's measured links out (or in), each with its latest sample.
    let links = |out: bool| -> Vec<LinkView> {
        state
            .links
            .values()
            .filter_map(|l| {
                let (this, peer) = if out {
                    (&l.from, &l.to)
                } else {
                    (&l.to, &l.from)
                };
                if this != key {
                    return None;
                }
                let last = l.get_samples().last()?;
                Some(LinkView {
                    peer: peer.clone(),
                    peer_name: name_of(state, peer),
                    bytes_per_sec: last.bytes_per_sec,
                    rtt_us: last.rtt_us,
                    epoch: last.epoch,
                    samples: l.samples.len(),
                })
            })
            .collect()
    };
    Some(MemberDetail {
        key: m.public_key.clone(),
        name: m.name.clone(),
        endpoint: m.endpoint.clone(),
        status: format!("{:?}", m.status),
        suspend_reason: m.suspend_reason.clone(),
        since_round: m.registered_at_round,
        commitments,
        aggregated: state
            .aggregates
            .values()
            .filter(|a| a.submitted_by == key)
            .map(|a| a.round)
            .collect(),
        links_out: links(true),
        links_in: links(false),
    })
}

/// Round `number` in detail; None when it does not exist.
pub(crate) fn round_detail(state: &FamilyState, number: u64) -> Option<RoundDetail> {
    let r = state.rounds.get(&number)?;
    let verdict = state.verdicts.get(&number);
    let commitments = state
        .round_commitments(number)
        .map(|c| CommitmentView {
            member: c.member.clone(),
            name: name_of(state, &c.member),
            samples: c.num_samples,
            loss: micro_to_f64(c.loss_micro),
            norm: micro_unsigned_to_f64(c.norm_micro),
            size_bytes: c.size_bytes,
            update_sha256: c.update_sha256.clone(),
            base_round: c.trained_from_round(),
            staleness: c.staleness,
        })
        .collect();
    let methods = verdict.map_or_else(Vec::new, |v| {
        let scored = v.scored();
        v.get_methods()
            .iter()
            .map(|m| MethodView {
                method: format!("{:?}", m.method),
                scores: member_scores(&scored, m)
                    .map(|s| ScoreView {
                        member: s.member.to_owned(),
                        name: name_of(state, s.member),
                        score: micro_to_f64(s.score_micro),
                        flagged: s.flagged,
                    })
                    .collect(),
            })
            .collect()
    });
    let aggregate = state.aggregates.get(&number).map(|a| AggregateView {
        model_sha256: a.model_sha256.clone(),
        size_bytes: a.size_bytes,
        rule: format!("{:?}", a.rule),
        submitted_by: name_of(state, &a.submitted_by),
        // The verdict's lists: the rules hold the aggregate to them.
        contributors: verdict.map_or_else(Vec::new, |v| names(state, &v.accepted)),
        excluded: verdict.map_or_else(Vec::new, |v| names(state, &v.excluded)),
        withdrawn: verdict.map_or_else(Vec::new, |v| names(state, &v.withdrawn_members())),
        blob_uri: a.blob_uri.clone(),
        finality: finality(a),
        committee: names(state, &a.committee),
        attestations: a
            .get_attestations()
            .iter()
            .map(|at| AttestationView {
                member: at.member.clone(),
                name: name_of(state, &at.member),
                matches: at.model_sha256 == a.model_sha256,
                model_sha256: at.model_sha256.clone(),
                false_disputes: names(state, &at.false_disputes),
            })
            .collect(),
    });
    Some(RoundDetail {
        round: round_view(state, r),
        parent_model_sha256: r.parent_model_sha256.clone(),
        opened_by: name_of(state, &r.opened_by),
        drawn: names(state, &r.participants),
        commitments,
        sketch_agreement: crate::cli::audit::sketch_agreement(
            &state.round_commitments(number).collect::<Vec<_>>(),
        ),
        evaluated_by: verdict.map(|v| name_of(state, &v.evaluated_by)),
        methods,
        accepted: verdict.map_or_else(Vec::new, |v| names(state, &v.accepted)),
        excluded: verdict.map_or_else(Vec::new, |v| names(state, &v.excluded)),
        disputes: r
            .get_disputes()
            .iter()
            .map(|d| DisputeView {
                member: name_of(state, &d.member),
                mismatch: format!("{:?}", d.mismatch),
                reported_by: name_of(state, &d.reported_by),
            })
            .collect(),
        aggregate,
    })
}

/// The members as the report's figures name them.
fn member_infos(state: &FamilyState) -> Vec<MemberInfo> {
    state
        .members
        .values()
        .map(|m| MemberInfo {
            name: name_of(state, &m.public_key),
            key: m.public_key.clone(),
            endpoint: m.endpoint.clone(),
            shard: 0,
            attack: None,
            peak_rss_bytes: 0,
        })
        .collect()
}

/// Round `round`'s bandwidth graph as SVG ([`summary::round_graph_figure`]: the links as
/// measured up to the round, its routing tree, its excluded members marked); None when the
/// round does not exist or no link of it is measured.
pub(crate) fn graph_svg(state: &FamilyState, round: u64) -> Option<String> {
    let figure = summary::round_graph_figure(state, round, &member_infos(state))?;
    Some(figures::graph_svg(&figure))
}

/// The report files under `paths`: files as given, folders' `*.jsonl` files.
pub(crate) fn report_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
}

/// Every event of the report files (a file that cannot be read is skipped with a warning: a
/// node may not have started yet).
fn read_events(files: &[PathBuf]) -> Vec<NodeEvent> {
    let mut events = Vec::new();
    for file in files {
        match Report::read(file) {
            Ok(read) => events.extend(read),
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "skipping a report file"),
        }
    }
    events
}

/// The rounds of `state` as the report's figures see them, from the nodes' events; and the
/// accuracy before the first round (round 0's score), if recorded.
fn series(state: &FamilyState, events: &[NodeEvent]) -> (Vec<RoundSeries>, Option<f64>) {
    let members = member_infos(state);
    let rounds = state
        .rounds
        .keys()
        .filter_map(|&n| summary::round_report(state, n, &members, events))
        .filter(|r| r.started_unix_ms > 0)
        .map(|r| r.series())
        .collect();
    let baseline = events
        .iter()
        .find(|e| e.round == 0 && e.phase == "score")
        .and_then(|e| e.accuracy);
    (rounds, baseline)
}

/// Which chart of the nodes' reports.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chart {
    /// The global model's test accuracy per round.
    Accuracy,
    /// Seconds per phase of each round.
    RoundTime,
}

/// `chart` from the report files under `paths`, as SVG.
pub(crate) fn chart_svg(
    state: &FamilyState,
    paths: &[PathBuf],
    chart: Chart,
) -> Result<String, figures::FigureError> {
    let events = read_events(&report_files(paths));
    let (rounds, baseline) = series(state, &events);
    match chart {
        Chart::Accuracy => {
            figures::accuracy_svg("global model accuracy per round", &rounds, baseline)
        }
        Chart::RoundTime => figures::phases_svg("round time by phase", &rounds),
    }
}

/// Whether `path` names something that can hold reports (for the start-up check).
pub(crate) fn readable(path: &Path) -> bool {
    path.is_dir() || std::fs::File::open(path).is_ok()
}
