//! Global state: Sawtooth's Merkle-Radix tree, persisted in the devnet's redb file.
//!
//! The tree itself is transact's [`MerkleRadixTree`], whose node encoding and hashing are
//! byte-identical to the Sawtooth validator's. Two things are added here:
//!
//! * [`NodeDatabase`], a transact [`Database`] over redb tables. Node writes are committed with
//!   [`Durability::None`]; they become durable with the next block commit, which is
//!   [`Durability::Immediate`] (redb persists every earlier non-durable commit with it). Nodes are
//!   content-addressed, so nodes orphaned by a crash before the block commit are harmless. A
//!   bounded in-memory cache of decoded-node bytes serves the hot upper levels of the tree.
//! * The validator's value wrapping: a leaf stores `cbor(bytes(data))`, a CBOR byte string around
//!   the raw state bytes ([`wrap_value`], [`unwrap_value`]). Without it roots would differ from a
//!   real validator's.
//!
//! [`StateReader`] reads (and lists) leaves at any historical root, which is what REST `head=`
//! queries need.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redb::{Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use transact::database::{
    Database, DatabaseCursor, DatabaseError, DatabaseReader, DatabaseReaderCursor, DatabaseWriter,
};
use transact::state::merkle::MerkleRadixTree;
use transact::state::StateChange;

use super::error::LedgerError;

/// Merkle nodes, keyed by the node hash as hex bytes.
pub(crate) const NODES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("merkle_nodes");
/// transact's change-log index.
const CHANGE_LOG: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("merkle_change_log");
/// transact's duplicate (reference count) index.
const DUPLICATES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("merkle_duplicates");

/// Root of the empty tree (spec 4.1).
pub const EMPTY_ROOT: &str = "708ca7fbb701799bb387f2e50deaca402e8502abe229f705693d2d4f350e1ad6";

/// How many node blobs the read cache keeps before it is cleared.
const NODE_CACHE_LIMIT: usize = 200_000;

fn index_table(
    index: &str,
) -> Result<TableDefinition<'static, &'static [u8], &'static [u8]>, DatabaseError> {
    match index {
        transact::state::merkle::CHANGE_LOG_INDEX => Ok(CHANGE_LOG),
        transact::state::merkle::DUPLICATE_LOG_INDEX => Ok(DUPLICATES),
        other => Err(DatabaseError::NotFoundError(format!("no index {other}"))),
    }
}

fn reader_err(err: impl std::fmt::Display) -> DatabaseError {
    DatabaseError::ReaderError(err.to_string())
}

fn writer_err(err: impl std::fmt::Display) -> DatabaseError {
    DatabaseError::WriterError(err.to_string())
}

/// Node hash -> encoded node, for the hot upper levels of the tree.
type NodeCache = HashMap<Vec<u8>, Arc<[u8]>>;

/// A transact [`Database`] over the devnet's redb file (see the module docs).
#[derive(Clone)]
pub struct NodeDatabase {
    db: Arc<redb::Database>,
    cache: Arc<Mutex<NodeCache>>,
}

impl NodeDatabase {
    /// Wraps an open redb database, creating the tables if needed.
    pub fn new(db: Arc<redb::Database>) -> Result<Self, LedgerError> {
        let txn = db.begin_write()?;
        {
            txn.open_table(NODES)?;
            txn.open_table(CHANGE_LOG)?;
            txn.open_table(DUPLICATES)?;
        }
        txn.commit()?;
        Ok(Self {
            db,
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn cached(&self, key: &[u8]) -> Option<Arc<[u8]>> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    fn remember(&self, key: &[u8], value: &[u8]) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= NODE_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key.to_vec(), Arc::from(value));
        }
    }
}

impl Database for NodeDatabase {
    fn get_reader<'a>(&'a self) -> Result<Box<dyn DatabaseReader + 'a>, DatabaseError> {
        Ok(Box::new(NodeReader {
            owner: self,
            txn: std::cell::OnceCell::new(),
        }))
    }

    fn get_writer<'a>(&'a self) -> Result<Box<dyn DatabaseWriter + 'a>, DatabaseError> {
        let mut txn = self.db.begin_write().map_err(writer_err)?;
        txn.set_durability(Durability::None);
        Ok(Box::new(NodeWriter {
            owner: self,
            txn,
            written: Vec::new(),
        }))
    }

    fn clone_box(&self) -> Box<dyn Database> {
        Box::new(self.clone())
    }
}

fn get_in<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    key: &[u8],
) -> Result<Option<Vec<u8>>, DatabaseError> {
    Ok(table
        .get(key)
        .map_err(reader_err)?
        .map(|v| v.value().to_vec()))
}

/// A reader; its redb read transaction is opened on the first cache miss (most node reads are
/// cache hits, and transact opens one reader per node).
struct NodeReader<'a> {
    owner: &'a NodeDatabase,
    txn: std::cell::OnceCell<redb::ReadTransaction>,
}

impl NodeReader<'_> {
    fn txn(&self) -> Result<&redb::ReadTransaction, DatabaseError> {
        if let Some(txn) = self.txn.get() {
            return Ok(txn);
        }
        let txn = self.owner.db.begin_read().map_err(reader_err)?;
        Ok(self.txn.get_or_init(|| txn))
    }
}

impl DatabaseReader for NodeReader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DatabaseError> {
        if let Some(hit) = self.owner.cached(key) {
            return Ok(Some(hit.to_vec()));
        }
        let table = self.txn()?.open_table(NODES).map_err(reader_err)?;
        let value = get_in(&table, key)?;
        if let Some(value) = &value {
            self.owner.remember(key, value);
        }
        Ok(value)
    }

    fn index_get(&self, index: &str, key: &[u8]) -> Result<Option<Vec<u8>>, DatabaseError> {
        let table = self
            .txn()?
            .open_table(index_table(index)?)
            .map_err(reader_err)?;
        get_in(&table, key)
    }

    fn cursor(&self) -> Result<DatabaseCursor<'_>, DatabaseError> {
        let table = self.txn()?.open_table(NODES).map_err(reader_err)?;
        collect_cursor(&table)
    }

    fn index_cursor(&self, index: &str) -> Result<DatabaseCursor<'_>, DatabaseError> {
        let table = self
            .txn()?
            .open_table(index_table(index)?)
            .map_err(reader_err)?;
        collect_cursor(&table)
    }

    fn count(&self) -> Result<usize, DatabaseError> {
        let table = self.txn()?.open_table(NODES).map_err(reader_err)?;
        Ok(table.len().map_err(reader_err)? as usize)
    }

    fn index_count(&self, index: &str) -> Result<usize, DatabaseError> {
        let table = self
            .txn()?
            .open_table(index_table(index)?)
            .map_err(reader_err)?;
        Ok(table.len().map_err(reader_err)? as usize)
    }
}

fn collect_cursor<'a, T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
) -> Result<DatabaseCursor<'a>, DatabaseError> {
    let mut items = Vec::new();
    for entry in table.iter().map_err(reader_err)? {
        let (k, v) = entry.map_err(reader_err)?;
        items.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(Box::new(VecCursor { items, pos: 0 }))
}

/// A snapshot cursor (transact only uses cursors for pruning and diagnostics).
struct VecCursor {
    items: Vec<(Vec<u8>, Vec<u8>)>,
    pos: usize,
}

impl Iterator for VecCursor {
    type Item = (Vec<u8>, Vec<u8>);
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.items.get(self.pos).cloned();
        self.pos += 1;
        item
    }
}

impl DatabaseReaderCursor for VecCursor {
    fn seek_first(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.pos = 0;
        self.next()
    }
    fn seek_last(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.pos = self.items.len().saturating_sub(1);
        self.next()
    }
}

struct NodeWriter<'a> {
    owner: &'a NodeDatabase,
    txn: redb::WriteTransaction,
    written: Vec<(Vec<u8>, Vec<u8>)>,
}

impl NodeWriter<'_> {
    fn write(&mut self, key: &[u8], value: &[u8], must_be_new: bool) -> Result<(), DatabaseError> {
        let mut table = self.txn.open_table(NODES).map_err(writer_err)?;
        let old = table.insert(key, value).map_err(writer_err)?;
        if must_be_new && old.is_some() {
            return Err(DatabaseError::DuplicateEntry);
        }
        drop(old);
        self.written.push((key.to_vec(), value.to_vec()));
        Ok(())
    }
}

impl DatabaseReader for NodeWriter<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DatabaseError> {
        let table = self.txn.open_table(NODES).map_err(reader_err)?;
        get_in(&table, key)
    }

    fn index_get(&self, index: &str, key: &[u8]) -> Result<Option<Vec<u8>>, DatabaseError> {
        let table = self
            .txn
            .open_table(index_table(index)?)
            .map_err(reader_err)?;
        get_in(&table, key)
    }

    fn cursor(&self) -> Result<DatabaseCursor<'_>, DatabaseError> {
        let table = self.txn.open_table(NODES).map_err(reader_err)?;
        collect_cursor(&table)
    }

    fn index_cursor(&self, index: &str) -> Result<DatabaseCursor<'_>, DatabaseError> {
        let table = self
            .txn
            .open_table(index_table(index)?)
            .map_err(reader_err)?;
        collect_cursor(&table)
    }

    fn count(&self) -> Result<usize, DatabaseError> {
        let table = self.txn.open_table(NODES).map_err(reader_err)?;
        Ok(table.len().map_err(reader_err)? as usize)
    }

    fn index_count(&self, index: &str) -> Result<usize, DatabaseError> {
        let table = self
            .txn
            .open_table(index_table(index)?)
            .map_err(reader_err)?;
        Ok(table.len().map_err(reader_err)? as usize)
    }
}

impl DatabaseWriter for NodeWriter<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), DatabaseError> {
        self.write(key, value, true)
    }

    fn overwrite(&mut self, key: &[u8], value: &[u8]) -> Result<(), DatabaseError> {
        self.write(key, value, false)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), DatabaseError> {
        let mut table = self.txn.open_table(NODES).map_err(writer_err)?;
        let old = table.remove(key).map_err(writer_err)?;
        if old.is_none() {
            return Err(DatabaseError::NotFoundError(hex::encode(key)));
        }
        drop(old);
        if let Ok(mut cache) = self.owner.cache.lock() {
            cache.remove(key);
        }
        Ok(())
    }

    fn index_put(&mut self, index: &str, key: &[u8], value: &[u8]) -> Result<(), DatabaseError> {
        let mut table = self
            .txn
            .open_table(index_table(index)?)
            .map_err(writer_err)?;
        table.insert(key, value).map_err(writer_err)?;
        Ok(())
    }

    fn index_delete(&mut self, index: &str, key: &[u8]) -> Result<(), DatabaseError> {
        let mut table = self
            .txn
            .open_table(index_table(index)?)
            .map_err(writer_err)?;
        table.remove(key).map_err(writer_err)?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), DatabaseError> {
        let Self {
            owner,
            txn,
            written,
        } = *self;
        txn.commit().map_err(writer_err)?;
        for (key, value) in written {
            owner.remember(&key, &value);
        }
        Ok(())
    }

    fn as_reader(&self) -> &dyn DatabaseReader {
        self
    }
}

/// Wraps raw state bytes as the validator stores them: a CBOR byte string.
pub fn wrap_value(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u64;
    let mut out = Vec::with_capacity(data.len() + 9);
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(0x5b);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(data);
    out
}

/// Unwraps a leaf value stored by [`wrap_value`] (or by a Sawtooth validator).
pub fn unwrap_value(stored: &[u8]) -> Result<&[u8], LedgerError> {
    let bad = || LedgerError::Corrupt("leaf value is not a CBOR byte string".into());
    let (&first, rest) = stored.split_first().ok_or_else(bad)?;
    if first >> 5 != 2 {
        return Err(bad());
    }
    let (len, body) = match first & 0x1f {
        n @ 0..=23 => (u64::from(n), rest),
        24 => (u64::from(*rest.first().ok_or_else(bad)?), &rest[1..]),
        25 if rest.len() >= 2 => (
            u64::from(u16::from_be_bytes([rest[0], rest[1]])),
            &rest[2..],
        ),
        26 if rest.len() >= 4 => (
            u64::from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]])),
            &rest[4..],
        ),
        27 if rest.len() >= 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rest[..8]);
            (u64::from_be_bytes(b), &rest[8..])
        }
        _ => return Err(bad()),
    };
    if body.len() as u64 != len {
        return Err(bad());
    }
    Ok(body)
}

/// Read access to the tree at any stored root.
#[derive(Clone)]
pub struct StateReader {
    db: NodeDatabase,
}

impl StateReader {
    /// A reader over the node database.
    pub fn new(db: NodeDatabase) -> Self {
        Self { db }
    }

    /// The node database (for writers).
    pub fn database(&self) -> &NodeDatabase {
        &self.db
    }

    /// The tree at `root`; `Ok(None)` if no such root is stored.
    pub fn tree(&self, root: &str) -> Result<Option<MerkleRadixTree>, LedgerError> {
        if root.len() != 64 || hex::decode(root).is_err() {
            return Ok(None);
        }
        match MerkleRadixTree::new(Box::new(self.db.clone()), Some(root)) {
            Ok(tree) => Ok(Some(tree)),
            Err(transact::state::merkle::StateDatabaseError::NotFound(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The raw (unwrapped) value at a full address under `root`.
    pub fn get(tree: &MerkleRadixTree, address: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        match tree.get_value(address)? {
            Some(stored) => Ok(Some(unwrap_value(&stored)?.to_vec())),
            None => Ok(None),
        }
    }

    /// Leaves under `prefix`, sorted by address, from `start` (inclusive), at most `limit`.
    pub fn list(
        tree: &MerkleRadixTree,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let leaves = match tree.leaves(Some(prefix)) {
            Ok(leaves) => leaves,
            Err(transact::state::merkle::StateDatabaseError::NotFound(_)) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut out = Vec::new();
        for leaf in leaves {
            if out.len() >= limit {
                break;
            }
            let (address, stored) = leaf?;
            if start.is_some_and(|s| address.as_str() < s) {
                continue;
            }
            out.push((address, unwrap_value(&stored)?.to_vec()));
        }
        Ok(out)
    }

    /// Applies raw (unwrapped) changes on top of `root`, writes the new nodes (not yet durable)
    /// and returns the new root.
    pub fn apply(
        &self,
        root: &str,
        changes: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
    ) -> Result<String, LedgerError> {
        let changes: Vec<StateChange> = changes
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => StateChange::Set {
                    key,
                    value: wrap_value(&value),
                },
                None => StateChange::Delete { key },
            })
            .collect();
        let tree = self
            .tree(root)?
            .ok_or_else(|| LedgerError::Corrupt(format!("state root {root} is missing")))?;
        Ok(tree.update(&changes, false)?)
    }

    /// Makes sure the empty tree's root node is stored and returns its hash.
    pub fn initialize(&self) -> Result<String, LedgerError> {
        let tree = MerkleRadixTree::new(Box::new(self.db.clone()), None)?;
        Ok(tree.get_merkle_root())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> (tempfile::TempDir, StateReader) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("state.redb")).unwrap());
        (dir, StateReader::new(NodeDatabase::new(db).unwrap()))
    }

    #[test]
    fn empty_tree_root_matches_the_validator() {
        let (_dir, state) = reader();
        assert_eq!(state.initialize().unwrap(), EMPTY_ROOT);
    }

    #[test]
    fn hello_vector_matches_the_validator() {
        let (_dir, state) = reader();
        let root = state.initialize().unwrap();
        let address = format!("1cf126{}", "0".repeat(64));
        let new_root = state
            .apply(&root, [(address.clone(), Some(b"hello".to_vec()))])
            .unwrap();
        assert_eq!(
            new_root,
            "7b811efe7993ea479af5910a5d6f3caba573f3aee6f48fdcdef774055bae075e"
        );
        let tree = state.tree(&new_root).unwrap().unwrap();
        assert_eq!(
            StateReader::get(&tree, &address).unwrap().unwrap(),
            b"hello"
        );
        // The old root still reads as before (history).
        let old = state.tree(&root).unwrap().unwrap();
        assert_eq!(StateReader::get(&old, &address).unwrap(), None);
        // Deleting the leaf returns to the empty root.
        assert_eq!(
            state.apply(&new_root, [(address, None)]).unwrap(),
            EMPTY_ROOT
        );
    }

    #[test]
    fn list_is_sorted_and_paged() {
        let (_dir, state) = reader();
        let root = state.initialize().unwrap();
        let addrs: Vec<String> = (0u8..5)
            .rev()
            .map(|i| format!("ab{:02x}{}", i, "1".repeat(64)))
            .collect();
        let root = state
            .apply(
                &root,
                addrs
                    .iter()
                    .map(|a| (a.clone(), Some(a.as_bytes().to_vec()))),
            )
            .unwrap();
        let tree = state.tree(&root).unwrap().unwrap();
        let all = StateReader::list(&tree, "ab", None, 100).unwrap();
        let mut sorted = addrs.clone();
        sorted.sort();
        assert_eq!(
            all.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>(),
            sorted
        );
        let page = StateReader::list(&tree, "", Some(&sorted[2]), 2).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].0, sorted[2]);
        assert!(StateReader::list(&tree, "cd", None, 10).unwrap().is_empty());
        assert!(state.tree(&"f".repeat(64)).unwrap().is_none());
    }

    #[test]
    fn cbor_wrap_round_trips_every_length_class() {
        for len in [0usize, 5, 23, 24, 255, 256, 70_000] {
            let data = vec![7u8; len];
            let wrapped = wrap_value(&data);
            assert_eq!(unwrap_value(&wrapped).unwrap(), &data[..]);
        }
        assert_eq!(wrap_value(b""), vec![0x40]);
        assert!(unwrap_value(&[0x61, b'a']).is_err());
        assert!(unwrap_value(&[0x45, 1]).is_err());
    }
}
