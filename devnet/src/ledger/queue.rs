//! The batch pool: pending batches, batches held for dependencies, and recent invalid batches.
//!
//! Submitting threads (REST) add batches; the publisher takes snapshots of the pending queue and
//! removes batches once they are committed or invalid. Besides the pool's capacity, each batch
//! signer may hold only a share of it (pending plus held): a key that floods the queue gets
//! `QueueFull` once it holds its share, while every other key is still served. (A validator has
//! one shared queue, so such a flood locks everyone out until it drains, and batches of a family
//! no processor serves never drain.) Like Sawtooth's completer, a batch whose
//! transactions depend on transactions neither seen nor committed is *held* (status UNKNOWN) and
//! moves to the pending queue once its dependencies appear. Invalid results are kept for 600 s,
//! like Sawtooth's batch tracker. Nothing here is persisted: pending batches are lost on a crash,
//! as in Sawtooth.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::view::{BatchStatusKind, InvalidTransactionInfo, SubmitError};

use super::store::BlockStore;
use super::validate::QueuedBatch;

/// How long invalid results are remembered (Sawtooth's batch tracker).
pub const INVALID_TTL: Duration = Duration::from_secs(600);

#[derive(Default)]
struct PoolInner {
    queued: VecDeque<Arc<QueuedBatch>>,
    queued_ids: HashSet<String>,
    held: Vec<Arc<QueuedBatch>>,
    held_ids: HashSet<String>,
    /// Transaction ids of queued and held batches.
    txn_ids: HashSet<String>,
    /// Queued plus held batches per batch signer.
    per_signer: HashMap<String, usize>,
    invalid: HashMap<String, (Instant, Vec<InvalidTransactionInfo>)>,
}

/// Pending, held and invalid batches (see the module docs).
pub struct BatchPool {
    inner: Mutex<PoolInner>,
    capacity: usize,
    per_signer: usize,
}

impl BatchPool {
    /// A pool that holds at most `capacity` pending plus held batches, at most `per_signer` of
    /// them from one batch signer.
    pub fn new(capacity: usize, per_signer: usize) -> Self {
        Self {
            inner: Mutex::new(PoolInner::default()),
            capacity,
            per_signer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds validated batches, all or nothing; known batches are ignored. Returns how many
    /// batches were new.
    pub fn submit(
        &self,
        batches: Vec<QueuedBatch>,
        store: &BlockStore,
    ) -> Result<usize, SubmitError> {
        let mut inner = self.lock();
        let mut fresh = Vec::with_capacity(batches.len());
        let mut ids = HashSet::new();
        for batch in batches {
            let known = inner.queued_ids.contains(&batch.id)
                || inner.held_ids.contains(&batch.id)
                || inner
                    .invalid
                    .get(&batch.id)
                    .is_some_and(|(t, _)| t.elapsed() < INVALID_TTL)
                || !ids.insert(batch.id.clone())
                || store
                    .has_batch(&batch.id)
                    .map_err(|e| SubmitError::InvalidBatch(e.to_string()))?;
            if !known {
                fresh.push(batch);
            }
        }
        if inner.queued.len() + inner.held.len() + fresh.len() > self.capacity {
            return Err(SubmitError::QueueFull);
        }
        let mut wanted: HashMap<&str, usize> = HashMap::new();
        for batch in &fresh {
            *wanted.entry(batch.signer.as_str()).or_default() += 1;
        }
        if let Some((signer, _)) = wanted.iter().find(|(signer, n)| {
            inner.per_signer.get(**signer).copied().unwrap_or(0) + **n > self.per_signer
        }) {
            tracing::debug!(%signer, share = self.per_signer, "a signer's share of the queue is full");
            return Err(SubmitError::QueueFull);
        }
        let added = fresh.len();
        for batch in fresh {
            *inner.per_signer.entry(batch.signer.clone()).or_default() += 1;
            inner.invalid.remove(&batch.id);
            for t in &batch.txns {
                inner.txn_ids.insert(t.id.clone());
            }
            let batch = Arc::new(batch);
            if dependencies_met(&inner, &batch, store) {
                inner.queued_ids.insert(batch.id.clone());
                inner.queued.push_back(batch);
            } else {
                tracing::debug!(batch = %batch.id, "held for dependencies");
                inner.held_ids.insert(batch.id.clone());
                inner.held.push(batch);
            }
        }
        promote_held(&mut inner, store);
        Ok(added)
    }

    /// Up to `max` (0: all) pending batches for which `ready` holds, oldest first.
    pub fn snapshot(
        &self,
        max: usize,
        ready: impl Fn(&QueuedBatch) -> bool,
    ) -> Vec<Arc<QueuedBatch>> {
        let inner = self.lock();
        let take = if max == 0 { usize::MAX } else { max };
        inner
            .queued
            .iter()
            .filter(|b| ready(b))
            .take(take)
            .cloned()
            .collect()
    }

    /// Number of pending (not held) batches.
    pub fn pending_len(&self) -> usize {
        self.lock().queued.len()
    }

    /// Removes committed or dropped batches from the queue and releases held batches whose
    /// dependencies are now committed.
    pub fn remove(&self, ids: &HashSet<&str>, store: &BlockStore) {
        if ids.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        let txn_ids = &mut inner.txn_ids;
        let per_signer = &mut inner.per_signer;
        inner.queued.retain(|b| {
            if ids.contains(b.id.as_str()) {
                for t in &b.txns {
                    txn_ids.remove(&t.id);
                }
                if let Some(n) = per_signer.get_mut(&b.signer) {
                    *n -= 1;
                    if *n == 0 {
                        per_signer.remove(&b.signer);
                    }
                }
                false
            } else {
                true
            }
        });
        for id in ids {
            inner.queued_ids.remove(*id);
        }
        promote_held(inner, store);
    }

    /// Removes a batch from the queue and records it as INVALID.
    pub fn mark_invalid(&self, id: &str, info: Vec<InvalidTransactionInfo>, store: &BlockStore) {
        self.remove(&HashSet::from([id]), store);
        let mut inner = self.lock();
        inner
            .invalid
            .retain(|_, (at, _)| at.elapsed() < INVALID_TTL);
        inner.invalid.insert(id.to_string(), (Instant::now(), info));
    }

    /// The status of a batch that is not committed.
    pub fn status(&self, id: &str) -> (BatchStatusKind, Vec<InvalidTransactionInfo>) {
        let inner = self.lock();
        if let Some((at, info)) = inner.invalid.get(id) {
            if at.elapsed() < INVALID_TTL {
                return (BatchStatusKind::Invalid, info.clone());
            }
        }
        if inner.queued_ids.contains(id) {
            (BatchStatusKind::Pending, Vec::new())
        } else {
            (BatchStatusKind::Unknown, Vec::new())
        }
    }
}

fn dependencies_met(inner: &PoolInner, batch: &QueuedBatch, store: &BlockStore) -> bool {
    batch
        .txns
        .iter()
        .flat_map(|t| t.header.get_dependencies())
        .all(|dep| {
            batch.txns.iter().any(|t| t.id == *dep)
                || (inner.txn_ids.contains(dep) && !inner.held_txn(dep))
                || store.has_txn(dep).unwrap_or(false)
        })
}

impl PoolInner {
    fn held_txn(&self, id: &str) -> bool {
        self.held.iter().any(|b| b.txns.iter().any(|t| t.id == id))
    }
}

fn promote_held(inner: &mut PoolInner, store: &BlockStore) {
    loop {
        let ready = inner
            .held
            .iter()
            .position(|b| dependencies_met(inner, b, store));
        let Some(pos) = ready else { break };
        let batch = inner.held.swap_remove(pos);
        inner.held_ids.remove(&batch.id);
        inner.queued_ids.insert(batch.id.clone());
        inner.queued.push_back(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::validate::QueuedTxn;
    use sawtooth_sdk::messages::batch::Batch;
    use sawtooth_sdk::messages::transaction::TransactionHeader;
    use std::sync::atomic::AtomicU32;

    fn batch(id: &str, txn: &str, deps: &[&str]) -> QueuedBatch {
        signed(id, txn, deps, "")
    }

    fn signed(id: &str, txn: &str, deps: &[&str], signer: &str) -> QueuedBatch {
        let mut header = TransactionHeader::new();
        header.set_dependencies(deps.iter().map(|d| d.to_string()).collect());
        QueuedBatch {
            id: id.into(),
            signer: signer.into(),
            batch: Batch::new(),
            txns: vec![QueuedTxn {
                id: txn.into(),
                header,
            }],
            families: vec![],
            failures: AtomicU32::new(0),
        }
    }

    #[test]
    fn held_batches_wait_for_their_dependencies_and_capacity_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("q.redb")).unwrap());
        let store = BlockStore::new(db).unwrap();
        let pool = BatchPool::new(3, 3);
        assert_eq!(pool.submit(vec![batch("b2", "t2", &["t1"])], &store), Ok(1));
        assert_eq!(pool.status("b2").0, BatchStatusKind::Unknown);
        assert_eq!(pool.pending_len(), 0);
        // Known ids are ignored; the dependency arriving releases the held batch.
        assert_eq!(
            pool.submit(
                vec![batch("b2", "t2", &["t1"]), batch("b1", "t1", &[])],
                &store
            ),
            Ok(1)
        );
        assert_eq!(pool.status("b2").0, BatchStatusKind::Pending);
        let order: Vec<String> = pool
            .snapshot(0, |_| true)
            .iter()
            .map(|b| b.id.clone())
            .collect();
        assert_eq!(order, ["b1", "b2"]);
        assert_eq!(pool.snapshot(1, |b| b.id != "b1").len(), 1);
        assert_eq!(
            pool.submit(vec![batch("b3", "t3", &[]), batch("b4", "t4", &[])], &store),
            Err(SubmitError::QueueFull)
        );
        let info = vec![InvalidTransactionInfo {
            id: "t1".into(),
            message: "no".into(),
            extended_data: vec![],
        }];
        pool.mark_invalid("b1", info.clone(), &store);
        assert_eq!(pool.status("b1"), (BatchStatusKind::Invalid, info));
        pool.remove(&HashSet::from(["b2"]), &store);
        assert_eq!(pool.status("b2").0, BatchStatusKind::Unknown);
        assert_eq!(pool.pending_len(), 0);
    }

    #[test]
    fn one_signer_holds_at_most_its_share_and_others_are_still_served() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("q.redb")).unwrap());
        let store = BlockStore::new(db).unwrap();
        let pool = BatchPool::new(10, 2);
        let flood = |i: usize| signed(&format!("f{i}"), &format!("ft{i}"), &[], "flooder");
        assert_eq!(pool.submit(vec![flood(0), flood(1)], &store), Ok(2));
        assert_eq!(
            pool.submit(vec![flood(2)], &store),
            Err(SubmitError::QueueFull)
        );
        // A held batch counts too.
        assert_eq!(
            pool.submit(vec![signed("h", "ht", &["missing"], "other")], &store),
            Ok(1)
        );
        assert_eq!(
            pool.submit(vec![signed("o", "ot", &[], "other")], &store),
            Ok(1)
        );
        assert_eq!(
            pool.submit(vec![signed("o2", "ot2", &[], "other")], &store),
            Err(SubmitError::QueueFull)
        );
        // Committing frees the flooder's share.
        pool.remove(&HashSet::from(["f0"]), &store);
        assert_eq!(pool.submit(vec![flood(2)], &store), Ok(1));
    }
}
