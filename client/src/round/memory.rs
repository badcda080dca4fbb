//! [`MemoryLedger`]: the [`Ledger`] of the processor's real rules over an in-memory state.
//!
//! Every submission runs [`bcfl_processor::handler::BcflHandler`] through the processor's
//! [`bcfl_processor::testing::MemoryLedger`], with the header inputs and outputs the family
//! declares, so a transaction is accepted or refused exactly as `bcfl-tp` would; only the
//! validator (signatures, blocks, consensus) is left out. Each accepted transaction is one
//! "block": the head is its sequence number. For fast tests of the roles and for simulations
//! of many members on one machine.

use std::sync::Mutex;
use std::time::Duration;

use bcfl_processor::testing::MemoryLedger as Rules;
use bcfl_processor::ApplyError;
use bcfl_protos::bcfl as pb;
use tokio::sync::watch;

use super::ledger::{Ledger, LedgerError};
use bcfl_ledger::keys::Signer;
use bcfl_ledger::rest::{StateEntry, StateSnapshot};
use bcfl_ledger::state::FamilyState;

/// An in-memory ledger running the family's rules.
#[derive(Debug)]
pub struct MemoryLedger {
    rules: Mutex<Rules>,
    heads: watch::Sender<u64>,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self {
            rules: Mutex::new(Rules::new()),
            heads: watch::channel(0).0,
        }
    }

    /// The raw state: address -> bytes, as a validator's Merkle-Radix tree would hold it.
    pub fn raw_state(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.rules
            .lock()
            .expect("the ledger lock is not poisoned")
            .state()
            .clone()
    }

    /// Transactions accepted so far.
    pub fn height(&self) -> u64 {
        *self.heads.borrow()
    }
}

impl Ledger for MemoryLedger {
    async fn state(&self) -> Result<FamilyState, LedgerError> {
        let (entries, head) = {
            let rules = self.rules.lock().expect("the ledger lock is not poisoned");
            let entries: Vec<StateEntry> = rules
                .state()
                .iter()
                .map(|(address, data)| StateEntry {
                    address: address.clone(),
                    data: data.clone(),
                })
                .collect();
            (entries, *self.heads.borrow())
        };
        FamilyState::from_snapshot(StateSnapshot {
            head: format!("{head:016x}"),
            entries,
        })
        .map_err(|e| LedgerError::Invalid(e.to_string()))
    }

    async fn submit(
        &self,
        signer: &Signer,
        payload: pb::BcflPayload,
        action: &str,
    ) -> Result<(), LedgerError> {
        let outcome = self
            .rules
            .lock()
            .expect("the ledger lock is not poisoned")
            .submit(signer.public_key().as_hex(), &payload);
        match outcome {
            Ok(_) => {
                self.heads.send_modify(|h| *h += 1);
                Ok(())
            }
            Err(ApplyError::InvalidTransaction(reason)) => Err(LedgerError::Rejected {
                action: action.to_owned(),
                reason,
            }),
            Err(e) => Err(LedgerError::Unavailable {
                action: action.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    async fn changed(&self, head: &str, timeout: Duration) {
        let mut heads = self.heads.subscribe();
        let moved = async {
            loop {
                if format!("{:016x}", *heads.borrow_and_update()) != head {
                    return;
                }
                if heads.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, moved).await;
    }

    fn describe(&self) -> String {
        "in-memory ledger".to_owned()
    }
}
