//! The committer thread: seals executed blocks and commits them durably, in order.
//!
//! Sealing (the Merkle update of a block's writes, which writes the new nodes) and the durable
//! commit (one fsync) run here, beside the component loop, so processors keep executing the next
//! block meanwhile; that block reads this block's writes from an in-memory overlay until the
//! commit lands. Blocks are sealed strictly in order on top of the head, and only after the
//! commit is durable does the committer move the head, take the batches out of the pool, bump
//! the status counter and broadcast the [`CommitNotice`] (so nothing is reported COMMITTED early).
//!
//! If sealing or storing fails, the block and every later block of the same generation (built on
//! top of it) are dropped; their batches stay pending and the loop starts a new generation.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::transaction_receipt::{StateChange, TransactionReceipt};
use sha2::{Digest, Sha256};

use crate::view::CommitNotice;

use super::error::{LedgerError, Result};
use super::publisher::{state_change, Overlay};
use super::validate::QueuedBatch;
use super::{HeadInfo, Shared};

/// An executed block for the committer.
pub struct SealJob {
    /// The loop's generation when the block was built.
    pub generation: u64,
    /// Last change per address.
    pub writes: Arc<Overlay>,
    /// Valid batches in block order.
    pub batches: Vec<Arc<QueuedBatch>>,
    /// Receipts of their transactions.
    pub receipts: Vec<TransactionReceipt>,
}

/// What the committer tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitEvent {
    /// The oldest outstanding block is committed.
    Committed,
    /// A block of this generation failed; later blocks of the generation were dropped.
    Failed(u64),
}

/// A sealed block.
struct Sealed {
    block: Block,
    state_root: String,
    state_changes: Vec<StateChange>,
}

/// Computes the state root on top of `head` and signs the block.
fn seal(shared: &Shared, head: &HeadInfo, job: &SealJob) -> Result<Sealed> {
    let base = shared.state.tree(&head.state_root)?.ok_or_else(|| {
        LedgerError::Corrupt(format!("head state root {} is missing", head.state_root))
    })?;
    // A delete of an address absent from the parent state (e.g. set and deleted within this
    // block) changes nothing; transact refuses to delete a missing leaf, so skip it.
    let mut changes = Vec::with_capacity(job.writes.len());
    for (address, value) in job.writes.iter() {
        if value.is_some() || base.contains(address)? {
            changes.push((address.clone(), value.clone()));
        }
    }
    let state_root = shared.state.apply(&head.state_root, changes)?;
    let batch_ids: Vec<String> = job.batches.iter().map(|b| b.id.clone()).collect();
    let mut summary = Sha256::new();
    for id in &batch_ids {
        summary.update(id.as_bytes());
    }
    let mut consensus = b"Devmode".to_vec();
    consensus.extend_from_slice(&summary.finalize());
    let mut header = BlockHeader::new();
    header.set_block_num(head.num + 1);
    header.set_previous_block_id(head.id.clone());
    header.set_signer_public_key(shared.key.public_key().to_string());
    header.set_batch_ids(RepeatedField::from_vec(batch_ids));
    header.set_consensus(consensus);
    header.set_state_root_hash(state_root.clone());
    let header_bytes = header.write_to_bytes()?;
    let mut block = Block::new();
    block.set_header_signature(shared.key.sign(&header_bytes));
    block.set_header(header_bytes);
    block.set_batches(job.batches.iter().map(|b| b.batch.clone()).collect());
    let state_changes = job
        .writes
        .iter()
        .map(|(address, value)| state_change(address.clone(), value.clone()))
        .collect();
    Ok(Sealed {
        block,
        state_root,
        state_changes,
    })
}

/// Seals and commits one block; on success the head has moved.
fn commit(shared: &Shared, job: &SealJob) -> Result<()> {
    let started = Instant::now();
    let head = shared.head_info();
    let sealed = seal(shared, &head, job)?;
    let seal_time = started.elapsed();
    shared
        .store
        .commit_block(&sealed.block, &job.receipts, &sealed.state_changes)?;
    let notice = CommitNotice {
        block_id: sealed.block.get_header_signature().to_string(),
        block_num: head.num + 1,
        previous_block_id: head.id.clone(),
        state_changes: sealed.state_changes,
    };
    tracing::info!(
        block_num = notice.block_num,
        batches = job.batches.len(),
        state_root = %sealed.state_root,
        seal_ms = seal_time.as_secs_f64() * 1e3,
        store_ms = (started.elapsed() - seal_time).as_secs_f64() * 1e3,
        "block committed"
    );
    shared.set_head(sealed.block, sealed.state_root);
    let ids: HashSet<&str> = job.batches.iter().map(|b| b.id.as_str()).collect();
    shared.pool.remove(&ids, &shared.store);
    shared.bump_status();
    let _ = shared.commits.send(notice);
    Ok(())
}

/// Runs the committer until the job channel closes (after finishing every queued job).
pub fn run(shared: Arc<Shared>, jobs: Receiver<SealJob>, events: Sender<CommitEvent>) {
    let mut failed_generation = None;
    for job in jobs {
        if failed_generation == Some(job.generation) {
            continue;
        }
        let event = match commit(&shared, &job) {
            Ok(()) => CommitEvent::Committed,
            Err(err) => {
                tracing::error!(%err, "committing a block failed; its batches stay pending");
                failed_generation = Some(job.generation);
                CommitEvent::Failed(job.generation)
            }
        };
        if events.send(event).is_err() {
            return;
        }
        shared.waker.wake();
    }
}
