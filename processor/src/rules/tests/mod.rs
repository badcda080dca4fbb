//! Rule tests: every rule's rejection and its message, run end to end through the handler on a
//! [`MemoryLedger`] whose headers come from `declared_addresses` (so every test also shows that
//! the declared addresses suffice).

mod bandwidth;
mod invariants;
mod membership;
mod rounds;
mod verification;

use crate::error::ApplyError;
use bcfl_protos::bcfl as pb;

use crate::testing::{test_key, MemoryLedger, RecordedEvent};

pub(super) const SKETCH: usize = 4;

pub(super) fn hash(tag: &str) -> String {
    crate::address::sha512_hex(tag.as_bytes())[..64].to_owned()
}

pub(super) fn base_model() -> String {
    hash("base model")
}

pub(super) fn params() -> pb::ConsortiumParams {
    pb::ConsortiumParams {
        min_participants: 3,
        commit_quorum: 2,
        aggregation_rule: pb::AggregationRule::FEDAVG,
        model_id: "sentence-transformers/all-MiniLM-L6-v2".into(),
        base_model_sha256: base_model(),
        sketch_length: SKETCH as u32,
        ..Default::default()
    }
}

pub(super) fn with(build: impl FnOnce(&mut pb::BcflPayload)) -> pb::BcflPayload {
    let mut payload = pb::BcflPayload::new();
    build(&mut payload);
    payload
}

pub(super) fn init(admins: &[&str]) -> pb::BcflPayload {
    with(|p| {
        p.set_init_consortium(pb::InitConsortium {
            admin_keys: admins.iter().map(|a| (*a).to_owned()).collect(),
            params: protobuf::SingularPtrField::some(params()),
            ..Default::default()
        })
    })
}

pub(super) fn register(key: &str, name: &str) -> pb::BcflPayload {
    with(|p| {
        p.set_register_member(pb::RegisterMember {
            public_key: key.into(),
            name: name.into(),
            endpoint: "http://127.0.0.1:7070".into(),
            ..Default::default()
        })
    })
}

pub(super) fn suspend(key: &str) -> pb::BcflPayload {
    with(|p| {
        p.set_suspend_member(pb::SuspendMember {
            public_key: key.into(),
            reason: "sent a poisoned update".into(),
            ..Default::default()
        })
    })
}

pub(super) fn open(
    round: u64,
    parent: &str,
    aggregator: &str,
    mode: pb::RoundMode,
) -> pb::BcflPayload {
    with(|p| {
        p.set_open_round(pb::OpenRound {
            round,
            parent_model_sha256: parent.into(),
            aggregator: aggregator.into(),
            mode,
            ..Default::default()
        })
    })
}

/// An `OpenRound` payload that `build` adjusts (synchronization, buffer, privacy ...).
pub(super) fn open_with(
    round: u64,
    parent: &str,
    aggregator: &str,
    build: impl FnOnce(&mut pb::OpenRound),
) -> pb::BcflPayload {
    let mut payload = open(round, parent, aggregator, pb::RoundMode::SERVERLESS);
    build(payload.mut_open_round());
    payload
}

/// A `BUFFERED_ASYNC` serverless round.
pub(super) fn open_buffered(
    round: u64,
    parent: &str,
    aggregator: &str,
    buffer_size: u32,
    max_staleness: u32,
) -> pb::BcflPayload {
    open_with(round, parent, aggregator, |o| {
        o.sync = pb::RoundSync::BUFFERED_ASYNC;
        o.buffer_size = buffer_size;
        o.max_staleness = max_staleness;
    })
}

/// A commitment trained from round `base_round`'s parent model (0: the round's own).
pub(super) fn commit_from(round: u64, tag: &str, base_round: u64) -> pb::BcflPayload {
    let mut payload = commit(round, tag, SKETCH);
    payload.mut_commit_update().base_round = base_round;
    payload
}

pub(super) fn commit(round: u64, tag: &str, sketch_len: usize) -> pb::BcflPayload {
    with(|p| {
        p.set_commit_update(pb::CommitUpdate {
            round,
            update_sha256: hash(tag),
            size_bytes: 1000,
            num_samples: 50,
            loss_micro: 1_250_000,
            norm_micro: 3_000_000,
            sketch: (0..sketch_len as u8).collect(),
            ..Default::default()
        })
    })
}

pub(super) fn evaluate(round: u64) -> pb::BcflPayload {
    with(|p| {
        p.set_evaluate_round(pb::EvaluateRound {
            round,
            ..Default::default()
        })
    })
}

pub(super) fn seal(round: u64) -> pb::BcflPayload {
    with(|p| {
        p.set_seal_round(pb::SealRound {
            round,
            ..Default::default()
        })
    })
}

pub(super) fn reveal(round: u64, sketch_len: usize) -> pb::BcflPayload {
    with(|p| {
        p.set_reveal_sketch(pb::RevealSketch {
            round,
            sketch: (0..sketch_len as u8).collect(),
            ..Default::default()
        })
    })
}

pub(super) fn aggregate(
    round: u64,
    model: &str,
    contributors: &[&str],
    excluded: &[&str],
    rule: pb::AggregationRule,
) -> pb::BcflPayload {
    with(|p| {
        p.set_commit_aggregate(pb::CommitAggregate {
            round,
            model_sha256: model.into(),
            contributors: contributors.iter().map(|c| (*c).to_owned()).collect(),
            rule,
            excluded: excluded.iter().map(|c| (*c).to_owned()).collect(),
            size_bytes: 4096,
            ..Default::default()
        })
    })
}

pub(super) fn close(round: u64) -> pb::BcflPayload {
    with(|p| {
        p.set_close_round(pb::CloseRound {
            round,
            ..Default::default()
        })
    })
}

/// The message of an invalid transaction; panics on success or on an internal error.
pub(super) fn rejected(result: Result<Vec<RecordedEvent>, ApplyError>) -> String {
    match result {
        Err(ApplyError::InvalidTransaction(message)) => message,
        other => panic!("expected an invalid transaction, got {other:?}"),
    }
}

/// A ledger with an admin and three registered members `m0 < m1 < m2` (sorted keys).
pub(super) struct World {
    pub ledger: MemoryLedger,
    pub admin: String,
    pub members: Vec<String>,
}

impl World {
    pub fn new() -> Self {
        Self::with_params(params())
    }

    /// A world whose consortium has `params` instead of [`params`].
    pub fn with_params(params: pb::ConsortiumParams) -> Self {
        let admin = test_key("admin");
        let mut members: Vec<String> = ["alice", "bob", "carol"]
            .iter()
            .map(|n| test_key(n))
            .collect();
        members.sort();
        let mut ledger = MemoryLedger::new();
        let mut create = init(&[&admin]);
        create.mut_init_consortium().set_params(params);
        ledger.submit(&admin, &create).unwrap();
        for (i, m) in members.iter().enumerate() {
            ledger
                .submit(&admin, &register(m, &format!("member-{i}")))
                .unwrap();
        }
        Self {
            ledger,
            admin,
            members,
        }
    }

    pub fn m(&self, i: usize) -> String {
        self.members[i].clone()
    }

    pub fn admin_submit(
        &mut self,
        payload: &pb::BcflPayload,
    ) -> Result<Vec<RecordedEvent>, ApplyError> {
        let admin = self.admin.clone();
        self.ledger.submit(&admin, payload)
    }

    /// Opens round 1 aggregated by m0 and commits m0 and m1.
    pub fn round_one_committed(&mut self) {
        let m0 = self.m(0);
        self.admin_submit(&open(1, &base_model(), &m0, pb::RoundMode::SERVERLESS))
            .unwrap();
        for i in 0..2 {
            let m = self.m(i);
            self.ledger
                .submit(&m, &commit(1, &format!("u{i}"), SKETCH))
                .unwrap();
        }
    }

    /// Round 1 committed by m0 and m1, evaluated by the aggregator m0.
    pub fn round_one_evaluated(&mut self) {
        self.round_one_committed();
        let m0 = self.m(0);
        self.ledger.submit(&m0, &evaluate(1)).unwrap();
    }

    /// Round 1 evaluated, aggregated into model `hash("g1")` and closed by m0.
    pub fn round_one_closed(&mut self) {
        self.round_one_evaluated();
        let (m0, m1) = (self.m(0), self.m(1));
        self.ledger
            .submit(
                &m0,
                &aggregate(
                    1,
                    &hash("g1"),
                    &[&m0, &m1],
                    &[],
                    pb::AggregationRule::FEDAVG,
                ),
            )
            .unwrap();
        self.ledger.submit(&m0, &close(1)).unwrap();
    }
}
