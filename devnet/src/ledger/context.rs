//! Execution contexts: the state context of one transaction, the head-state read cache, and
//! the receipts built from a finished context.

use std::collections::{BTreeMap, HashMap};

use protobuf::RepeatedField;
use sawtooth_sdk::messages::events::Event;
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};

use super::validate::QueuedTxn;

/// The state context of the transaction being executed.
pub struct TxnContext {
    /// The uuid4-hex context id given to the processor.
    pub id: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Address -> new value (`None`: deleted), in first-write order via `order`.
    pub(super) writes: HashMap<String, Option<Vec<u8>>>,
    pub(super) order: Vec<String>,
    data: Vec<Vec<u8>>,
    events: Vec<Event>,
}

impl TxnContext {
    pub(super) fn new(txn: &QueuedTxn) -> Self {
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

/// Whether any prefix of `a` overlaps any prefix of `b`.
pub fn overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|p| {
        b.iter()
            .any(|q| p.starts_with(q.as_str()) || q.starts_with(p.as_str()))
    })
}

/// Whether two transactions' declared accesses conflict (see [`TxnContext::conflicts_with`]).
pub fn txns_conflict(a: &QueuedTxn, b: &QueuedTxn) -> bool {
    let (ai, ao) = (a.header.get_inputs(), a.header.get_outputs());
    let (bi, bo) = (b.header.get_inputs(), b.header.get_outputs());
    overlap(ao, bi) || overlap(ao, bo) || overlap(ai, bo)
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

    /// The cached head value of `address`, if it was read before.
    pub(super) fn get(&self, address: &str) -> Option<&Option<Vec<u8>>> {
        self.values.get(address)
    }

    pub(super) fn insert(&mut self, address: &str, value: Option<Vec<u8>>) {
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
pub(super) fn receipt_of(txn_id: &str, ctx: &TxnContext) -> TransactionReceipt {
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
