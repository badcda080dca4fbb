//! Block building: execution of pending batches against layered state contexts, with
//! transactions that cannot affect each other in flight at the same time.
//!
//! A [`BlockBuild`] is a state machine driven by the component loop: it hands out transactions
//! ([`BlockBuild::next_txn`]), the loop sends each to a processor, serves the processor's state
//! requests from that transaction's [`TxnContext`], and reports the outcome
//! ([`BlockBuild::finish_txn`]). Reads see, in order: the transaction's own writes, earlier
//! transactions of its batch, earlier batches of the block, blocks still being committed by
//! [`super::committer`], then the head state. An invalid batch's writes are discarded with it.
//!
//! # Parallel execution, serial results
//!
//! Up to `window` transactions are in flight at once (1 reproduces Sawtooth's serial scheduler).
//! A transaction is dispatched ahead of earlier ones only when its declared inputs and outputs
//! conflict with none of the transactions before it that are not settled yet (every transaction
//! of an unfinished earlier batch, dispatched or not, and the unsettled earlier transactions of
//! its own batch): one of them writing where the other reads or writes, declared addresses being
//! prefixes. This is the condition of Sawtooth's parallel scheduler, and it makes the result the
//! same as executing the block one transaction at a time in block order: a transaction never
//! reads anything an unsettled predecessor writes, nor writes anything it touches. Results are
//! settled in order: within a batch, transactions become final front to back, so an invalid
//! transaction is reported only if every transaction before it was valid, exactly as serially;
//! the block's batches and receipts are assembled in block order. A transaction that fails
//! (INTERNAL_ERROR, timeout, disconnect) is retried later, which is safe for the same reason.
//!
//! Batch selection follows Sawtooth's candidate block: a batch with an already committed id or
//! transaction id is dropped; a batch with a dependency that is neither committed nor earlier in
//! the block stays pending; a batch whose family has no registered processor stays pending. A
//! batch that depends on, or shares a transaction id with, a batch still executing waits for it.
//! As in the candidate block, `max_batches` counts the batches admitted, not those looked at: a
//! batch that stays pending (e.g. its dependency's batch was invalid) never takes a place, so it
//! cannot hold the block up. A batch without transactions (refused at submission) is dropped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sawtooth_sdk::messages::transaction_receipt::TransactionReceipt;

use crate::view::InvalidTransactionInfo;

use super::context::{overlap, receipt_of};
pub use super::context::{state_change, HeadCache, Overlay, TxnContext};
use super::store::BlockStore;
use super::validate::{QueuedBatch, QueuedTxn};

/// What the loop should do next.
pub enum NextTxn {
    /// Execute transaction `index` of the batch in the context with this id (now open).
    Run(Arc<QueuedBatch>, usize, String),
    /// Nothing can start before an answer arrives.
    Wait,
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

/// A dispatched (or re-queued) transaction of a batch.
struct Slot {
    /// Index of the transaction in its batch.
    index: usize,
    /// Its context while dispatched or answered; `None` while waiting for a retry.
    context: Option<TxnContext>,
    /// The final answer, once given.
    answer: Option<Answer>,
}

enum Answer {
    Valid,
    Invalid(InvalidTransactionInfo),
}

/// A batch being executed.
struct BatchRun {
    /// Position of the batch among the block's candidates (block order).
    position: usize,
    batch: Arc<QueuedBatch>,
    /// Every input and output the batch's transactions declare.
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Transactions from here on were never dispatched.
    next: usize,
    /// Transactions settled (valid) so far, a prefix of the batch.
    settled: usize,
    /// Transactions `settled..next`, in order.
    slots: VecDeque<Slot>,
    writes: HashMap<String, Option<Vec<u8>>>,
    receipts: Vec<TransactionReceipt>,
    /// A transaction was answered INVALID: nothing new is dispatched for this batch.
    failing: bool,
}

impl BatchRun {
    fn new(position: usize, batch: Arc<QueuedBatch>) -> Self {
        let mut inputs: Vec<String> = Vec::new();
        let mut outputs: Vec<String> = Vec::new();
        for txn in &batch.txns {
            inputs.extend(txn.header.get_inputs().iter().cloned());
            outputs.extend(txn.header.get_outputs().iter().cloned());
        }
        for list in [&mut inputs, &mut outputs] {
            list.sort();
            list.dedup();
        }
        Self {
            position,
            batch,
            inputs,
            outputs,
            next: 0,
            settled: 0,
            slots: VecDeque::new(),
            writes: HashMap::new(),
            receipts: Vec::new(),
            failing: false,
        }
    }

    /// Whether `txn` conflicts with anything of this whole batch.
    fn conflicts_with_batch(&self, txn: &QueuedTxn) -> bool {
        let (inputs, outputs) = (txn.header.get_inputs(), txn.header.get_outputs());
        overlap(&self.outputs, inputs)
            || overlap(&self.outputs, outputs)
            || overlap(&self.inputs, outputs)
    }

    /// Whether `txn` conflicts with a transaction of this batch that is not settled.
    fn conflicts_with_unsettled(&self, txn: &QueuedTxn) -> bool {
        self.slots
            .iter()
            .any(|slot| super::context::txns_conflict(&self.batch.txns[slot.index], txn))
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
    /// Batches executing, in block order.
    runs: VecDeque<BatchRun>,
    /// Finished valid batches with their receipts, by position.
    completed: BTreeMap<usize, (Arc<QueuedBatch>, Vec<TransactionReceipt>)>,
    writes: Overlay,
    txn_ids: HashSet<String>,
    /// Batches to drop from the queue without a status (already committed).
    pub dropped: Vec<String>,
    /// Batches found invalid (already recorded in the pool).
    pub invalid: Vec<(String, Vec<InvalidTransactionInfo>)>,
    max_retries: u32,
    window: usize,
    /// Batches the block may hold (0: unlimited).
    max_batches: usize,
    /// Batches admitted so far (executing, completed or invalid).
    admitted: usize,
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

/// Whether a candidate batch can join the block now.
enum Admission {
    Open,
    Drop,
    /// Stays pending (a dependency is missing).
    Skip,
    /// Must wait for a batch still executing.
    Wait,
}

impl BlockBuild {
    /// Starts a block on top of the head plus `parents` (blocks handed to the committer, newest
    /// first, whose transaction ids are `parent_txns`); at most `window` transactions run at once
    /// and at most `max_batches` (0: unlimited) of `batches` are admitted.
    pub fn new(
        batches: Vec<Arc<QueuedBatch>>,
        max_retries: u32,
        window: usize,
        max_batches: usize,
        parents: Vec<Arc<Overlay>>,
        parent_txns: Arc<HashSet<String>>,
    ) -> Self {
        Self {
            parents,
            parent_txns,
            batches,
            next_batch: 0,
            runs: VecDeque::new(),
            completed: BTreeMap::new(),
            writes: BTreeMap::new(),
            txn_ids: HashSet::new(),
            dropped: Vec::new(),
            invalid: Vec::new(),
            max_retries,
            window: window.max(1),
            max_batches,
            admitted: 0,
        }
    }

    /// Whether the block holds as many batches as it may.
    fn full(&self) -> bool {
        self.max_batches > 0 && self.admitted >= self.max_batches
    }

    fn find(&self, context_id: &str) -> Option<(usize, usize)> {
        self.runs.iter().enumerate().find_map(|(r, run)| {
            run.slots
                .iter()
                .position(|s| s.context.as_ref().is_some_and(|c| c.id == context_id))
                .map(|k| (r, k))
        })
    }

    /// The open context with this id.
    pub fn context(&self, context_id: &str) -> Option<&TxnContext> {
        let (r, k) = self.find(context_id)?;
        self.runs[r].slots[k].context.as_ref()
    }

    /// The open context with this id, to record writes, events and receipt data.
    pub fn context_mut(&mut self, context_id: &str) -> Option<&mut TxnContext> {
        let (r, k) = self.find(context_id)?;
        self.runs[r].slots[k].context.as_mut()
    }

    /// Reads an address for the transaction of context `context_id` through every layer (raw
    /// bytes; `None` if absent or deleted). The base layer is the head state's flat table in
    /// `store` (the block is built on the head), read through `cache`.
    pub fn read(
        &self,
        context_id: &str,
        address: &str,
        store: &BlockStore,
        cache: &mut HeadCache,
    ) -> Option<Vec<u8>> {
        if let Some((r, k)) = self.find(context_id) {
            let run = &self.runs[r];
            let own = run.slots[k].context.as_ref().map(|c| &c.writes);
            for layer in [own, Some(&run.writes)].into_iter().flatten() {
                if let Some(v) = layer.get(address) {
                    return v.clone();
                }
            }
        }
        for layer in std::iter::once(&self.writes).chain(self.parents.iter().map(|p| &**p)) {
            if let Some(v) = layer.get(address) {
                return v.clone();
            }
        }
        if let Some(value) = cache.get(address) {
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

    fn in_flight(&self) -> usize {
        self.runs
            .iter()
            .flat_map(|run| run.slots.iter())
            .filter(|s| s.context.is_some() && s.answer.is_none())
            .count()
    }

    /// The next transaction to run, opening its context; admits batches as needed.
    pub fn next_txn(&mut self, store: &BlockStore) -> NextTxn {
        loop {
            if self.in_flight() >= self.window {
                return NextTxn::Wait;
            }
            if let Some(next) = self.dispatchable() {
                return next;
            }
            let more = self.next_batch < self.batches.len() && !self.full();
            if self.runs.len() < self.window && more {
                let batch = Arc::clone(&self.batches[self.next_batch]);
                match self.admission(&batch, store) {
                    Admission::Open => {
                        self.runs.push_back(BatchRun::new(self.next_batch, batch));
                        self.next_batch += 1;
                        self.admitted += 1;
                        continue;
                    }
                    Admission::Drop => {
                        self.dropped.push(batch.id.clone());
                        self.next_batch += 1;
                        continue;
                    }
                    Admission::Skip => {
                        self.next_batch += 1;
                        continue;
                    }
                    Admission::Wait => {}
                }
            }
            return if self.runs.is_empty() && !more {
                NextTxn::Done
            } else {
                NextTxn::Wait
            };
        }
    }

    /// A re-queued or new transaction that may start now, with its context opened.
    fn dispatchable(&mut self) -> Option<NextTxn> {
        for r in 0..self.runs.len() {
            // A retry first: it was checked against everything before it when first sent.
            if let Some(k) = self.runs[r]
                .slots
                .iter()
                .position(|s| s.context.is_none() && s.answer.is_none())
            {
                let run = &mut self.runs[r];
                let index = run.slots[k].index;
                let context = TxnContext::new(&run.batch.txns[index]);
                let id = context.id.clone();
                run.slots[k].context = Some(context);
                return Some(NextTxn::Run(Arc::clone(&run.batch), index, id));
            }
            let run = &self.runs[r];
            if run.failing || run.next >= run.batch.txns.len() {
                continue;
            }
            let txn = &run.batch.txns[run.next];
            let blocked = run.conflicts_with_unsettled(txn)
                || self
                    .runs
                    .iter()
                    .take(r)
                    .any(|e| e.conflicts_with_batch(txn));
            if blocked {
                continue;
            }
            let run = &mut self.runs[r];
            let index = run.next;
            let context = TxnContext::new(&run.batch.txns[index]);
            let id = context.id.clone();
            run.slots.push_back(Slot {
                index,
                context: Some(context),
                answer: None,
            });
            run.next += 1;
            return Some(NextTxn::Run(Arc::clone(&run.batch), index, id));
        }
        None
    }

    fn admission(&self, batch: &QueuedBatch, store: &BlockStore) -> Admission {
        let executing = |id: &str| {
            self.runs
                .iter()
                .any(|run| run.batch.txns.iter().any(|t| t.id == id))
        };
        if batch.txns.is_empty()
            || store.has_batch(&batch.id).unwrap_or(false)
            || self.already_committed(batch, store)
        {
            return Admission::Drop;
        }
        if batch.txns.iter().any(|t| executing(&t.id)) {
            return Admission::Wait;
        }
        let mut in_batch = HashSet::new();
        for txn in &batch.txns {
            for dep in txn.header.get_dependencies() {
                let present = in_batch.contains(dep.as_str())
                    || self.txn_ids.contains(dep)
                    || self.parent_txns.contains(dep)
                    || store.has_txn(dep).unwrap_or(false);
                if present {
                    continue;
                }
                return if executing(dep) {
                    Admission::Wait
                } else {
                    Admission::Skip
                };
            }
            in_batch.insert(txn.id.as_str());
        }
        Admission::Open
    }

    fn already_committed(&self, batch: &QueuedBatch, store: &BlockStore) -> bool {
        batch.txns.iter().any(|t| {
            self.txn_ids.contains(&t.id)
                || self.parent_txns.contains(&t.id)
                || store.has_txn(&t.id).unwrap_or(false)
        })
    }

    /// Puts a transaction whose request could not be sent back in line (no failure counted).
    pub fn requeue(&mut self, context_id: &str) {
        if let Some((r, k)) = self.find(context_id) {
            self.runs[r].slots[k].context = None;
        }
    }

    /// Reports the outcome of the transaction of context `context_id` (unknown ids, from
    /// batches already decided, are ignored). Returns the batch id and invalid info when a batch
    /// just became invalid.
    pub fn finish_txn(
        &mut self,
        context_id: &str,
        outcome: TxnOutcome,
    ) -> Option<(String, Vec<InvalidTransactionInfo>)> {
        let (r, k) = self.find(context_id)?;
        let run = &mut self.runs[r];
        let txn_id = run.batch.txns[run.slots[k].index].id.clone();
        match outcome {
            TxnOutcome::Valid => run.slots[k].answer = Some(Answer::Valid),
            TxnOutcome::Invalid {
                message,
                extended_data,
            } => {
                run.failing = true;
                run.slots[k].answer = Some(Answer::Invalid(InvalidTransactionInfo {
                    id: txn_id,
                    message,
                    extended_data,
                }));
            }
            TxnOutcome::Failed { reason } => {
                let failures = run.batch.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures <= self.max_retries {
                    tracing::warn!(txn = %txn_id, %reason, failures, "transaction failed; retrying");
                    run.slots[k].context = None;
                    return None;
                }
                run.failing = true;
                run.slots[k].answer = Some(Answer::Invalid(InvalidTransactionInfo {
                    id: txn_id,
                    message: format!(
                        "transaction processor failed {failures} times (INTERNAL_ERROR, timeout or \
                         disconnect); devnet gave up after {} retries; last error: {reason}",
                        self.max_retries
                    ),
                    extended_data: Vec::new(),
                }));
            }
            TxnOutcome::NoProcessor => {
                tracing::debug!(batch = %run.batch.id, "no processor registered; batch stays pending");
                self.runs.remove(r);
                self.admitted -= 1;
                return None;
            }
        }
        self.settle(r)
    }

    /// Settles the answered prefix of run `r`; completes or rejects the batch when it can.
    fn settle(&mut self, r: usize) -> Option<(String, Vec<InvalidTransactionInfo>)> {
        let run = &mut self.runs[r];
        while run.slots.front().is_some_and(|s| s.answer.is_some()) {
            let slot = run.slots.pop_front().expect("checked above");
            match slot.answer {
                Some(Answer::Valid) => {
                    let ctx = slot.context.expect("an answered slot keeps its context");
                    let txn_id = &run.batch.txns[slot.index].id;
                    run.receipts.push(receipt_of(txn_id, &ctx));
                    for address in ctx.order {
                        let value = ctx.writes.get(&address).cloned().flatten();
                        run.writes.insert(address, value);
                    }
                    run.settled += 1;
                }
                Some(Answer::Invalid(info)) => {
                    let run = self.runs.remove(r).expect("run r exists");
                    let info = vec![info];
                    self.invalid.push((run.batch.id.clone(), info.clone()));
                    return Some((run.batch.id.clone(), info));
                }
                None => unreachable!("the loop only pops answered slots"),
            }
        }
        if run.settled == run.batch.txns.len() {
            let run = self.runs.remove(r).expect("run r exists");
            self.writes.extend(run.writes);
            self.txn_ids
                .extend(run.batch.txns.iter().map(|t| t.id.clone()));
            self.completed
                .insert(run.position, (run.batch, run.receipts));
        }
        None
    }

    /// Ends execution and hands over what the block holds.
    pub fn finish(self) -> Executed {
        let mut accepted = Vec::with_capacity(self.completed.len());
        let mut receipts = Vec::new();
        for (batch, batch_receipts) in self.completed.into_values() {
            accepted.push(batch);
            receipts.extend(batch_receipts);
        }
        Executed {
            writes: self.writes,
            accepted,
            receipts,
        }
    }
}
