//! The `bcfl` transaction family: its specification, and the Sawtooth processor that enforces it.
//!
//! `bcfl` coordinates consortium federated fine-tuning on a Hyperledger Sawtooth ledger. Members
//! never put models or data on chain; the ledger records who belongs to the consortium, each
//! round's commitments (hashes and small summaries of updates), measured bandwidth between
//! members, the anomaly verdict and the aggregated global model, so anyone can audit a model's
//! history. This crate is the executable specification of the family; the client builds
//! transactions with it. `docs/transaction-family.md` is the same specification in prose.
//!
//! # Family
//!
//! - name [`FAMILY_NAME`] = `bcfl`, version [`FAMILY_VERSION`] = `1.0`;
//! - namespace [`NAMESPACE`] = the first 6 hex of SHA-512(`"bcfl"`) = `085493`;
//! - payload: one `bcfl.BcflPayload` protobuf (`protos/proto/bcfl.proto`) with exactly one action;
//! - state: protobuf messages at 70-hex addresses, see [`address`] for the layout (type tags
//!   `00` consortium, `01` member, `02` round, `03` commitment, `04` link, `05` verdict,
//!   `06` aggregate, `07` member directory, `08` sketch sum, `09` consensus sketch).
//!
//! Fixed point: no floating point crosses the ledger; `*_micro` fields are value x 1e6 and
//! `*_ppm` fields a ratio x 1e6 ([`limits::PPM`]); [`fixed`] is the one conversion to and from
//! `f64` and decimal text, for the processor and the client. Keys are 66-hex compressed
//! secp256k1 public keys, hashes 64-hex SHA-256. Repeated key fields in state are sorted and
//! unique.
//!
//! # Actions and who may send them
//!
//! | action | signer | effect |
//! | --- | --- | --- |
//! | `InitConsortium` | one of the admins it names | creates the consortium (once) |
//! | `RegisterMember` | admin | adds an active member, or reinstates a suspended one |
//! | `UpdateMember` | admin, or the member itself while active | changes name / endpoint |
//! | `SuspendMember` | admin | suspends an active member |
//! | `OpenRound` | admin | opens round `current + 1` (previous CLOSED), `SYNCHRONOUS` or `BUFFERED_ASYNC`; its aggregator not excluded by the previous verdict |
//! | `CommitUpdate` | active member | commits its update, trained from the parent model of this round or (`BUFFERED_ASYNC`) of an earlier one, to the OPEN round |
//! | `ReportBandwidth` | active member | appends samples to its outgoing links |
//! | `SealRound` | admin, or the round's aggregator | with `sketch_after_commit`: closes the commitments and draws the round's sketch seed from them: OPEN -> SEALED |
//! | `RevealSketch` | a committer | with `sketch_after_commit`: its sketch, made with the round's seed (SEALED round) |
//! | `EvaluateRound` | admin, or the round's aggregator | records the verdict once `commit_quorum` (`BUFFERED_ASYNC`: `buffer_size`) commitments are in: OPEN (SEALED) -> EVALUATED |
//! | `CommitAggregate` | the round's aggregator (SERVER mode: also an admin) | EVALUATED -> AGGREGATED |
//! | `CloseRound` | admin or aggregator (AGGREGATED, aggregate FINAL or CONTESTED); admin only while PENDING (`closed_unverified`) or to abandon earlier | -> CLOSED |
//! | `DisputeCommitment` | the round's aggregator, or an admin | records recomputed statistics that contradict a commitment (OPEN or SEALED round); the verdict excludes that member unscored |
//! | `AttestAggregate` | a member of the aggregate's verifier committee | records its recomputed hash (and any false dispute or undisputed false commitment): the aggregate becomes FINAL or CONTESTED |
//!
//! The rules and their rejection messages are in [`rules`]; the header inputs and outputs of
//! each action in [`access`]; the field rules in [`payload`]; the bounds in [`limits`].
//!
//! # State objects
//!
//! | object | address | holds |
//! | --- | --- | --- |
//! | `Consortium` | [`address::consortium_address`] | sorted admin keys, parameters (base and initial model among them), `current_round` |
//! | `MemberList` | [`address::member_address`] | members (key, name, endpoint, status, suspension reason) |
//! | `MemberList` | [`address::directory_address`] | key and status of every member (to count active ones) |
//! | `Round` | [`address::round_address`] | parent model, aggregator, mode, phase, sorted committers, synchronization (`sync`, `buffer_size`, `max_staleness`), privacy guarantees (none in 1.0), disputes, `closed_unverified` |
//! | `CommitmentList` | [`address::commitment_address`] | one member's commitment to a round: update hash, statistics, sketch, base round, base model, staleness |
//! | `LinkList` | [`address::link_address`] | the newest 16 bandwidth samples of a directed link |
//! | `Verdict` | [`address::verdict_address`] | excluded (and, of those, disputed) committers, per-method scores; the accepted are the round's other committers, restored on reading ([`state::BcflState::verdict`]) |
//! | `Aggregate` | [`address::aggregate_address`] | the global model hash, contributors, exclusions, rule, verifier committee, attestations, finality |
//! | `SketchSumList` | [`address::sketch_sum_address`] | one member's sketches summed over the evaluated rounds it committed to, and what the consensus of those rounds missed ([`anomaly::stored`]) |
//! | `ConsensusSketch` | [`address::consensus_address`] | the accepted members' mean sketches summed over evaluated rounds |
//! | `ConsensusArchive` | [`address::consensus_archive_address`] | that sum after a round, kept while some member's sum counts it |
//!
//! # Round phases
//!
//! `OPEN -> EVALUATED -> AGGREGATED -> CLOSED`; an admin may close (abandon) an OPEN or
//! EVALUATED round. Round N+1 opens only after round N is CLOSED, from round N's aggregate model
//! (or, if round N was abandoned, from round N's parent); round 1 starts from the consortium's
//! initial model (`initial_model_sha256`: the initial trainable tensors) when it names one, else
//! from its base model. A `BUFFERED_ASYNC` round can be evaluated once its `buffer_size`
//! commitments are in, and accepts updates trained from the parent model of a round up to its
//! `max_staleness` rounds earlier (a `SYNCHRONOUS` round only from its own parent).
//!
//! # Errors
//!
//! Every refusal (payload, rule, undeclared address, corrupt state) is
//! `ApplyError::InvalidTransaction` with a human-readable message; only failures of the validator
//! context are `ApplyError::InternalError` (retried by the validator). See [`error`].
//!
//! # Layout of the crate
//!
//! Following the `xo_rust` split: [`handler`] (the transaction handler), [`payload`] (bytes to a
//! validated [`payload::Action`]), [`state`] (typed, cached state access over a
//! [`context::StateContext`]), [`rules`] (the deterministic logic), plus [`address`], [`access`],
//! [`limits`] and [`error`]; the maths verdicts and routing use are in [`anomaly`], [`graph`] and
//! [`fixed`]. Only code that runs on chain lives here, and nothing here links the Sawtooth SDK or
//! ZMQ: the `bcfl-tp` crate (`processor/tp/`) runs [`BcflHandler`] behind a validator, and
//! clients, devnet's tests and auditors use this crate without a transport.
//!
//! # Example
//!
//! ```
//! use bcfl_processor::{access, address, payload::Action, NAMESPACE};
//! use bcfl_protos::bcfl::{BcflPayload, EvaluateRound};
//!
//! let signer = "03d5b6c3e2cbb9e34a4bd8c4e14fb2cb4c60d4a6d3c0e9b1c4f2b7a2d1c0e9f8a7";
//! let mut payload = BcflPayload::new();
//! payload.set_evaluate_round(EvaluateRound { round: 1, ..Default::default() });
//! let action = Action::from_proto(&payload).unwrap();
//! let (inputs, outputs) = access::declared_addresses(&payload, signer).unwrap();
//! assert!(outputs.contains(&address::verdict_address(1)));
//! assert!(inputs.iter().all(|a| a.starts_with(NAMESPACE)));
//! assert_eq!(action.name(), "evaluate_round");
//! ```
//!
//! # Features
//!
//! | feature | enables |
//! | --- | --- |
//! | `test-utils` | module `testing`: an in-memory context and ledger that enforce the validator's address rules |

pub mod access;
pub mod address;
pub mod anomaly;
pub mod context;
pub mod error;
pub mod fixed;
pub mod graph;
pub mod handler;
pub mod limits;
pub mod payload;
pub mod rules;
pub mod state;
pub mod statistics;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use context::{ContextError, StateContext};
pub use error::{ApplyError, TxnError};
pub use handler::BcflHandler;
pub use payload::{Action, PayloadError};

/// The family name transactions carry in their header.
pub const FAMILY_NAME: &str = "bcfl";

/// The only family version this processor handles.
pub const FAMILY_VERSION: &str = "1.0";

/// The family's address namespace: the first 6 hex of SHA-512([`FAMILY_NAME`]).
pub const NAMESPACE: &str = "085493";

/// The namespace Sawtooth convention gives a family: the first 6 hex of SHA-512 of its name.
pub fn family_namespace(family_name: &str) -> String {
    let mut digest = address::sha512_hex(family_name.as_bytes());
    digest.truncate(6);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_computed_from_the_family_name() {
        assert_eq!(family_namespace(FAMILY_NAME), NAMESPACE);
        // Known namespaces of the official families (spec section 3).
        assert_eq!(family_namespace("intkey"), "1cf126");
        assert_eq!(family_namespace("xo"), "5b7349");
    }
}
