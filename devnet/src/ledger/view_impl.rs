//! [`LedgerView`] over the shared ledger state: what the REST API calls.

use std::sync::Arc;

use sawtooth_sdk::messages::batch::Batch;
use sawtooth_sdk::messages::block::Block;
use sawtooth_sdk::messages::transaction::Transaction;
use sawtooth_sdk::messages::transaction_receipt::TransactionReceipt;

use crate::view::{BatchStatus, BatchStatusKind, CommitNotice, LedgerView, SubmitError, ViewError};

use super::state::StateReader;
use super::validate::validate_batch;
use super::Shared;

/// The devnet's [`LedgerView`]; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
}

impl Ledger {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl LedgerView for Ledger {
    fn submit_batches(&self, batches: Vec<Batch>) -> Result<(), SubmitError> {
        if batches.is_empty() {
            return Err(SubmitError::InvalidBatch("no batches submitted".into()));
        }
        let validated = batches
            .into_iter()
            .map(validate_batch)
            .collect::<Result<Vec<_>, String>>()
            .map_err(SubmitError::InvalidBatch)?;
        // Like refusing a bad signature: a family the chain does not allow is refused here,
        // rather than queued and failed at execution as a validator does.
        let families = self.shared.allow_list();
        if families.is_restricted() {
            for batch in &validated {
                for txn in &batch.txns {
                    families.check(&txn.header).map_err(|reason| {
                        SubmitError::InvalidBatch(format!(
                            "batch {}: transaction {}: {reason}",
                            batch.id, txn.id
                        ))
                    })?;
                }
            }
        }
        let added = self.shared.pool.submit(validated, &self.shared.store)?;
        if added > 0 {
            self.shared.bump_status();
            self.shared.waker.wake();
        }
        Ok(())
    }

    fn batch_statuses(&self, ids: &[String]) -> Vec<BatchStatus> {
        ids.iter()
            .map(|id| {
                if self.shared.store.has_batch(id).unwrap_or(false) {
                    return BatchStatus {
                        id: id.clone(),
                        status: BatchStatusKind::Committed,
                        invalid_transactions: vec![],
                    };
                }
                let (status, invalid_transactions) = self.shared.pool.status(id);
                BatchStatus {
                    id: id.clone(),
                    status,
                    invalid_transactions,
                }
            })
            .collect()
    }

    fn status_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.status.subscribe()
    }

    fn chain_head(&self) -> Option<Block> {
        Some(Block::clone(&self.shared.head_info().block))
    }

    fn block_by_id(&self, id: &str) -> Result<Option<Block>, ViewError> {
        match self.shared.store.block_num_of(id)? {
            Some(num) => Ok(self.shared.store.block_by_num(num)?),
            None => Ok(None),
        }
    }

    fn block_by_num(&self, num: u64) -> Result<Option<Block>, ViewError> {
        if num > self.shared.head_info().num {
            return Ok(None);
        }
        Ok(self.shared.store.block_by_num(num)?)
    }

    fn batch_by_id(&self, id: &str) -> Result<Option<(Batch, u64)>, ViewError> {
        Ok(self.shared.store.batch(id)?)
    }

    fn transaction_by_id(&self, id: &str) -> Result<Option<(Transaction, u64)>, ViewError> {
        Ok(self.shared.store.transaction(id)?)
    }

    fn receipt(&self, transaction_id: &str) -> Result<Option<TransactionReceipt>, ViewError> {
        Ok(self.shared.store.receipt(transaction_id)?)
    }

    fn state_get(&self, state_root: &str, address: &str) -> Result<Option<Vec<u8>>, ViewError> {
        let Some(tree) = self.shared.state.tree(state_root)? else {
            return Ok(None);
        };
        Ok(StateReader::get(&tree, address)?)
    }

    fn state_list(
        &self,
        state_root: &str,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ViewError> {
        let Some(tree) = self.shared.state.tree(state_root)? else {
            return Ok(Vec::new());
        };
        Ok(StateReader::list(&tree, prefix, start, limit)?)
    }

    fn subscribe_commits(&self) -> tokio::sync::broadcast::Receiver<CommitNotice> {
        self.shared.commits.subscribe()
    }

    fn endpoint(&self) -> String {
        self.shared.network_endpoint.clone()
    }

    fn peers(&self) -> Vec<String> {
        Vec::new()
    }
}
