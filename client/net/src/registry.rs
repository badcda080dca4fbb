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
use std::time::Duration;

use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::{BcflReader, FamilyState};

use super::probe::ledger_peers;
use super::route::Peers;

/// The most nodes an upstream chain may name: 16. Routes over the measured graph are far
/// shorter in any consortium this serves; a longer chain is refused rather than relayed.
pub const MAX_CHAIN_DEPTH: usize = 16;

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
}

/// A shared, updatable view of `node id -> endpoint`; see the module docs. Clones share the
/// view.
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<RwLock<View>>);

impl Registry {
    /// An empty registry for the node `me` (its own id, when known: chains naming it are
    /// refused).
    pub fn new(me: Option<String>) -> Self {
        Self(Arc::new(RwLock::new(View {
            me,
            peers: Peers::default(),
        })))
    }

    /// A registry for `me` holding `peers`.
    pub fn with_peers(me: Option<String>, peers: Peers) -> Self {
        let registry = Self::new(me);
        registry.replace(peers);
        registry
    }

    /// Sets this node's own id.
    pub fn set_me(&self, me: impl Into<String>) {
        self.0.write().expect("registry").me = Some(me.into());
    }

    /// This node's own id, when known.
    pub fn me(&self) -> Option<String> {
        self.0.read().expect("registry").me.clone()
    }

    /// Replaces the known peers.
    pub fn replace(&self, mut peers: Peers) {
        for url in peers.0.values_mut() {
            let trimmed = url.trim_end_matches('/').len();
            url.truncate(trimmed);
        }
        self.0.write().expect("registry").peers = peers;
    }

    /// Replaces the known peers with the active members of `state` and their endpoints.
    pub fn update_from_state(&self, state: &FamilyState) {
        self.replace(ledger_peers(state));
    }

    /// A copy of the known peers.
    pub fn peers(&self) -> Peers {
        self.0.read().expect("registry").peers.clone()
    }

    /// The endpoint of `node`, when it is known.
    pub fn endpoint(&self, node: &str) -> Option<String> {
        self.0
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
        let view = self.0.read().expect("registry");
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
    /// `every` (a failed read is logged and retried at the next tick); ends when the task is
    /// aborted.
    pub fn follow(&self, ledger: RestClient, every: Duration) -> tokio::task::JoinHandle<()> {
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
