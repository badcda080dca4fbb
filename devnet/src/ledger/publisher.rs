//! Block building: serial execution of pending batches against layered state contexts.
//!
//! A [`BlockBuild`] is a state machine driven by the component loop: it hands out one
//! transaction at a time ([`BlockBuild::next_txn`]), the loop sends it to a processor, serves
//! the processor's state requests from the [`TxnContext`], and reports the outcome
//! ([`BlockBuild::finish_txn`]). Reads see, in order: the transaction's own writes, earlier
//! transactions of its batch, earlier batches of the block, then the parent block's state root.
//! An invalid batch's writes are discarded with it.
//!
//! Batch selection follows Sawtooth's candidate block: a batch with an already committed id or
//! transaction id is dropped; a batch with a dependency that is neither committed nor earlier in
//! the block stays pending; a batch whose family has no registered processor stays pending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::events::Event;
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};
use sha2::{Digest, Sha256};
use transact::state::merkle::MerkleRadixTree;

use crate::view::InvalidTransactionInfo;

use super::error::Result;
use super::state::StateReader;
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

/// A block under construction (see the module docs).
pub struct BlockBuild {
    /// Number of the block being built.
    pub num: u64,
    /// Parent block id.
    pub parent_id: String,
    base_root: String,
    base: MerkleRadixTree,
    batches: Vec<Arc<QueuedBatch>>,
    next_batch: usize,
    current: Option<BatchRun>,
    /// The open context, if a transaction is executing.
    pub context: Option<TxnContext>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    txn_ids: HashSet<String>,
    accepted: Vec<Arc<QueuedBatch>>,
    receipts: Vec<TransactionReceipt>,
    /// Batches to drop from the queue without a status (already committed).
    pub dropped: Vec<String>,
    /// Batches found invalid (already recorded in the pool).
    pub invalid: Vec<(String, Vec<InvalidTransactionInfo>)>,
    max_retries: u32,
}

/// A built block, ready to be stored.
pub struct BuiltBlock {
    /// The signed block with its batches.
    pub block: Block,
    /// Receipts of every transaction in it.
    pub receipts: Vec<TransactionReceipt>,
    /// Last change per address, sorted by address.
    pub state_changes: Vec<StateChange>,
    /// Its state root.
    pub state_root: String,
}

impl BlockBuild {
    /// Starts a block on top of `parent` (its id, number and state root).
    pub fn new(
        state: &StateReader,
        parent: (&str, u64, &str),
        batches: Vec<Arc<QueuedBatch>>,
        max_retries: u32,
    ) -> Result<Self> {
        let (parent_id, parent_num, root) = parent;
        let base = state.tree(root)?.ok_or_else(|| {
            super::error::LedgerError::Corrupt(format!("head state root {root} is missing"))
        })?;
        Ok(Self {
            num: parent_num + 1,
            parent_id: parent_id.to_string(),
            base_root: root.to_string(),
            base,
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
        })
    }

    /// Reads an address through every layer (raw bytes; `None` if absent or deleted). The base
    /// layer is the head state's flat table in `store` (the block is built on the head).
    pub fn read(&self, address: &str, store: &BlockStore) -> Option<Vec<u8>> {
        let layers = [
            self.context.as_ref().map(|c| &c.writes),
            self.current.as_ref().map(|b| &b.writes),
        ];
        for layer in layers.into_iter().flatten() {
            if let Some(v) = layer.get(address) {
                return v.clone();
            }
        }
        if let Some(v) = self.writes.get(address) {
            return v.clone();
        }
        match store.head_value(address) {
            Ok(v) => v,
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
            || batch
                .txns
                .iter()
                .any(|t| self.txn_ids.contains(&t.id) || store.has_txn(&t.id).unwrap_or(false))
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

    /// Whether any batch made it into the block.
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty()
    }

    /// Computes the state root (writing the new nodes) and signs the block.
    pub fn seal(self, state: &StateReader, key: &super::keys::ValidatorKey) -> Result<BuiltBlock> {
        // A delete of an address absent from the parent state (e.g. set and deleted within this
        // block) changes nothing; transact refuses to delete a missing leaf, so skip it.
        let mut changes = Vec::with_capacity(self.writes.len());
        for (address, value) in &self.writes {
            if value.is_some() || self.base.contains(address)? {
                changes.push((address.clone(), value.clone()));
            }
        }
        let state_root = state.apply(&self.base_root, changes)?;
        let batch_ids: Vec<String> = self.accepted.iter().map(|b| b.id.clone()).collect();
        let mut summary = Sha256::new();
        for id in &batch_ids {
            summary.update(id.as_bytes());
        }
        let mut consensus = b"Devmode".to_vec();
        consensus.extend_from_slice(&summary.finalize());
        let mut header = BlockHeader::new();
        header.set_block_num(self.num);
        header.set_previous_block_id(self.parent_id.clone());
        header.set_signer_public_key(key.public_key().to_string());
        header.set_batch_ids(RepeatedField::from_vec(batch_ids));
        header.set_consensus(consensus);
        header.set_state_root_hash(state_root.clone());
        let header_bytes = header.write_to_bytes()?;
        let mut block = Block::new();
        block.set_header_signature(key.sign(&header_bytes));
        block.set_header(header_bytes);
        block.set_batches(self.accepted.iter().map(|b| b.batch.clone()).collect());
        let state_changes = self
            .writes
            .into_iter()
            .map(|(address, value)| state_change(address, value))
            .collect();
        Ok(BuiltBlock {
            block,
            receipts: self.receipts,
            state_changes,
            state_root,
        })
    }

    /// Ids of the batches in the block so far.
    pub fn accepted_ids(&self) -> impl Iterator<Item = &str> {
        self.accepted.iter().map(|b| b.id.as_str())
    }
}

fn state_change(address: String, value: Option<Vec<u8>>) -> StateChange {
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
