//! Routed fetches and distribution over the measured bandwidth graph, with failover.
//!
//! Peers are named by node id (a member's public key on the ledger, or any name in an edge
//! list) and reached at base URLs ([`Peers`]). A route from a holder to a receiver
//! (`holder -> r1 -> ... -> receiver`) becomes the receiver's upstream chain of node ids
//! `[.., r1, holder]` (nearest first, see [`transfer`](super::transfer)), which every node on
//! it resolves through its own [`Registry`](super::registry::Registry).
//!
//! On a failure the peer blamed by the [`TransferFailure`] (else the nearest upstream peer) is
//! excluded, the routes are computed again on the graph without it, and the fetch is retried:
//! a dead relay is routed around, a holder that sent corrupt data is never asked again, and
//! nothing unverified is kept (the receiver's store only commits verified blobs).
//!
//! [`distribute`] pushes one blob from a source to every member along the tree of routes by
//! asking each member to pull (`POST /v1/pull`), all at once, reporting each completion.
//! [`distribute_with`] also runs the synchronous distribution ([`DistributionMode`]): one member
//! after another in tree order, relays first, so each pulls from a predecessor that already
//! holds the blob.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bcfl_processor::graph::{BandwidthGraph, Routing, TransferModel};
use serde::{Deserialize, Serialize};

use super::auth::PeerClient;
use super::error::{NetError, Result};
use super::manifest::BlobId;
use super::server::PullRequest;
use super::transfer::{FetchReport, TransferFailure, Transfers};

/// Node ids and the base URLs they serve at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers(pub BTreeMap<String, String>);

impl Peers {
    /// The base URL of `node`.
    pub fn url(&self, node: &str) -> Option<&str> {
        self.0.get(node).map(String::as_str)
    }

    /// The node serving at `url`.
    pub fn node_at(&self, url: &str) -> Option<&str> {
        let url = url.trim_end_matches('/');
        self.0
            .iter()
            .find(|(_, u)| u.trim_end_matches('/') == url)
            .map(|(n, _)| n.as_str())
    }

    /// The upstream chain (node ids, nearest first) for a receiver at the end of `path`.
    pub fn upstream_of(path: &[impl AsRef<str>]) -> Vec<String> {
        path.iter()
            .rev()
            .skip(1)
            .map(|n| n.as_ref().to_owned())
            .collect()
    }
}

/// How routes are chosen and how many times a failed fetch is re-routed.
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy {
    /// Shortest (store-and-forward latency) or widest (bottleneck) paths.
    pub routing: Routing,
    /// The transfer size and relay chunk size the routes are costed with.
    pub model: TransferModel,
    /// Fetch attempts before giving up.
    pub max_attempts: usize,
    /// The blob's size when it is known from the chain: a holder whose manifest declares
    /// another is refused before it sends a byte.
    pub expected_size: Option<u64>,
}

fn route(
    graph: &BandwidthGraph,
    policy: &RoutePolicy,
    holders: &[String],
    receiver: &str,
    excluded: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let removed: Vec<&String> = excluded.iter().filter(|n| graph.contains(n)).collect();
    let graph = graph.without_nodes(&removed)?;
    let mut best: Option<(f64, Vec<String>)> = None;
    for holder in holders
        .iter()
        .filter(|h| !excluded.contains(*h) && graph.contains(h))
    {
        let tree = match policy.routing {
            Routing::Shortest => graph.shortest_paths(holder, &policy.model)?,
            Routing::Widest => graph.widest_paths(holder, &policy.model)?,
        };
        let Some(path) = tree.path(receiver) else {
            continue;
        };
        let latency = tree.latency(receiver).unwrap_or(f64::INFINITY);
        if best.as_ref().is_none_or(|(l, _)| latency < *l) {
            best = Some((
                latency,
                path.iter().map(|n| n.as_str().to_owned()).collect(),
            ));
        }
    }
    best.map(|(_, path)| path).ok_or_else(|| NetError::NoRoute {
        destination: receiver.to_owned(),
        excluded: excluded.iter().cloned().collect(),
    })
}

/// The node to exclude after `failure` on a fetch along `upstream`.
fn blamed(failure: &TransferFailure, upstream: &[String]) -> Option<String> {
    failure
        .failed_peer
        .clone()
        .or_else(|| upstream.first().cloned())
}

/// One attempt of a routed fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The node path, holder first.
    pub path: Vec<String>,
    /// The error, for a failed attempt.
    pub error: Option<String>,
    /// The node excluded after it.
    pub excluded: Option<String>,
}

/// A completed routed fetch and the attempts it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedFetch {
    /// The successful fetch.
    pub report: FetchReport,
    /// Every attempt, the successful one last.
    pub attempts: Vec<Attempt>,
}

/// Fetches `id` into `receiver`'s store (through `transfers`, the receiver's own, whose
/// registry resolves the nodes of the routes) from the nearest of `holders`, re-routing around
/// failed peers.
pub async fn fetch_routed(
    transfers: &Arc<Transfers>,
    graph: &BandwidthGraph,
    policy: &RoutePolicy,
    id: &BlobId,
    holders: &[String],
    receiver: &str,
) -> Result<RoutedFetch> {
    let size = policy.expected_size;
    routed(graph, policy, holders, receiver, |upstream| {
        let transfers = transfers.clone();
        let id = id.clone();
        async move { transfers.fetch(&id, upstream, size).await }
    })
    .await
}

async fn routed<F, Fut>(
    graph: &BandwidthGraph,
    policy: &RoutePolicy,
    holders: &[String],
    receiver: &str,
    mut fetch: F,
) -> Result<RoutedFetch>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<FetchReport, TransferFailure>>,
{
    let mut excluded = BTreeSet::new();
    let mut attempts = Vec::new();
    let mut last_error = None;
    for _ in 0..policy.max_attempts.max(1) {
        let path = match route(graph, policy, holders, receiver, &excluded) {
            Ok(path) => path,
            Err(e) => {
                last_error = Some(e);
                break;
            }
        };
        let upstream = Peers::upstream_of(&path);
        match fetch(upstream.clone()).await {
            Ok(report) => {
                attempts.push(Attempt {
                    path,
                    error: None,
                    excluded: None,
                });
                return Ok(RoutedFetch { report, attempts });
            }
            Err(failure) => {
                let culprit = blamed(&failure, &upstream);
                // Handled here (the next route avoids the culprit): the final failure, if every
                // route fails, is the caller's to report.
                tracing::info!(%receiver, ?path, error = %failure.error, ?culprit, "fetch failed; re-routing");
                attempts.push(Attempt {
                    path,
                    error: Some(failure.error.clone()),
                    excluded: culprit.clone(),
                });
                last_error = Some(NetError::peer(
                    failure.failed_peer.clone().unwrap_or_default(),
                    &failure.error,
                ));
                match culprit {
                    Some(c) if c != receiver => {
                        excluded.insert(c);
                    }
                    _ => break,
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| NetError::NoRoute {
        destination: receiver.to_owned(),
        excluded: excluded.into_iter().collect(),
    }))
}

/// Like [`fetch_routed`], but the receiver is a running node asked to pull over HTTP
/// (`POST /v1/pull`), so any process can drive it.
pub async fn pull_routed(
    http: &PeerClient,
    graph: &BandwidthGraph,
    peers: &Peers,
    policy: &RoutePolicy,
    id: &BlobId,
    holders: &[String],
    receiver: &str,
) -> Result<RoutedFetch> {
    let url = peers
        .url(receiver)
        .ok_or_else(|| NetError::peer(receiver, "no endpoint known"))?
        .to_owned();
    let size = policy.expected_size;
    routed(graph, policy, holders, receiver, |upstream| {
        let (http, url, id) = (http.clone(), url.clone(), id.clone());
        async move { pull(&http, receiver, &url, &id, upstream, size).await }
    })
    .await
}

/// Asks `node`, serving at `url`, to pull `id` along `upstream` (node ids, nearest first;
/// `size` when known) and waits for its answer. A failure the node explains
/// ([`TransferFailure`]) is passed on; any other answer becomes its status and the node's
/// short error text (at most 200 characters), blaming `node`.
pub async fn pull(
    http: &PeerClient,
    node: &str,
    url: &str,
    id: &BlobId,
    upstream: Vec<String>,
    size: Option<u64>,
) -> std::result::Result<FetchReport, TransferFailure> {
    let request = PullRequest {
        sha256: id.clone(),
        upstream,
        size,
    };
    let url = url.trim_end_matches('/');
    let unreachable = |e: String| TransferFailure {
        error: e,
        failed_peer: Some(node.to_owned()),
        integrity: false,
    };
    let response = http
        .post_json(node, &format!("{url}/v1/pull"), &request)
        .send()
        .await
        .map_err(|e| unreachable(format!("{url}: {}", e.without_url())))?;
    let status = response.status();
    let text = response
        .bytes()
        .await
        .map_err(|e| unreachable(format!("{url}: {}", e.without_url())))?;
    if status.is_success() {
        serde_json::from_slice(&text).map_err(|e| unreachable(format!("{url}: bad answer: {e}")))
    } else {
        Err(serde_json::from_slice(&text).unwrap_or_else(|_| {
            let reason: String = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(|e| e.chars().take(200).collect()))
                .unwrap_or_default();
            unreachable(
                format!("{url}: HTTP {status} {reason}")
                    .trim_end()
                    .to_owned(),
            )
        }))
    }
}

/// How a distribution runs its transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DistributionMode {
    /// One member after another, in tree order (parents first, so each pulls from a relay that
    /// already holds the blob): the seed paper's synchronous distribution.
    #[cfg_attr(feature = "clap", value(name = "sync"))]
    Synchronous,
    /// Every member at once; relays forward while they receive.
    #[default]
    #[cfg_attr(feature = "clap", value(name = "async"))]
    Asynchronous,
}

impl DistributionMode {
    /// `synchronous` or `asynchronous`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synchronous => "synchronous",
            Self::Asynchronous => "asynchronous",
        }
    }
}

/// One member's outcome in a distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The member.
    pub node: String,
    /// Seconds from the start of the distribution to the member's verified copy.
    pub seconds: Option<f64>,
    /// Seconds of this member's own transfer (from its pull request to its verified copy).
    #[serde(default)]
    pub transfer_seconds: Option<f64>,
    /// The path it finally came along, source first.
    pub path: Vec<String>,
    /// Attempts it took.
    pub attempts: usize,
    /// The last error, when it never arrived.
    pub error: Option<String>,
}

/// The result of [`distribute`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// The blob.
    pub sha256: BlobId,
    /// The source.
    pub source: String,
    /// How the transfers ran.
    #[serde(default)]
    pub mode: DistributionMode,
    /// Seconds until the last member had it (asynchronous: the slowest member; synchronous:
    /// the sum of the transfers one after another).
    pub seconds: f64,
    /// Every destination, sorted by node.
    pub deliveries: Vec<Delivery>,
}

/// One member's pull along its route, timed from `started` (the distribution's start).
async fn deliver(
    http: PeerClient,
    route: (BandwidthGraph, Peers, RoutePolicy),
    id: BlobId,
    source: String,
    node: String,
    started: Instant,
) -> Delivery {
    let (graph, peers, policy) = route;
    let own = Instant::now();
    let outcome = pull_routed(&http, &graph, &peers, &policy, &id, &[source], &node).await;
    let (elapsed, transfer) = (started.elapsed().as_secs_f64(), own.elapsed().as_secs_f64());
    match outcome {
        Ok(done) => Delivery {
            node,
            seconds: Some(elapsed),
            transfer_seconds: Some(transfer),
            path: done
                .attempts
                .last()
                .map(|a| a.path.clone())
                .unwrap_or_default(),
            attempts: done.attempts.len(),
            error: None,
        },
        Err(e) => Delivery {
            node,
            seconds: None,
            transfer_seconds: None,
            path: Vec::new(),
            attempts: policy.max_attempts,
            error: Some(e.to_string()),
        },
    }
}

/// The destinations in tree order: by hops from the source, then route latency, then id (so
/// a relay comes before the members it feeds); nodes the tree does not reach come last.
fn tree_order(
    graph: &BandwidthGraph,
    peers: &Peers,
    policy: &RoutePolicy,
    source: &str,
) -> Result<Vec<String>> {
    let tree = graph.route(source, policy.routing, &policy.model)?;
    let mut keyed: Vec<(usize, f64, String)> = peers
        .0
        .keys()
        .filter(|n| n.as_str() != source)
        .map(|n| {
            let hops = tree.path(n).map_or(usize::MAX, |p| p.len());
            let latency = tree.latency(n).unwrap_or(f64::INFINITY);
            (hops, latency, n.clone())
        })
        .collect();
    keyed.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    Ok(keyed.into_iter().map(|(_, _, n)| n).collect())
}

/// Distributes `id` from `source` to every other node of `peers` along the route tree, all
/// members pulling at once; `progress` is called as each member completes or fails.
pub async fn distribute(
    http: &PeerClient,
    graph: &BandwidthGraph,
    peers: &Peers,
    policy: &RoutePolicy,
    id: &BlobId,
    source: &str,
    progress: impl FnMut(&Delivery),
) -> Result<Distribution> {
    distribute_with(
        DistributionMode::Asynchronous,
        http,
        graph,
        peers,
        policy,
        id,
        source,
        progress,
    )
    .await
}

/// Distributes `id` from `source` to every other node of `peers` along the route tree, in
/// `mode`: all at once, or one after another in tree order ([`DistributionMode`]); `progress`
/// is called as each member completes or fails.
#[allow(clippy::too_many_arguments)]
pub async fn distribute_with(
    mode: DistributionMode,
    http: &PeerClient,
    graph: &BandwidthGraph,
    peers: &Peers,
    policy: &RoutePolicy,
    id: &BlobId,
    source: &str,
    mut progress: impl FnMut(&Delivery),
) -> Result<Distribution> {
    let started = Instant::now();
    let route = (graph.clone(), peers.clone(), *policy);
    let mut deliveries = Vec::new();
    match mode {
        DistributionMode::Synchronous => {
            for node in tree_order(graph, peers, policy, source)? {
                let delivery = deliver(
                    http.clone(),
                    route.clone(),
                    id.clone(),
                    source.to_owned(),
                    node,
                    started,
                )
                .await;
                progress(&delivery);
                deliveries.push(delivery);
            }
        }
        DistributionMode::Asynchronous => {
            let mut tasks = tokio::task::JoinSet::new();
            for node in peers.0.keys().filter(|n| n.as_str() != source) {
                tasks.spawn(deliver(
                    http.clone(),
                    route.clone(),
                    id.clone(),
                    source.to_owned(),
                    node.clone(),
                    started,
                ));
            }
            while let Some(joined) = tasks.join_next().await {
                let delivery = joined.map_err(|e| NetError::peer(source, format!("task: {e}")))?;
                progress(&delivery);
                deliveries.push(delivery);
            }
        }
    }
    deliveries.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(Distribution {
        sha256: id.clone(),
        source: source.to_owned(),
        mode,
        seconds: started.elapsed().as_secs_f64(),
        deliveries,
    })
}
