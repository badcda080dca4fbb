//! The contract between the ledger core and its front ends.
//!
//! The REST API ([`crate::rest`]) and its `/subscriptions` websocket only see the ledger through
//! [`LedgerView`]; the ledger core ([`crate::ledger`]) implements it. Everything here is in
//! Sawtooth's own protobuf types (`sawtooth_sdk::messages`), so the REST layer can render the
//! exact JSON shapes of a Sawtooth 1.2 REST API.

use sawtooth_sdk::messages::batch::Batch;
use sawtooth_sdk::messages::block::Block;
use sawtooth_sdk::messages::transaction::Transaction;
use sawtooth_sdk::messages::transaction_receipt::{StateChange, TransactionReceipt};

/// Status of a batch, resolved in Sawtooth's order: committed, invalid, pending, unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatusKind {
    /// In a block of the current chain.
    Committed,
    /// A transaction was rejected (kept for 600 s, as Sawtooth's batch tracker).
    Invalid,
    /// Queued for a block (also: waiting for its transaction processor to register).
    Pending,
    /// Never seen, held for dependencies, or invalid info expired.
    Unknown,
}

/// One rejected transaction of an INVALID batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTransactionInfo {
    /// The transaction's header signature.
    pub id: String,
    /// The processor's message (empty if none).
    pub message: String,
    /// The processor's extended data (empty if none).
    pub extended_data: Vec<u8>,
}

/// The status of one batch id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStatus {
    /// The batch's header signature.
    pub id: String,
    /// Where it stands.
    pub status: BatchStatusKind,
    /// Filled when `status` is [`BatchStatusKind::Invalid`].
    pub invalid_transactions: Vec<InvalidTransactionInfo>,
}

/// Why a submission was refused, mapped by the REST layer to Sawtooth's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Signature, payload hash, batcher key or structure check failed (REST 400, code 30).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The pending queue is full (REST 429, code 31).
    #[error("the pending queue is full")]
    QueueFull,
    /// No genesis block yet (REST 503, code 15).
    #[error("the validator is not ready")]
    NotReady,
}

/// A storage failure while answering a query (REST 500, code 10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger storage error: {0}")]
pub struct ViewError(pub String);

/// What the `/subscriptions` websocket pushes after each committed block.
#[derive(Debug, Clone)]
pub struct CommitNotice {
    /// The new block's id.
    pub block_id: String,
    /// Its number.
    pub block_num: u64,
    /// Its parent's id.
    pub previous_block_id: String,
    /// The last change per address in the block, sorted by address (sets and deletes).
    pub state_changes: Vec<StateChange>,
}

/// Read and submit access to a ledger, as the REST API needs it.
///
/// All methods are cheap to call from async code (they do not block on consensus or execution;
/// storage reads are short).
pub trait LedgerView: Send + Sync + 'static {
    /// Validates (signatures, payload hashes, batcher keys, structure) and queues the batches.
    /// All or nothing: one bad batch refuses the whole request. Re-submitting a known batch id is
    /// accepted and ignored.
    fn submit_batches(&self, batches: Vec<Batch>) -> Result<(), SubmitError>;

    /// Statuses of the given batch ids, in request order.
    fn batch_statuses(&self, ids: &[String]) -> Vec<BatchStatus>;

    /// A counter that increases whenever any batch status may have changed (a block was
    /// committed or a batch became invalid). `wait` handlers re-check statuses on each change.
    fn status_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The current chain head, or `None` before genesis.
    fn chain_head(&self) -> Option<Block>;

    /// A block by id (any block in the store).
    fn block_by_id(&self, id: &str) -> Result<Option<Block>, ViewError>;

    /// The block with this number on the current chain.
    fn block_by_num(&self, num: u64) -> Result<Option<Block>, ViewError>;

    /// A committed batch and the number of the block holding it.
    fn batch_by_id(&self, id: &str) -> Result<Option<(Batch, u64)>, ViewError>;

    /// A committed transaction and the number of the block holding it.
    fn transaction_by_id(&self, id: &str) -> Result<Option<(Transaction, u64)>, ViewError>;

    /// The receipt of a committed, valid transaction.
    fn receipt(&self, transaction_id: &str) -> Result<Option<TransactionReceipt>, ViewError>;

    /// The raw (unwrapped) state bytes at a full 70-hex address under a state root.
    fn state_get(&self, state_root: &str, address: &str) -> Result<Option<Vec<u8>>, ViewError>;

    /// Leaves under `state_root` whose address starts with `prefix` (even-length lowercase hex,
    /// possibly empty), sorted by address, starting at `start` (inclusive) when given, at most
    /// `limit` entries.
    fn state_list(
        &self,
        state_root: &str,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewError>;

    /// Notices of every block committed after the call.
    fn subscribe_commits(&self) -> tokio::sync::broadcast::Receiver<CommitNotice>;

    /// The validator's own network endpoint, for `/status` (e.g. `tcp://127.0.0.1:8800`).
    fn endpoint(&self) -> String;

    /// Peer endpoints, for `/peers` and `/status` (always empty on a single node).
    fn peers(&self) -> Vec<String>;
}
