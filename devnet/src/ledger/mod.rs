//! The ledger core: storage, validation, the component endpoint and the block publisher.
//!
//! [`Devnet::start`] opens (or creates) the data dir, writes the genesis block on first start,
//! binds the component endpoint and runs the component loop on its own thread. The returned
//! handle gives a [`LedgerView`] for the REST API or for embedding.
//!
//! ```no_run
//! use bcfl_devnet::ledger::{Devnet, DevnetConfig};
//! let devnet = Devnet::start(DevnetConfig {
//!     data_dir: "/tmp/devnet".into(),
//!     component_endpoint: "tcp://127.0.0.1:0".into(),
//!     ..DevnetConfig::default()
//! })?;
//! println!("processors connect to {}", devnet.component_endpoint());
//! let ledger = devnet.ledger();
//! assert_eq!(ledger.chain_head().is_some(), true);
//! devnet.shutdown();
//! # Ok::<(), bcfl_devnet::ledger::LedgerError>(())
//! ```
//!
//! Modules: [`state`] (Merkle-Radix state), [`store`] (blocks, batches, receipts), [`validate`]
//! (submission checks), [`settings`] (the on-chain transaction-family allow-list), [`queue`]
//! (pending/held/invalid batches, with a per-signer share), [`registry`] (processors),
//! [`publisher`] (block building), [`committer`] (sealing and durable commits, pipelined with
//! execution), [`engine`] and `handlers` (the ZMQ loop), [`keys`].

pub mod committer;
mod context;
pub mod engine;
pub mod error;
mod handlers;
pub mod keys;
pub mod publisher;
#[cfg(test)]
mod publisher_tests;
pub mod queue;
pub mod registry;
pub mod settings;
pub mod state;
pub mod store;
pub mod validate;
mod view_impl;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::block::{Block, BlockHeader};

use crate::view::{CommitNotice, LedgerView};

pub use error::{LedgerError, Result};
pub use view_impl::Ledger;

use engine::{Engine, EngineSettings, Waker};
use keys::ValidatorKey;
use queue::BatchPool;
use settings::FamilyAllowList;
use state::{NodeDatabase, StateReader};
use store::BlockStore;

/// A random uuid4 as 32 lowercase hex (Python's `uuid4().hex`), for context and correlation
/// ids; drawn from the thread-local RNG, not a syscall per id.
pub fn uuid4_hex() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .to_string()
}

/// Genesis `previous_block_id` (16 zeros).
pub const NULL_BLOCK_ID: &str = "0000000000000000";

/// Devnet settings.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Where the ledger file and validator key live.
    pub data_dir: PathBuf,
    /// ZMQ endpoint processors connect to (port 0 picks a free port).
    pub component_endpoint: String,
    /// Minimum time between the starts of two blocks under load. An idle devnet (the last block
    /// left nothing pending) starts a block as soon as a batch arrives; otherwise a block starts
    /// at most this often and takes everything pending, or at once when
    /// `max_batches_per_block` (100 if unlimited) batches are waiting. So a lone client sees a
    /// few milliseconds from submit to commit, while concurrent batches are grouped into few
    /// blocks (one fsync each).
    pub block_interval: Duration,
    /// Maximum batches per block (0: unlimited).
    pub max_batches_per_block: usize,
    /// Maximum pending (and held) batches before submissions get `QueueFull`.
    pub max_pending_batches: usize,
    /// Maximum pending (and held) batches of one batch signer: beyond it that signer's
    /// submissions get `QueueFull` while other signers are still served, so one key flooding
    /// batches (say of a family nobody processes, which never leave the queue) cannot lock
    /// everyone else out.
    pub max_pending_per_signer: usize,
    /// `sawtooth.validator.transaction_families` written into the genesis state of a new chain
    /// (a JSON list, see [`settings`]); `None` writes nothing, which allows every family. An
    /// existing chain keeps its on-chain value (only a settings transaction changes it).
    pub transaction_families: Option<String>,
    /// Retries of a transaction after INTERNAL_ERROR (or timeout, or disconnect) before its
    /// batch is declared invalid.
    pub max_internal_retries: u32,
    /// How long a processor may take to answer a `TpProcessRequest`.
    pub processor_timeout: Duration,
    /// Transactions executing at once: a transaction is sent to a processor before earlier
    /// ones finished only when their declared addresses do not conflict, so the results are
    /// those of serial execution (see [`publisher`]); 1 executes strictly one at a time.
    pub max_inflight_txns: usize,
    /// The network endpoint reported by `/status` (devnet has no peers).
    pub network_endpoint: String,
    /// Page cache of the store, bytes (redb's own default is 1 GiB, which a ten-minute soak
    /// filled: the process then held 1.1 GB).
    pub cache_bytes: usize,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./devnet-data"),
            component_endpoint: "tcp://127.0.0.1:4004".into(),
            block_interval: Duration::from_millis(20),
            max_batches_per_block: 0,
            max_pending_batches: 10_000,
            max_pending_per_signer: 1_000,
            transaction_families: None,
            max_internal_retries: 3,
            processor_timeout: Duration::from_secs(60),
            max_inflight_txns: 8,
            network_endpoint: "tcp://127.0.0.1:8800".into(),
            cache_bytes: 64 << 20,
        }
    }
}

/// The current chain head.
#[derive(Clone)]
pub struct HeadInfo {
    /// Block id.
    pub id: String,
    /// Block number.
    pub num: u64,
    /// State root after the block.
    pub state_root: String,
    /// The block itself.
    pub block: Arc<Block>,
}

/// State shared by the component loop and the [`Ledger`] view.
pub struct Shared {
    store: BlockStore,
    state: StateReader,
    pool: BatchPool,
    key: ValidatorKey,
    head: RwLock<HeadInfo>,
    /// The transaction-family allow-list and the state root it was read at.
    families: RwLock<(String, Arc<FamilyAllowList>)>,
    status: tokio::sync::watch::Sender<u64>,
    commits: tokio::sync::broadcast::Sender<CommitNotice>,
    waker: Waker,
    shutdown: AtomicBool,
    component_endpoint: String,
    network_endpoint: String,
}

impl Shared {
    fn head_info(&self) -> HeadInfo {
        self.head.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_head(&self, block: Block, state_root: String) {
        let num = self.head_info().num + 1;
        let info = HeadInfo {
            id: block.get_header_signature().to_string(),
            num,
            state_root,
            block: Arc::new(block),
        };
        *self.head.write().unwrap_or_else(|p| p.into_inner()) = info;
    }

    /// The transaction-family allow-list of the head state.
    fn allow_list(&self) -> Arc<FamilyAllowList> {
        let root = self.head_info().state_root;
        {
            let cached = self.families.read().unwrap_or_else(|p| p.into_inner());
            if cached.0 == root {
                return Arc::clone(&cached.1);
            }
        }
        let list = Arc::new(settings::allow_list_from(
            self.store
                .head_value(&settings::setting_address(settings::TRANSACTION_FAMILIES))
                .unwrap_or_else(|err| {
                    tracing::error!(%err, "reading the allow-list failed; reading it as absent");
                    None
                }),
        ));
        *self.families.write().unwrap_or_else(|p| p.into_inner()) = (root, Arc::clone(&list));
        list
    }

    fn bump_status(&self) {
        self.status.send_modify(|n| *n += 1);
    }
}

/// A running devnet (see the module docs). Dropping it shuts it down.
pub struct Devnet {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn head_from_block(block: Block) -> Result<HeadInfo> {
    let header = BlockHeader::parse_from_bytes(block.get_header())?;
    Ok(HeadInfo {
        id: block.get_header_signature().to_string(),
        num: header.get_block_num(),
        state_root: header.get_state_root_hash().to_string(),
        block: Arc::new(block),
    })
}

/// Loads the head, or writes genesis into an empty store; `genesis_settings` (key, value) are
/// written into the genesis state, as a validator's genesis batch of settings transactions
/// would.
fn load_or_create_head(
    store: &BlockStore,
    state: &StateReader,
    key: &ValidatorKey,
    genesis_settings: &[(&str, &str)],
) -> Result<HeadInfo> {
    if let Some(num) = store.head_num()? {
        let block = store
            .block_by_num(num)?
            .ok_or_else(|| LedgerError::Corrupt(format!("head block {num} is missing")))?;
        let head = head_from_block(block)?;
        if state.tree(&head.state_root)?.is_none() {
            return Err(LedgerError::Corrupt(format!(
                "head state root {} is missing",
                head.state_root
            )));
        }
        return Ok(head);
    }
    let empty = state.initialize()?;
    let writes: Vec<(String, Option<Vec<u8>>)> = genesis_settings
        .iter()
        .map(|(k, v)| {
            (
                settings::setting_address(k),
                Some(settings::encode_setting(k, v)),
            )
        })
        .collect();
    let root = if writes.is_empty() {
        empty
    } else {
        state.apply(&empty, writes.clone())?
    };
    let changes: Vec<_> = writes
        .into_iter()
        .map(|(address, value)| publisher::state_change(address, value))
        .collect();
    let mut header = BlockHeader::new();
    header.set_block_num(0);
    header.set_previous_block_id(NULL_BLOCK_ID.into());
    header.set_signer_public_key(key.public_key().to_string());
    header.set_batch_ids(RepeatedField::new());
    header.set_consensus(b"Genesis".to_vec());
    header.set_state_root_hash(root);
    let bytes = header.write_to_bytes()?;
    let mut block = Block::new();
    block.set_header_signature(key.sign(&bytes));
    block.set_header(bytes);
    store.commit_block(&block, &[], &changes)?;
    tracing::info!(block_id = %block.get_header_signature(), settings = genesis_settings.len(), "genesis block written");
    head_from_block(block)
}

impl Devnet {
    /// Opens the data dir, writes genesis if needed, binds the component endpoint and starts
    /// the component loop.
    pub fn start(config: DevnetConfig) -> Result<Self> {
        if config.max_pending_batches == 0 || config.max_pending_per_signer == 0 {
            return Err(LedgerError::Config(
                "max_pending_batches and max_pending_per_signer must be at least 1".into(),
            ));
        }
        let mut genesis_settings = Vec::new();
        if let Some(families) = &config.transaction_families {
            let valid = serde_json::from_str::<serde_json::Value>(families)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|list| {
                    list.iter()
                        .all(|e| e.get("family").is_some_and(|f| f.is_string()))
                });
            if !valid {
                return Err(LedgerError::Config(format!(
                    "transaction_families must be a JSON list of {{\"family\", \"version\"}} \
                     objects, not {families}"
                )));
            }
            genesis_settings.push((settings::TRANSACTION_FAMILIES, families.as_str()));
        }
        std::fs::create_dir_all(&config.data_dir)?;
        let key = ValidatorKey::load_or_create(&config.data_dir.join("validator.priv"))?;
        let db = Arc::new(
            redb::Builder::new()
                .set_cache_size(config.cache_bytes)
                .create(config.data_dir.join("ledger.redb"))?,
        );
        let state = StateReader::new(NodeDatabase::new(Arc::clone(&db))?);
        let store = BlockStore::new(db)?;
        let head = load_or_create_head(&store, &state, &key, &genesis_settings)?;
        if let Some(wanted) = &config.transaction_families {
            let on_chain = store
                .head_value(&settings::setting_address(settings::TRANSACTION_FAMILIES))?
                .and_then(|v| settings::decode_setting(&v, settings::TRANSACTION_FAMILIES));
            if on_chain.as_deref() != Some(wanted.as_str()) {
                tracing::warn!(
                    ?on_chain,
                    %wanted,
                    "the chain exists: transaction_families applies only to a new chain's genesis; \
                     the on-chain value stays"
                );
            }
        }
        let settings = EngineSettings {
            block_interval: config.block_interval,
            max_batches_per_block: config.max_batches_per_block,
            publish_threshold: if config.max_batches_per_block > 0 {
                config.max_batches_per_block
            } else {
                100
            },
            max_retries: config.max_internal_retries,
            processor_timeout: config.processor_timeout,
            max_inflight: config.max_inflight_txns,
        };
        let pool = BatchPool::new(config.max_pending_batches, config.max_pending_per_signer);
        let network_endpoint = config.network_endpoint.clone();
        let (engine, shared) = Engine::bind(
            &config.component_endpoint,
            move |waker, bound| {
                Arc::new(Shared {
                    store,
                    state,
                    pool,
                    key,
                    families: RwLock::new((String::new(), Arc::default())),
                    head: RwLock::new(head),
                    status: tokio::sync::watch::channel(0).0,
                    commits: tokio::sync::broadcast::channel(1024).0,
                    waker,
                    shutdown: AtomicBool::new(false),
                    component_endpoint: bound,
                    network_endpoint,
                })
            },
            settings,
        )?;
        let thread = std::thread::Builder::new()
            .name("devnet-component".into())
            .spawn(move || engine.run())?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The ledger as the REST API sees it.
    pub fn ledger(&self) -> Arc<dyn LedgerView> {
        Arc::new(Ledger::new(Arc::clone(&self.shared)))
    }

    /// The bound component endpoint (with the real port).
    pub fn component_endpoint(&self) -> &str {
        &self.shared.component_endpoint
    }

    /// The validator public key that signs blocks (66 hex).
    pub fn validator_public_key(&self) -> &str {
        self.shared.key.public_key()
    }

    /// Full consistency check of the stored chain head: its block and state root exist, and the
    /// flat head-state table equals the Merkle leaves under the head's state root. Costs a walk
    /// of the whole state; meant for tests and diagnostics.
    pub fn check_consistency(&self) -> Result<()> {
        let head = self.shared.head_info();
        let tree = self.shared.state.tree(&head.state_root)?.ok_or_else(|| {
            LedgerError::Corrupt(format!("head state root {} is missing", head.state_root))
        })?;
        let leaves = StateReader::list(&tree, "", None, usize::MAX)?;
        if leaves != self.shared.store.head_state_entries()? {
            return Err(LedgerError::Corrupt(
                "the head-state table disagrees with the Merkle state".into(),
            ));
        }
        if self.shared.store.block_num_of(&head.id)? != Some(head.num) {
            return Err(LedgerError::Corrupt(format!(
                "head block {} is not indexed",
                head.id
            )));
        }
        Ok(())
    }

    /// Stops the component loop and waits for it. Every committed block is already durable;
    /// pending batches are dropped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.waker.wake();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the component loop panicked");
            }
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid4_hex_has_the_python_shape() {
        let a = super::uuid4_hex();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(&a[12..13], "4");
        assert_ne!(a, super::uuid4_hex());
    }
}
