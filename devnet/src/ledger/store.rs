//! The block store: blocks, batches, transactions and receipts in redb, with the chain head.
//!
//! One block is one redb write transaction with [`redb::Durability::Immediate`] (an fsync): its
//! header record, its batches, the transaction index, the receipts and the new head all become
//! visible and durable together, so after a crash the head, its state root (whose nodes were
//! written before, see [`super::state`]) and every batch reported COMMITTED agree.
//!
//! Layout: `blocks` (number -> block without batches), `block_ids` (id -> number), `batches`
//! (id -> block number ++ batch bytes), `txns` (id -> block number ++ batch id), `receipts`
//! (transaction id -> receipt bytes), `meta` (`head` -> number), `head_state` (address -> raw
//! value at the head, for fast execution reads).

use std::sync::Arc;

use protobuf::{Message as _, RepeatedField};
use redb::{Durability, ReadableTable, TableDefinition};
use sawtooth_sdk::messages::batch::Batch;
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::transaction::Transaction;
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};

use super::error::{LedgerError, Result};

const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_IDS: TableDefinition<'_, &str, u64> = TableDefinition::new("block_ids");
const BATCHES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("batches");
const TXNS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("txns");
const RECEIPTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("receipts");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The state at the head as a flat map (address -> raw value), updated in the same write
/// transaction as the head, so execution reads one key instead of walking the tree.
const HEAD_STATE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("head_state");

/// Durable storage of the chain.
#[derive(Clone)]
pub struct BlockStore {
    db: Arc<redb::Database>,
}

fn split_num(bytes: &[u8]) -> Result<(u64, &[u8])> {
    if bytes.len() < 8 {
        return Err(LedgerError::Corrupt("short index record".into()));
    }
    let mut num = [0u8; 8];
    num.copy_from_slice(&bytes[..8]);
    Ok((u64::from_be_bytes(num), &bytes[8..]))
}

impl BlockStore {
    /// Wraps the database, creating the tables if needed.
    pub fn new(db: Arc<redb::Database>) -> Result<Self> {
        let txn = db.begin_write()?;
        {
            txn.open_table(BLOCKS)?;
            txn.open_table(BLOCK_IDS)?;
            txn.open_table(BATCHES)?;
            txn.open_table(TXNS)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(META)?;
            txn.open_table(HEAD_STATE)?;
        }
        txn.commit()?;
        Ok(Self { db })
    }

    /// Commits a block (with its batches), the receipts of its transactions and its state
    /// changes (last change per address), and makes it the head. Durable when this returns.
    pub fn commit_block(
        &self,
        block: &Block,
        receipts: &[TransactionReceipt],
        changes: &[StateChange],
    ) -> Result<()> {
        let header = BlockHeader::parse_from_bytes(block.get_header())?;
        let num = header.get_block_num();
        let mut record = Block::new();
        record.set_header(block.get_header().to_vec());
        record.set_header_signature(block.get_header_signature().to_string());
        let record = record.write_to_bytes()?;

        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            txn.open_table(BLOCKS)?.insert(num, record.as_slice())?;
            txn.open_table(BLOCK_IDS)?
                .insert(block.get_header_signature(), num)?;
            let mut batches = txn.open_table(BATCHES)?;
            let mut txns = txn.open_table(TXNS)?;
            let mut buf = Vec::new();
            for batch in block.get_batches() {
                buf.clear();
                buf.extend_from_slice(&num.to_be_bytes());
                batch.write_to_vec(&mut buf)?;
                batches.insert(batch.get_header_signature(), buf.as_slice())?;
                let mut index = num.to_be_bytes().to_vec();
                index.extend_from_slice(batch.get_header_signature().as_bytes());
                for t in batch.get_transactions() {
                    txns.insert(t.get_header_signature(), index.as_slice())?;
                }
            }
            let mut table = txn.open_table(RECEIPTS)?;
            for receipt in receipts {
                table.insert(
                    receipt.get_transaction_id(),
                    receipt.write_to_bytes()?.as_slice(),
                )?;
            }
            let mut head_state = txn.open_table(HEAD_STATE)?;
            for change in changes {
                if change.get_field_type() == StateChange_Type::DELETE {
                    head_state.remove(change.get_address())?;
                } else {
                    head_state.insert(change.get_address(), change.get_value())?;
                }
            }
            txn.open_table(META)?.insert("head", num)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The head block number, if any block was committed.
    pub fn head_num(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(META)?.get("head")?.map(|v| v.value()))
    }

    /// The block with this number (with its batches), if stored.
    pub fn block_by_num(&self, num: u64) -> Result<Option<Block>> {
        let txn = self.db.begin_read()?;
        let record = match txn.open_table(BLOCKS)?.get(num)? {
            Some(v) => Block::parse_from_bytes(v.value())?,
            None => return Ok(None),
        };
        let header = BlockHeader::parse_from_bytes(record.get_header())?;
        let table = txn.open_table(BATCHES)?;
        let mut batches = Vec::with_capacity(header.get_batch_ids().len());
        for id in header.get_batch_ids() {
            let stored = table
                .get(id.as_str())?
                .ok_or_else(|| LedgerError::Corrupt(format!("block {num} lacks batch {id}")))?;
            batches.push(Batch::parse_from_bytes(split_num(stored.value())?.1)?);
        }
        let mut block = record;
        block.set_batches(RepeatedField::from_vec(batches));
        Ok(Some(block))
    }

    /// The number of the block with this id, if stored.
    pub fn block_num_of(&self, id: &str) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(BLOCK_IDS)?.get(id)?.map(|v| v.value()))
    }

    /// A committed batch and its block number.
    pub fn batch(&self, id: &str) -> Result<Option<(Batch, u64)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let Some(stored) = table.get(id)? else {
            return Ok(None);
        };
        let (num, bytes) = split_num(stored.value())?;
        Ok(Some((Batch::parse_from_bytes(bytes)?, num)))
    }

    /// Whether a batch is committed.
    pub fn has_batch(&self, id: &str) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(BATCHES)?.get(id)?.is_some())
    }

    /// Whether a transaction is committed.
    pub fn has_txn(&self, id: &str) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(TXNS)?.get(id)?.is_some())
    }

    /// A committed transaction and its block number.
    pub fn transaction(&self, id: &str) -> Result<Option<(Transaction, u64)>> {
        let txn = self.db.begin_read()?;
        let batch_id = match txn.open_table(TXNS)?.get(id)? {
            Some(v) => String::from_utf8_lossy(split_num(v.value())?.1).into_owned(),
            None => return Ok(None),
        };
        drop(txn);
        let (batch, num) = self
            .batch(&batch_id)?
            .ok_or_else(|| LedgerError::Corrupt(format!("txn {id} points at missing batch")))?;
        let found = batch
            .get_transactions()
            .iter()
            .find(|t| t.get_header_signature() == id)
            .cloned();
        Ok(found.map(|t| (t, num)))
    }

    /// The receipt of a committed transaction.
    pub fn receipt(&self, id: &str) -> Result<Option<TransactionReceipt>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECEIPTS)?;
        let Some(bytes) = table.get(id)? else {
            return Ok(None);
        };
        Ok(Some(TransactionReceipt::parse_from_bytes(bytes.value())?))
    }

    /// The raw value at `address` in the head state.
    pub fn head_value(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HEAD_STATE)?;
        Ok(table.get(address)?.map(|v| v.value().to_vec()))
    }

    /// Every entry of the head state table, sorted by address.
    pub fn head_state_entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HEAD_STATE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}
