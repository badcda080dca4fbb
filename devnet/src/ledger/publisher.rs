//! Block building: serial execution of pending batches against layered state contexts.
//!
//! A [`BlockBuild`] is a state machine driven by the component loop: it hands out one
//! transaction at a time ([`BlockBuild::next_txn`]), the loop sends it to a processor, serves
//! the processor's state requests from the [`TxnContext`], and reports the outcome
//! ([`BlockBuild::finish_txn`]). Reads see, in order: the transaction's own writes, earlier
//! transactions of its batch, earlier batches of the block, blocks still being committed by
//! [`super::committer`], then the head state.
//! An invalid batch's writes are discarded with it.
//!
//! Batch selection follows Sawtooth's candidate block: a batch with an already committed id or
//! transaction id is dropped; a batch with a dependency that is neither committed nor earlier in
//! the block stays pending; a batch whose family has no registered processor stays pending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use protobuf::RepeatedField;
use sawtooth_sdk::messages::events::Event;
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};

use crate::view::InvalidTransactionInfo;

use super::store::BlockStore;
use super::validate::{QueuedBatch, QueuedTxn};

/// The state context of the transaction being executed.
pub struct TxnContext {
    /// The uuid4-hex context id given to the processor.
    pub id: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Address -> new value (`None`: deleted), in first-write order via `order`.
    writes: HashMap<String, Option<Vec<u8>>>,
    order: Vec<String>,
    data: Vec<Vec<u8>>,
    events: Vec<Event>,
}

impl TxnContext {
    fn new(txn: &QueuedTxn) -> Self {
        Self {
            id: super::uuid4_hex(),
            inputs: txn.header.get_inputs().to_vec(),
            outputs: txn.header.get_outputs().to_vec(),
            writes: HashMap::new(),
            order: Vec::new(),
            data: Vec::new(),
            events: Vec::new(),
        }
    }

    /// May this context read `address`?
    pub fn may_read(&self, address: &str) -> bool {
        self.inputs.iter().any(|p| address.starts_with(p.as_str()))
    }

    /// May this context write or delete `address`?
    pub fn may_write(&self, address: &str) -> bool {
        self.outputs.iter().any(|p| address.starts_with(p.as_str()))
    }

    /// Records a set (`Some`) or delete (`None`).
    pub fn write(&mut self, address: String, value: Option<Vec<u8>>) {
        if !self.writes.contains_key(&address) {
            self.order.push(address.clone());
        }
        self.writes.insert(address, value);
    }

    /// Adds receipt data.
    pub fn add_data(&mut self, data: Vec<u8>) {
        self.data.push(data);
    }

    /// Adds an event.
    pub fn add_event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// The batch being executed.
struct BatchRun {
    batch: Arc<QueuedBatch>,
    next: usize,
    writes: HashMap<String, Option<Vec<u8>>>,
    receipts: Vec<TransactionReceipt>,
}

/// What the loop should do next.
pub enum NextTxn {
    /// Execute this transaction (a fresh context is open).
    Run(Arc<QueuedBatch>, usize),
    /// Every batch was handled.
    Done,
}

/// Outcome of one execution attempt.
pub enum TxnOutcome {
    /// The processor answered OK.
    Valid,
    /// INVALID_TRANSACTION (or any status that is not OK or INTERNAL_ERROR).
    Invalid {
        /// The processor's message.
        message: String,
        /// The processor's extended data.
        extended_data: Vec<u8>,
    },
    /// INTERNAL_ERROR, a timeout or a lost connection: retry while attempts remain.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// No processor serves the family (any more): leave the batch pending.
    NoProcessor,
}

/// Writes of a block, last value per address (`None`: deleted).
pub type Overlay = BTreeMap<String, Option<Vec<u8>>>;

/// Values of the head state already read from the store, so that the addresses every
/// transaction reads (the consortium, members) cost a hash lookup instead of a database read.
///
/// Owned by the component loop. It stays exact because the head only moves when the committer
/// commits a block, and the loop then [forgets](HeadCache::forget) every address that block
/// wrote; until that moment those addresses are shadowed by the block's overlay (a parent of
/// every block built meanwhile), so a stale entry is never read. A failed commit clears it.
#[derive(Debug, Default)]
pub struct HeadCache {
    values: HashMap<String, Option<Vec<u8>>>,
}

impl HeadCache {
    /// Entries kept before the cache starts over (bounds memory on large states).
    pub const MAX_ENTRIES: usize = 100_000;

    fn insert(&mut self, address: &str, value: Option<Vec<u8>>) {
        if self.values.len() >= Self::MAX_ENTRIES {
            self.values.clear();
        }
        self.values.insert(address.to_owned(), value);
    }

    /// Drops the entries of the addresses a newly committed block wrote.
    pub fn forget(&mut self, written: &Overlay) {
        for address in written.keys() {
            self.values.remove(address);
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.values.clear();
    }
}

/// A block under construction (see the module docs).
pub struct BlockBuild {
    /// Writes of earlier blocks still being sealed and committed, newest first.
    parents: Vec<Arc<Overlay>>,
    /// Transaction ids of those blocks.
    parent_txns: Arc<HashSet<String>>,
    batches: Vec<Arc<QueuedBatch>>,
    next_batch: usize,
    current: Option<BatchRun>,
    /// The open context, if a transaction is executing.
    pub context: Option<TxnContext>,
    writes: Overlay,
    txn_ids: HashSet<String>,
    accepted: Vec<Arc<QueuedBatch>>,
    receipts: Vec<TransactionReceipt>,
    /// Batches to drop from the queue without a status (already committed).
    pub dropped: Vec<String>,
    /// Batches found invalid (already recorded in the pool).
    pub invalid: Vec<(String, Vec<InvalidTransactionInfo>)>,
    max_retries: u32,
}

/// What executing a block produced, for the committer to seal.
pub struct Executed {
    /// Last change per address.
    pub writes: Overlay,
    /// Valid batches, in block order.
    pub accepted: Vec<Arc<QueuedBatch>>,
    /// Receipts of their transactions.
    pub receipts: Vec<TransactionReceipt>,
}

impl BlockBuild {
    /// Starts a block on top of the head plus `parents` (blocks handed to the committer, newest
    /// first, whose transaction ids are `parent_txns`).
    pub fn new(
        batches: Vec<Arc<QueuedBatch>>,
        max_retries: u32,
        parents: Vec<Arc<Overlay>>,
        parent_txns: Arc<HashSet<String>>,
    ) -> Self {
        Self {
            parents,
            parent_txns,
            batches,
            next_batch: 0,
            current: None,
            context: None,
            writes: BTreeMap::new(),
            txn_ids: HashSet::new(),
            accepted: Vec::new(),
            receipts: Vec::new(),
            dropped: Vec::new(),
            invalid: Vec::new(),
            max_retries,
        }
    }

    /// Reads an address through every layer (raw bytes; `None` if absent or deleted). The base
    /// layer is the head state's flat table in `store` (the block is built on the head), read
    /// through `cache`.
    pub fn read(
        &self,
        address: &str,
        store: &BlockStore,
        cache: &mut HeadCache,
    ) -> Option<Vec<u8>> {
        let layers = [
            self.context.as_ref().map(|c| &c.writes),
            self.current.as_ref().map(|b| &b.writes),
        ];
        for layer in layers.into_iter().flatten() {
            if let Some(v) = layer.get(address) {
                return v.clone();
            }
        }
        for layer in std::iter::once(&self.writes).chain(self.parents.iter().map(|p| &**p)) {
            if let Some(v) = layer.get(address) {
                return v.clone();
            }
        }
        if let Some(value) = cache.values.get(address) {
            return value.clone();
        }
        match store.head_value(address) {
            Ok(v) => {
                cache.insert(address, v.clone());
                v
            }
            Err(err) => {
                tracing::error!(%address, %err, "state read failed; answering empty");
                None
            }
        }
    }

    /// The next transaction to run, opening its context; selects batches as needed.
    pub fn next_txn(&mut self, store: &BlockStore) -> NextTxn {
        loop {
            if let Some(run) = &self.current {
                if run.next < run.batch.txns.len() {
                    self.context = Some(TxnContext::new(&run.batch.txns[run.next]));
                    return NextTxn::Run(Arc::clone(&run.batch), run.next);
                }
                let run = self.current.take().expect("checked above");
                self.writes.extend(run.writes);
                self.receipts.extend(run.receipts);
                self.txn_ids
                    .extend(run.batch.txns.iter().map(|t| t.id.clone()));
                self.accepted.push(run.batch);
                continue;
            }
            let Some(batch) = self.batches.get(self.next_batch).cloned() else {
                return NextTxn::Done;
            };
            self.next_batch += 1;
            if self.already_committed(&batch, store) {
                self.dropped.push(batch.id.clone());
                continue;
            }
            let mut in_batch = HashSet::new();
            let deps_ok = batch.txns.iter().all(|t| {
                let ok = t.header.get_dependencies().iter().all(|d| {
                    in_batch.contains(d.as_str())
                        || self.txn_ids.contains(d)
                        || self.parent_txns.contains(d)
                        || store.has_txn(d).unwrap_or(false)
                });
                in_batch.insert(t.id.as_str());
                ok
            });
            if !deps_ok {
                continue;
            }
            self.current = Some(BatchRun {
                batch,
                next: 0,
                writes: HashMap::new(),
                receipts: Vec::new(),
            });
        }
    }

    fn already_committed(&self, batch: &QueuedBatch, store: &BlockStore) -> bool {
        store.has_batch(&batch.id).unwrap_or(false)
            || batch.txns.iter().any(|t| {
                self.txn_ids.contains(&t.id)
                    || self.parent_txns.contains(&t.id)
                    || store.has_txn(&t.id).unwrap_or(false)
            })
    }

    /// Reports the outcome of the running transaction. Returns the batch id and invalid info
    /// when the batch just became invalid.
    pub fn finish_txn(
        &mut self,
        outcome: TxnOutcome,
    ) -> Option<(String, Vec<InvalidTransactionInfo>)> {
        let ctx = self.context.take()?;
        let run = self.current.as_mut()?;
        let txn_id = run.batch.txns[run.next].id.clone();
        match outcome {
            TxnOutcome::Valid => {
                let receipt = receipt_of(&txn_id, &ctx);
                for address in ctx.order {
                    let value = ctx.writes.get(&address).cloned().flatten();
                    run.writes.insert(address, value);
                }
                run.receipts.push(receipt);
                run.next += 1;
                None
            }
            TxnOutcome::Invalid {
                message,
                extended_data,
            } => {
                let id = run.batch.id.clone();
                self.current = None;
                let info = vec![InvalidTransactionInfo {
                    id: txn_id,
                    message,
                    extended_data,
                }];
                self.invalid.push((id.clone(), info.clone()));
                Some((id, info))
            }
            TxnOutcome::Failed { reason } => {
                let failures = run.batch.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures > self.max_retries {
                    let message = format!(
                        "transaction processor failed {failures} times (INTERNAL_ERROR, timeout or \
                         disconnect); devnet gave up after {} retries; last error: {reason}",
                        self.max_retries
                    );
                    return self.finish_txn_invalid(ctx, txn_id, message);
                }
                tracing::warn!(txn = %txn_id, %reason, failures, "transaction failed; retrying");
                None
            }
            TxnOutcome::NoProcessor => {
                tracing::debug!(batch = %run.batch.id, "no processor registered; batch stays pending");
                self.current = None;
                None
            }
        }
    }

    fn finish_txn_invalid(
        &mut self,
        ctx: TxnContext,
        txn_id: String,
        message: String,
    ) -> Option<(String, Vec<InvalidTransactionInfo>)> {
        self.context = Some(ctx);
        self.finish_txn(TxnOutcome::Invalid {
            message,
            extended_data: Vec::new(),
        })
        .map(|(id, mut info)| {
            info[0].id = txn_id;
            (id, info)
        })
    }

    /// Ends execution and hands over what the block holds.
    pub fn finish(self) -> Executed {
        Executed {
            writes: self.writes,
            accepted: self.accepted,
            receipts: self.receipts,
        }
    }
}

/// A receipt-style state change.
pub fn state_change(address: String, value: Option<Vec<u8>>) -> StateChange {
    let mut change = StateChange::new();
    change.set_address(address);
    match value {
        Some(v) => {
            change.set_field_type(StateChange_Type::SET);
            change.set_value(v);
        }
        None => change.set_field_type(StateChange_Type::DELETE),
    }
    change
}

/// A receipt: sets (first-write order) then deletes, events, data.
fn receipt_of(txn_id: &str, ctx: &TxnContext) -> TransactionReceipt {
    let mut sets = Vec::new();
    let mut deletes = Vec::new();
    for address in &ctx.order {
        match ctx.writes.get(address).cloned().flatten() {
            Some(v) => sets.push(state_change(address.clone(), Some(v))),
            None => deletes.push(state_change(address.clone(), None)),
        }
    }
    sets.extend(deletes);
    let mut receipt = TransactionReceipt::new();
    receipt.set_transaction_id(txn_id.to_string());
    receipt.set_state_changes(RepeatedField::from_vec(sets));
    receipt.set_events(RepeatedField::from_vec(ctx.events.clone()));
    receipt.set_data(RepeatedField::from_vec(ctx.data.clone()));
    receipt
}
