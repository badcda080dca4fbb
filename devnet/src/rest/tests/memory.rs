//! An in-memory [`LedgerView`] for the REST tests: a chain of real Sawtooth messages (header
//! bytes are serialized protobuf), per-block state snapshots, receipts, batch statuses and the
//! two notification channels, with no execution or signature checks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use protobuf::{Message, RepeatedField};
use sawtooth_sdk::messages::batch::{Batch, BatchHeader};
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};
use sha2::{Digest, Sha256, Sha512};
use tokio::sync::{broadcast, watch};

use crate::view::{
    BatchStatus, BatchStatusKind, CommitNotice, InvalidTransactionInfo, LedgerView, SubmitError,
    ViewError,
};

/// A 128-hex id derived from `seed`.
pub fn id(seed: &str) -> String {
    hex::encode(Sha512::digest(seed.as_bytes()))
}

/// A 70-hex address: `prefix` padded with the hash of `seed`.
pub fn address(prefix: &str, seed: &str) -> String {
    let mut address = prefix.to_owned();
    address.push_str(&id(seed)[..70 - prefix.len()]);
    address
}

/// A transaction of family `intkey` 1.0 with `payload`.
pub fn txn(seed: &str, payload: &[u8]) -> Transaction {
    let mut header = TransactionHeader::new();
    header.set_batcher_public_key("02".to_owned() + &"b".repeat(64));
    header.set_family_name("intkey".into());
    header.set_family_version("1.0".into());
    header.set_inputs(RepeatedField::from_vec(vec!["1cf126".into()]));
    header.set_outputs(RepeatedField::from_vec(vec!["1cf126".into()]));
    header.set_payload_sha512(hex::encode(Sha512::digest(payload)));
    header.set_signer_public_key("03".to_owned() + &"c".repeat(64));
    let mut txn = Transaction::new();
    txn.set_header(header.write_to_bytes().unwrap());
    txn.set_header_signature(id(&format!("txn {seed}")));
    txn.set_payload(payload.to_vec());
    txn
}

/// A batch holding `txns`.
pub fn batch(seed: &str, txns: Vec<Transaction>) -> Batch {
    let mut header = BatchHeader::new();
    header.set_signer_public_key("02".to_owned() + &"b".repeat(64));
    header.set_transaction_ids(
        txns.iter()
            .map(|t| t.get_header_signature().to_owned())
            .collect(),
    );
    let mut batch = Batch::new();
    batch.set_header(header.write_to_bytes().unwrap());
    batch.set_header_signature(id(&format!("batch {seed}")));
    batch.set_transactions(RepeatedField::from_vec(txns));
    batch
}

/// A one-transaction batch.
pub fn simple_batch(seed: &str) -> Batch {
    batch(seed, vec![txn(seed, seed.as_bytes())])
}

/// A state change.
pub fn change(address: &str, value: Option<&[u8]>) -> StateChange {
    let mut change = StateChange::new();
    change.set_address(address.to_owned());
    match value {
        Some(value) => {
            change.set_value(value.to_vec());
            change.set_field_type(StateChange_Type::SET);
        }
        None => change.set_field_type(StateChange_Type::DELETE),
    }
    change
}

#[derive(Default)]
struct Inner {
    chain: Vec<Block>,
    states: HashMap<String, BTreeMap<String, Vec<u8>>>,
    batches: HashMap<String, (Batch, u64)>,
    txns: HashMap<String, (Transaction, u64)>,
    receipts: HashMap<String, TransactionReceipt>,
    statuses: HashMap<String, BatchStatus>,
    pending: Vec<Batch>,
    queue_full: bool,
    broken_storage: bool,
}

/// The in-memory ledger.
pub struct MemoryLedger {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
    commits: broadcast::Sender<CommitNotice>,
}

impl MemoryLedger {
    /// A ledger with no genesis block yet.
    pub fn empty() -> Arc<Self> {
        Self::with_commit_capacity(64)
    }

    /// A ledger with no genesis whose commit channel holds `capacity` notices.
    pub fn with_commit_capacity(capacity: usize) -> Arc<Self> {
        Arc::new(MemoryLedger {
            inner: Mutex::default(),
            changes: watch::channel(0).0,
            commits: broadcast::channel(capacity).0,
        })
    }

    /// A ledger with an empty genesis block.
    pub fn with_genesis() -> Arc<Self> {
        let ledger = Self::empty();
        ledger.commit(Vec::new(), Vec::new());
        ledger
    }

    /// Makes submissions fail with a full queue.
    pub fn set_queue_full(&self, full: bool) {
        self.inner.lock().unwrap().queue_full = full;
    }

    /// Makes every storage read fail.
    pub fn set_broken_storage(&self, broken: bool) {
        self.inner.lock().unwrap().broken_storage = broken;
    }

    /// Replaces a committed transaction's receipt.
    pub fn set_receipt(&self, receipt: TransactionReceipt) {
        self.inner
            .lock()
            .unwrap()
            .receipts
            .insert(receipt.get_transaction_id().to_owned(), receipt);
    }

    /// Marks a batch INVALID because of its first transaction.
    pub fn invalidate(&self, batch: &Batch, message: &str, extended_data: &[u8]) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .pending
            .retain(|b| b.get_header_signature() != batch.get_header_signature());
        let info = InvalidTransactionInfo {
            id: batch.get_transactions()[0]
                .get_header_signature()
                .to_owned(),
            message: message.to_owned(),
            extended_data: extended_data.to_vec(),
        };
        let id = batch.get_header_signature().to_owned();
        inner.statuses.insert(
            id.clone(),
            BatchStatus {
                id,
                status: BatchStatusKind::Invalid,
                invalid_transactions: vec![info],
            },
        );
        drop(inner);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Commits the pending batches in a new block; `changes` all go to the first transaction's
    /// receipt.
    pub fn commit_pending(&self, changes: Vec<StateChange>) -> Block {
        let pending = std::mem::take(&mut self.inner.lock().unwrap().pending);
        self.commit(pending, changes)
    }

    /// Commits `batches` in a new block, applying `changes` (all in the first transaction's
    /// receipt), and announces it.
    pub fn commit(&self, batches: Vec<Batch>, changes: Vec<StateChange>) -> Block {
        let mut inner = self.inner.lock().unwrap();
        let num = inner.chain.len() as u64;
        let previous = inner
            .chain
            .last()
            .map_or_else(|| "0".repeat(16), |b| b.get_header_signature().to_owned());
        let mut state = match inner.chain.last() {
            Some(head) => {
                let header = BlockHeader::parse_from_bytes(head.get_header()).unwrap();
                inner.states[header.get_state_root_hash()].clone()
            }
            None => BTreeMap::new(),
        };
        for change in &changes {
            match change.get_field_type() {
                StateChange_Type::DELETE => state.remove(change.get_address()),
                _ => state.insert(change.get_address().to_owned(), change.get_value().to_vec()),
            };
        }
        let root = hex::encode(Sha256::digest(format!("{num} {state:?}").as_bytes()));
        let mut header = BlockHeader::new();
        header.set_block_num(num);
        header.set_previous_block_id(previous.clone());
        header.set_signer_public_key("02".to_owned() + &"a".repeat(64));
        header.set_batch_ids(
            batches
                .iter()
                .map(|b| b.get_header_signature().to_owned())
                .collect(),
        );
        header.set_consensus(if num == 0 {
            b"Genesis".to_vec()
        } else {
            b"Devmode".to_vec()
        });
        header.set_state_root_hash(root.clone());
        let mut block = Block::new();
        block.set_header(header.write_to_bytes().unwrap());
        block.set_header_signature(id(&format!("block {num}")));
        block.set_batches(RepeatedField::from_vec(batches.clone()));
        let mut first = true;
        for batch in &batches {
            let batch_id = batch.get_header_signature().to_owned();
            inner.batches.insert(batch_id.clone(), (batch.clone(), num));
            inner.statuses.insert(
                batch_id.clone(),
                BatchStatus {
                    id: batch_id,
                    status: BatchStatusKind::Committed,
                    invalid_transactions: Vec::new(),
                },
            );
            for txn in batch.get_transactions() {
                let txn_id = txn.get_header_signature().to_owned();
                inner.txns.insert(txn_id.clone(), (txn.clone(), num));
                let mut receipt = TransactionReceipt::new();
                receipt.set_transaction_id(txn_id.clone());
                if std::mem::take(&mut first) {
                    receipt.set_state_changes(RepeatedField::from_vec(changes.clone()));
                }
                inner.receipts.insert(txn_id, receipt);
            }
        }
        inner.states.insert(root, state);
        inner.chain.push(block.clone());
        drop(inner);
        let mut last: BTreeMap<String, StateChange> = BTreeMap::new();
        for change in changes {
            last.insert(change.get_address().to_owned(), change);
        }
        let _ = self.commits.send(CommitNotice {
            block_id: block.get_header_signature().to_owned(),
            block_num: num,
            previous_block_id: previous,
            state_changes: last.into_values().collect(),
        });
        self.changes.send_modify(|n| *n += 1);
        block
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> Result<T, ViewError> {
        let inner = self.inner.lock().unwrap();
        if inner.broken_storage {
            return Err(ViewError("disk on fire".into()));
        }
        Ok(f(&inner))
    }
}

impl LedgerView for MemoryLedger {
    fn submit_batches(&self, batches: Vec<Batch>) -> Result<(), SubmitError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.chain.is_empty() {
            return Err(SubmitError::NotReady);
        }
        if inner.queue_full {
            return Err(SubmitError::QueueFull);
        }
        if let Some(bad) = batches
            .iter()
            .find(|b| !crate::rest::params::is_resource_id(b.get_header_signature()))
        {
            return Err(SubmitError::InvalidBatch(format!(
                "bad signature {:?}",
                bad.get_header_signature()
            )));
        }
        for batch in batches {
            let id = batch.get_header_signature().to_owned();
            if inner.statuses.contains_key(&id) {
                continue;
            }
            inner.statuses.insert(
                id.clone(),
                BatchStatus {
                    id,
                    status: BatchStatusKind::Pending,
                    invalid_transactions: Vec::new(),
                },
            );
            inner.pending.push(batch);
        }
        Ok(())
    }

    fn batch_statuses(&self, ids: &[String]) -> Vec<BatchStatus> {
        let inner = self.inner.lock().unwrap();
        ids.iter()
            .map(|id| {
                inner.statuses.get(id).cloned().unwrap_or(BatchStatus {
                    id: id.clone(),
                    status: BatchStatusKind::Unknown,
                    invalid_transactions: Vec::new(),
                })
            })
            .collect()
    }

    fn status_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn chain_head(&self) -> Option<Block> {
        self.inner.lock().unwrap().chain.last().cloned()
    }

    fn block_by_id(&self, id: &str) -> Result<Option<Block>, ViewError> {
        self.read(|inner| {
            inner
                .chain
                .iter()
                .find(|b| b.get_header_signature() == id)
                .cloned()
        })
    }

    fn block_by_num(&self, num: u64) -> Result<Option<Block>, ViewError> {
        self.read(|inner| {
            usize::try_from(num)
                .ok()
                .and_then(|n| inner.chain.get(n))
                .cloned()
        })
    }

    fn batch_by_id(&self, id: &str) -> Result<Option<(Batch, u64)>, ViewError> {
        self.read(|inner| inner.batches.get(id).cloned())
    }

    fn transaction_by_id(&self, id: &str) -> Result<Option<(Transaction, u64)>, ViewError> {
        self.read(|inner| inner.txns.get(id).cloned())
    }

    fn receipt(&self, transaction_id: &str) -> Result<Option<TransactionReceipt>, ViewError> {
        self.read(|inner| inner.receipts.get(transaction_id).cloned())
    }

    fn state_get(&self, state_root: &str, address: &str) -> Result<Option<Vec<u8>>, ViewError> {
        self.read(|inner| {
            inner
                .states
                .get(state_root)
                .and_then(|s| s.get(address))
                .cloned()
        })
    }

    fn state_list(
        &self,
        state_root: &str,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewError> {
        self.read(|inner| {
            let Some(state) = inner.states.get(state_root) else {
                return Vec::new();
            };
            state
                .iter()
                .filter(|(a, _)| a.starts_with(prefix) && start.is_none_or(|s| a.as_str() >= s))
                .take(limit)
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect()
        })
    }

    fn subscribe_commits(&self) -> broadcast::Receiver<CommitNotice> {
        self.commits.subscribe()
    }

    fn endpoint(&self) -> String {
        "tcp://127.0.0.1:8800".into()
    }

    fn peers(&self) -> Vec<String> {
        vec!["tcp://10.0.0.2:8800".into(), "tcp://10.0.0.1:8800".into()]
    }
}
