//! The members a node may contact, and the upstream chains it accepts.
//!
//! A node contacts only registered members' endpoints. Upstream chains (of relays and pulls)
//! therefore name members by node id (a member's public key on the ledger), never by URL, and a
//! node resolves each id through its [`Registry`]: a view of `node id -> endpoint` taken from
//! the on-chain member registry ([`Registry::update_from_state`], which a member node calls
//! with every ledger state it reads, or [`Registry::follow`] for a server that only serves), or
//! given by the operator (`bcfl node serve --peer ID=URL`). An id the registry does not know is
//! refused before anything is contacted.
//!
//! The registry also says which keys a blob server serves ([`Registry::authorize`], used by
//! [`Authenticator`](super::auth::Authenticator)): the active members and the consortium's
//! admins of the last ledger state read, or with `--peer ID=URL` the given ids and any keys
//! allowed explicitly ([`Registry::allow_keys`]). A registry that follows the ledger
//! ([`Registry::follow`]) re-reads it when asked about a key it does not know, at most once
//! per [`MIN_REREAD_INTERVAL`], so a member registered since the last periodic refresh is
//! served at once and a flood of unknown keys costs the ledger one read a second.
//!
//! [`Registry::check_chain`] also refuses chains that could only waste a node's time: empty
//! ones, ones longer than [`MAX_CHAIN_DEPTH`], and ones that repeat a node or name the node
//! itself (a relay asked to fetch from itself would wait on its own transfer).
//!
//! ```
//! use bcfl_net::registry::{ChainError, Registry};
//! use bcfl_net::route::Peers;
//!
//! let registry = Registry::new(Some("me".into()));
//! registry.replace(Peers([("a".to_owned(), "http://127.0.0.1:7001".to_owned())].into()));
//! assert_eq!(registry.endpoint("a").as_deref(), Some("http://127.0.0.1:7001"));
//! registry.check_chain(&["a".to_owned()]).unwrap();
//! assert_eq!(
//!     registry.check_chain(&["a".to_owned(), "a".to_owned()]),
//!     Err(ChainError::Repeated("a".into()))
//! );
//! assert_eq!(registry.check_chain(&["b".to_owned()]), Err(ChainError::Unknown("b".into())));
//! ```

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::{BcflReader, FamilyState};

use super::probe::ledger_peers;
use super::route::Peers;

/// The most nodes an upstream chain may name: 16. Routes over the measured graph are far
/// shorter in any consortium this serves; a longer chain is refused rather than relayed.
pub const MAX_CHAIN_DEPTH: usize = 16;

/// The shortest time between two reads of the ledger for an unknown key: 1 s.
pub const MIN_REREAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why an upstream chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No node at all.
    #[error("the upstream chain is empty")]
    Empty,
    /// More nodes than [`MAX_CHAIN_DEPTH`].
    #[error("the upstream chain names {0} nodes, more than the limit of {MAX_CHAIN_DEPTH}")]
    TooDeep(usize),
    /// A node named twice (a loop).
    #[error("the upstream chain names {0} more than once")]
    Repeated(String),
    /// The node asked is in its own upstream chain (a loop).
    #[error("the upstream chain names this node ({0}) itself")]
    ContainsSelf(String),
    /// A node that is not a registered member with an endpoint.
    #[error("{0} is not a registered member with an endpoint")]
    Unknown(String),
}

#[derive(Debug, Default)]
struct View {
    me: Option<String>,
    peers: Peers,
    /// Keys served: the members and admins of the ledger state, or the static peers.
    authorized: BTreeSet<String>,
    /// Keys served whatever the ledger says (`--allow-key`).
    allowed: BTreeSet<String>,
}

/// Where a registry re-reads the member registry from, and when it last did.
#[derive(Debug)]
struct Source {
    ledger: RestClient,
    last_read: tokio::sync::Mutex<Option<Instant>>,
}

/// A shared, updatable view of `node id -> endpoint`; see the module docs. Clones share the
/// view.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    view: Arc<RwLock<View>>,
    source: Arc<RwLock<Option<Arc<Source>>>>,
}

impl Registry {
    /// An empty registry for the node `me` (its own id, when known: chains naming it are
    /// refused).
    pub fn new(me: Option<String>) -> Self {
        let registry = Self::default();
        registry.view.write().expect("registry").me = me;
        registry
    }

    /// A registry for `me` holding `peers`.
    pub fn with_peers(me: Option<String>, peers: Peers) -> Self {
        let registry = Self::new(me);
        registry.replace(peers);
        registry
    }

    /// Sets this node's own id.
    pub fn set_me(&self, me: impl Into<String>) {
        self.view.write().expect("registry").me = Some(me.into());
    }

    /// This node's own id, when known.
    pub fn me(&self) -> Option<String> {
        self.view.read().expect("registry").me.clone()
    }

    /// Replaces the known peers; their ids become the keys served.
    pub fn replace(&self, peers: Peers) {
        let authorized = peers.0.keys().cloned().collect();
        self.replace_with_keys(peers, authorized);
    }

    fn replace_with_keys(&self, mut peers: Peers, authorized: BTreeSet<String>) {
        for url in peers.0.values_mut() {
            let trimmed = url.trim_end_matches('/').len();
            url.truncate(trimmed);
        }
        let mut view = self.view.write().expect("registry");
        view.peers = peers;
        view.authorized = authorized;
    }

    /// Replaces the known peers with the active members of `state` and their endpoints; the
    /// keys served become the active members (with or without an endpoint) and the admins.
    pub fn update_from_state(&self, state: &FamilyState) {
        let mut authorized: BTreeSet<String> = state
            .members
            .values()
            .filter(|m| m.status == bcfl_protos::bcfl::MemberStatus::ACTIVE)
            .map(|m| m.public_key.clone())
            .collect();
        if let Some(consortium) = &state.consortium {
            authorized.extend(consortium.admin_keys.iter().cloned());
        }
        self.replace_with_keys(ledger_peers(state), authorized);
    }

    /// Serves these keys too, whatever the ledger or the static peers say.
    pub fn allow_keys(&self, keys: impl IntoIterator<Item = String>) {
        self.view.write().expect("registry").allowed.extend(keys);
    }

    /// Whether `key` is served now (without reading the ledger).
    pub fn is_authorized(&self, key: &str) -> bool {
        let view = self.view.read().expect("registry");
        view.authorized.contains(key) || view.allowed.contains(key)
    }

    /// Whether `key` is served; a key not known is looked up on the ledger first when this
    /// registry follows one and has not read it within [`MIN_REREAD_INTERVAL`].
    pub async fn authorize(&self, key: &str) -> bool {
        if self.is_authorized(key) {
            return true;
        }
        let Some(source) = self.source.read().expect("registry").clone() else {
            return false;
        };
        let mut last = source.last_read.lock().await;
        // Someone else may have re-read while this waited.
        if self.is_authorized(key) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REREAD_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        match BcflReader::new(source.ledger.clone())
            .family_state(None)
            .await
        {
            Ok(state) => {
                self.update_from_state(&state);
                tracing::debug!(%key, known = self.is_authorized(key), "re-read the member registry for an unknown key");
            }
            Err(e) => tracing::warn!(error = %e, "re-reading the member registry failed"),
        }
        self.is_authorized(key)
    }

    /// Re-reads the ledger at `ledger` for keys it does not know ([`Registry::authorize`]).
    pub fn set_source(&self, ledger: RestClient) {
        *self.source.write().expect("registry") = Some(Arc::new(Source {
            ledger,
            last_read: tokio::sync::Mutex::new(None),
        }));
    }

    /// A copy of the known peers.
    pub fn peers(&self) -> Peers {
        self.view.read().expect("registry").peers.clone()
    }

    /// The endpoint of `node`, when it is known.
    pub fn endpoint(&self, node: &str) -> Option<String> {
        self.view
            .read()
            .expect("registry")
            .peers
            .url(node)
            .map(str::to_owned)
    }

    /// Checks an upstream chain (nearest first): not empty, at most [`MAX_CHAIN_DEPTH`] nodes,
    /// no node twice, not this node, every node known.
    pub fn check_chain(&self, chain: &[String]) -> Result<(), ChainError> {
        if chain.is_empty() {
            return Err(ChainError::Empty);
        }
        if chain.len() > MAX_CHAIN_DEPTH {
            return Err(ChainError::TooDeep(chain.len()));
        }
        let view = self.view.read().expect("registry");
        let mut seen = BTreeSet::new();
        for node in chain {
            if view.me.as_deref() == Some(node.as_str()) {
                return Err(ChainError::ContainsSelf(node.clone()));
            }
            if !seen.insert(node.as_str()) {
                return Err(ChainError::Repeated(node.clone()));
            }
        }
        match chain.iter().find(|n| view.peers.url(n).is_none()) {
            Some(unknown) => Err(ChainError::Unknown(unknown.clone())),
            None => Ok(()),
        }
    }

    /// Keeps the registry equal to the ledger's active members, reading the family state every
    /// `every` (a failed read is logged and retried at the next tick), and re-reads it for
    /// unknown keys ([`Registry::set_source`]); ends when the task is aborted.
    pub fn follow(&self, ledger: RestClient, every: Duration) -> tokio::task::JoinHandle<()> {
        self.set_source(ledger.clone());
        let registry = self.clone();
        tokio::spawn(async move {
            let reader = BcflReader::new(ledger);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match reader.family_state(None).await {
                    Ok(state) => registry.update_from_state(&state),
                    Err(e) => tracing::warn!(error = %e, "reading the member registry failed"),
                }
            }
        })
    }
}
