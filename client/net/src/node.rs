//! What `bcfl node serve|probe|fetch|distribute` run: a member's blob server, peer probes, and
//! routed fetches and distributions, from plain requests (the command line that builds them is
//! in `bcfl-cli`).
//!
//! - [`serve`]: the HTTP server of [`server`](super::server) over a blob store directory (HTTPS
//!   with [`ServeConfig::tls`]); it reports its address and blobs once bound ([`ServeConfig`]),
//!   then serves until the given shutdown future completes. It relays and pulls only from the members of its
//!   [`Registry`]: the ledger's active members and their endpoints, read every
//!   `registry_refresh`, or exactly the given peers.
//! - [`probe`]: measures every peer ([`probe`](super::probe)) and, with a [`SweepReport`],
//!   reports the sweep on chain as one `ReportBandwidth`.
//! - [`fetch`]: asks a node to pull a blob from the nearest holder along the routed path, with
//!   failover ([`pull_routed`]).
//! - [`distribute`]: pushes a blob from a source to every peer along the route tree, all at
//!   once or one after another in tree order, reporting each delivery as it completes and the
//!   measured against the predicted times: the seed paper's synchronous and asynchronous totals
//!   and the contention-aware prediction
//!   ([`RouteTree::contended`](bcfl_processor::graph::RouteTree::contended)).
//!
//! `bcfl node run`, a long-running member and/or coordinator, trains: it is
//! `bcfl_client::round::node`, run by the `bcfl-train` binary.
//!
//! With a round ([`TopologySpec::round`]), `fetch` and `distribute` remove the members that
//! round's on-chain verdict excluded from the peers and the graph ([`RoundExclusion`]) and say
//! so ([`NodeEvent::Excluded`] and the `excluded_by_verdict` field).
//!
//! Every request these functions make to a blob server is signed by the [`PeerClient`] they are
//! given ([`auth`](super::auth)); servers answer only active members and admins.
//!
//! Peers come from the request or, without any, from the ledger's active members and their
//! endpoints; the graph from an edge list (CSV `from,to,bytes_per_sec`) or, without one, from
//! the ledger's links (median of the last `window` samples).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bcfl_processor::graph::{BandwidthGraph, DistributionTotals, Routing, Sharing, TransferModel};
use serde_json::json;

use super::auth::{Authenticator, PeerClient};
use super::blob::BlobStore;
use super::exclusion::RoundExclusion;
use super::manifest::{BlobId, Manifest};
use super::plan::read_graph;
use super::probe::{ledger_peers, submit_sweep, sweep, ProbeConfig};
use super::registry::Registry;
use super::route::{distribute_with, pull_routed, Delivery, DistributionMode, Peers, RoutePolicy};
use super::server::NodeServer;
use super::transfer::{http_client, Transfers};
use crate::{NetError, Result};
use bcfl_ledger::keys::Signer;
use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::{BcflReader, FamilyState};

/// What [`serve`] serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Blob store directory.
    pub store: PathBuf,
    /// Files to add to the store before serving.
    pub add: Vec<PathBuf>,
    /// Chunk size of manifests (and so of relays' verification), bytes.
    pub chunk_size: u64,
    /// Largest probe served, bytes.
    pub max_probe_bytes: u64,
    /// Largest blob received when the asker gives no size, bytes.
    pub max_blob_size: u64,
    /// The peers this server may relay and pull from; `None`: the ledger's active members and
    /// their registered endpoints, followed.
    pub peers: Option<Peers>,
    /// This node's own id (its member key), refused in upstream chains.
    pub me: Option<String>,
    /// Time between reads of the ledger's member registry (without `peers`).
    pub registry_refresh: Duration,
    /// Keys served besides the registered members (an operator's key with `peers`).
    pub allow_keys: Vec<String>,
    /// Largest difference between a signed request's timestamp and this clock.
    pub max_clock_skew: Duration,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// What [`probe`] measures and where it reports.
pub struct ProbeRequest {
    /// The peers; `None`: the ledger's active members.
    pub peers: Option<Peers>,
    /// This member's id, skipped in the sweep.
    pub me: String,
    /// Probe sizes.
    pub config: ProbeConfig,
    /// Report the sweep on chain.
    pub report: Option<SweepReport>,
}

/// How [`probe`] reports its sweep on chain: one `ReportBandwidth` transaction.
pub struct SweepReport {
    /// The reporting member's key.
    pub signer: Signer,
    /// The sweep's epoch; `None`: the consortium's current round.
    pub epoch: Option<u64>,
    /// How long to wait for the report to commit.
    pub wait: Duration,
}

/// Where peers and the bandwidth graph come from, and how routes are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologySpec {
    /// The peers; `None`: the ledger's active members.
    pub peers: Option<Peers>,
    /// A CSV edge list `from,to,bytes_per_sec`; `None`: the ledger's measured links.
    pub bandwidth: Option<PathBuf>,
    /// Ledger links: the median of this many newest samples per link.
    pub window: usize,
    /// How routes are chosen.
    pub routing: Routing,
    /// Fetch attempts per receiver before giving up.
    pub attempts: usize,
    /// Route for this round: leave out the members its on-chain anomaly verdict excluded.
    pub round: Option<u64>,
}

/// What [`fetch`] fetches.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchRequest {
    /// The blob.
    pub blob: BlobId,
    /// The receiving node.
    pub to: String,
    /// Nodes holding the blob (at least one).
    pub holders: Vec<String>,
    /// Peers, graph and routing.
    pub topology: TopologySpec,
}

/// What [`distribute`] distributes.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributeRequest {
    /// The blob.
    pub blob: BlobId,
    /// The node holding it.
    pub source: String,
    /// All members at once or one after another in tree order.
    pub mode: DistributionMode,
    /// Peers, graph and routing.
    pub topology: TopologySpec,
    /// How the contention-aware prediction shares capacity.
    pub sharing: Sharing,
}

/// What [`fetch`] and [`distribute`] report while they run.
#[derive(Debug)]
pub enum NodeEvent<'a> {
    /// The round's verdict removed these members from the peers and the graph.
    Excluded(&'a RoundExclusion),
    /// A member received the blob, or gave up.
    Delivered(&'a Delivery),
}

/// The outcome of [`distribute`].
#[derive(Debug, Clone, PartialEq)]
pub struct Distributed {
    /// The report: the blob, the mode, the measured deliveries and the predictions.
    pub report: serde_json::Value,
    /// Members that did not receive the blob.
    pub failed: usize,
}

async fn ledger_state(ledger: &RestClient) -> Result<FamilyState> {
    BcflReader::new(ledger.clone())
        .family_state(None)
        .await
        .map_err(NetError::FamilyState)
}

/// The peers and graph to route over, without the members the round's verdict excluded.
struct Topology {
    peers: Peers,
    graph: BandwidthGraph,
    exclusion: Option<RoundExclusion>,
}

async fn topology(spec: &TopologySpec, ledger: &RestClient) -> Result<Topology> {
    let state = if spec.peers.is_none() || spec.bandwidth.is_none() || spec.round.is_some() {
        Some(ledger_state(ledger).await?)
    } else {
        None
    };
    let peers = match (&spec.peers, &state) {
        (Some(peers), _) => peers.clone(),
        (None, Some(state)) => ledger_peers(state),
        (None, None) => unreachable!("the state is read when no peers are given"),
    };
    let graph = match (&spec.bandwidth, &state) {
        (Some(path), _) => read_graph(path)?,
        (None, Some(state)) => {
            BandwidthGraph::from_ledger_links(state.links.values(), spec.window)?
        }
        (None, None) => unreachable!("the state is read when no edge list is given"),
    };
    let exclusion = match (spec.round, &state) {
        (Some(round), Some(state)) => Some(RoundExclusion::from_state(state, round)?),
        _ => None,
    };
    Ok(match exclusion {
        Some(exclusion) => Topology {
            peers: exclusion.peers(&peers),
            graph: exclusion.graph(&graph)?,
            exclusion: Some(exclusion),
        },
        None => Topology {
            peers,
            graph,
            exclusion: None,
        },
    })
}

fn excluded(node: String, exclusion: &RoundExclusion) -> NetError {
    NetError::Excluded {
        node,
        verdict: exclusion.describe(),
    }
}

async fn remote_manifest(
    http: &PeerClient,
    peers: &Peers,
    holder: &str,
    id: &BlobId,
) -> Result<Manifest> {
    let url = peers
        .url(holder)
        .ok_or_else(|| NetError::NoEndpoint(holder.to_owned()))?;
    let response = http
        .get(holder, &format!("{url}/v1/blobs/{id}/manifest"))
        .send()
        .await
        .map_err(|source| NetError::Http {
            what: format!("asking {holder} for the manifest of {id}"),
            source,
        })?;
    if !response.status().is_success() {
        return Err(NetError::NotServed {
            holder: holder.to_owned(),
            blob: id.to_string(),
            status: response.status(),
        });
    }
    let manifest: Manifest = response.json().await.map_err(|source| NetError::Http {
        what: "decoding the manifest".to_owned(),
        source,
    })?;
    manifest.validate(id)?;
    Ok(manifest)
}

fn policy(spec: &TopologySpec, manifest: &Manifest) -> Result<RoutePolicy> {
    Ok(RoutePolicy {
        routing: spec.routing,
        model: TransferModel::new(manifest.size.max(1) as f64, manifest.chunk_size as f64)?,
        max_attempts: spec.attempts,
        expected_size: Some(manifest.size),
    })
}

/// Measures every peer and, with [`ProbeRequest::report`], reports the sweep on chain; returns
/// `{"from", "links", "failed"}`, with `epoch` and `batches` when reported.
pub async fn probe(
    request: ProbeRequest,
    ledger: &RestClient,
    http: &PeerClient,
) -> Result<serde_json::Value> {
    let peers = match request.peers {
        Some(peers) => peers,
        None => ledger_peers(&ledger_state(ledger).await?),
    };
    let me = request.me;
    let result = sweep(http, &peers, &me, &request.config).await;
    let mut out = json!({ "from": me, "links": result.links, "failed": result.failed });
    if let Some(report) = request.report {
        let epoch = match report.epoch {
            Some(e) => e,
            None => ledger_state(ledger)
                .await?
                .consortium
                .map_or(0, |c| c.current_round),
        };
        let statuses = submit_sweep(
            ledger,
            &report.signer,
            epoch,
            &result.links,
            Some(report.wait),
        )
        .await?;
        out["epoch"] = json!(epoch);
        out["batches"] = json!(statuses.iter().map(|s| &s.id).collect::<Vec<_>>());
    }
    Ok(out)
}

/// Asks `request.to` to pull the blob from the nearest holder along its routed path, with
/// failover; returns the routed fetch with `excluded_by_verdict`.
pub async fn fetch(
    request: &FetchRequest,
    ledger: &RestClient,
    http: &PeerClient,
    mut events: impl FnMut(NodeEvent<'_>),
) -> Result<serde_json::Value> {
    let id = &request.blob;
    let Topology {
        peers,
        graph,
        exclusion,
    } = topology(&request.topology, ledger).await?;
    let mut holders = request.holders.clone();
    if let Some(exclusion) = &exclusion {
        events(NodeEvent::Excluded(exclusion));
        if exclusion.excludes(&request.to) {
            return Err(excluded(request.to.clone(), exclusion));
        }
        holders.retain(|h| !exclusion.excludes(h));
        if holders.is_empty() {
            return Err(excluded("every holder".to_owned(), exclusion));
        }
    }
    let holder = holders
        .first()
        .ok_or_else(|| NetError::NoEndpoint("any holder".to_owned()))?;
    let manifest = remote_manifest(http, &peers, holder, id).await?;
    let policy = policy(&request.topology, &manifest)?;
    let done = pull_routed(http, &graph, &peers, &policy, id, &holders, &request.to).await?;
    let mut out = serde_json::to_value(&done)?;
    out["excluded_by_verdict"] = json!(exclusion);
    Ok(out)
}

/// Distributes the blob from `request.source` to every peer along the route tree, reporting
/// each delivery as it completes; returns the measured against the predicted times.
pub async fn distribute(
    request: &DistributeRequest,
    ledger: &RestClient,
    http: &PeerClient,
    mut events: impl FnMut(NodeEvent<'_>),
) -> Result<Distributed> {
    let id = &request.blob;
    let Topology {
        peers,
        graph,
        exclusion,
    } = topology(&request.topology, ledger).await?;
    if let Some(exclusion) = &exclusion {
        events(NodeEvent::Excluded(exclusion));
        if exclusion.excludes(&request.source) {
            return Err(excluded(
                format!("the source {}", request.source),
                exclusion,
            ));
        }
    }
    let manifest = remote_manifest(http, &peers, &request.source, id).await?;
    let policy = policy(&request.topology, &manifest)?;
    let predicted = predict(&graph, &policy, &request.source, &request.sharing)?;
    let result = distribute_with(
        request.mode,
        http,
        &graph,
        &peers,
        &policy,
        id,
        &request.source,
        |d| events(NodeEvent::Delivered(d)),
    )
    .await?;
    let failed = result
        .deliveries
        .iter()
        .filter(|d| d.error.is_some())
        .count();
    let report = json!({
        "sha256": id,
        "size": manifest.size,
        "chunk_size": manifest.chunk_size,
        "mode": request.mode.as_str(),
        "excluded_by_verdict": exclusion,
        "measured": result,
        "predicted": predicted["destinations"],
        "predicted_totals": predicted["totals"],
    });
    Ok(Distributed { report, failed })
}

/// The predictions of a distribution from `source`: per destination (path, store-and-forward,
/// pipelined, contended) and the totals (the seed paper's synchronous and asynchronous under
/// both models, and the contention-aware one at once and one after another).
fn predict(
    graph: &BandwidthGraph,
    policy: &RoutePolicy,
    source: &str,
    sharing: &Sharing,
) -> Result<serde_json::Value> {
    let tree = graph.route(source, policy.routing, &policy.model)?;
    let routes = tree.routes();
    let contended = tree.contended(graph, sharing)?;
    let destinations: Vec<_> = routes
        .iter()
        .zip(&contended.arrivals)
        .map(|(r, arrival)| {
            json!({
                "node": r.destination.as_str(),
                "path": r.path.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
                "store_and_forward_s": r.store_and_forward_s,
                "pipelined_s": r.pipelined_s,
                "contended_s": arrival.seconds,
            })
        })
        .collect();
    let saf = DistributionTotals::store_and_forward(&routes, 0.0)?;
    let pipe = DistributionTotals::pipelined(&routes, 0.0)?;
    Ok(json!({
        "destinations": destinations,
        "totals": {
            "store_and_forward": {
                "synchronous_s": saf.synchronous_s,
                "asynchronous_s": saf.asynchronous_s,
            },
            "pipelined": {
                "synchronous_s": pipe.synchronous_s,
                "asynchronous_s": pipe.asynchronous_s,
            },
            "contended": {
                "uplink": sharing.uplink.as_str(),
                "total_bytes_per_sec": sharing.total_bytes_per_sec,
                "asynchronous_s": contended.asynchronous_s,
                "sequential_s": contended.sequential_s,
            },
        },
    }))
}

/// Serves the blob store of `config` until `shutdown` completes, as the node `signer` names
/// (its id in the requests other members sign, and its own signature upstream); `ready` is
/// called once the server is bound, with its address and the blobs it holds.
pub async fn serve(
    config: ServeConfig,
    ledger: RestClient,
    signer: Arc<Signer>,
    ready: impl FnOnce(SocketAddr, &[BlobId]),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = Arc::new(
        BlobStore::open(&config.store, config.chunk_size).map_err(|e| NetError::OpenStore {
            path: config.store.clone(),
            source: Box::new(e),
        })?,
    );
    for file in &config.add {
        let id = store
            .insert_file(file)
            .await
            .map_err(|e| NetError::AddFile {
                path: file.clone(),
                source: Box::new(e),
            })?;
        tracing::info!(blob = %id, file = %file.display(), "added");
    }
    let registry = Registry::new(config.me.clone());
    registry.allow_keys(config.allow_keys.iter().cloned());
    let follower = match config.peers {
        None => Some(registry.follow(ledger, config.registry_refresh.max(Duration::from_secs(1)))),
        Some(peers) => {
            registry.replace(peers);
            None
        }
    };
    let transfers = Arc::new(
        Transfers::new(
            store.clone(),
            PeerClient::new(http_client(Duration::from_secs(3)), signer.clone()),
        )
        .with_registry(registry.clone())
        .with_max_blob_size(config.max_blob_size),
    );
    let tls = match &config.tls {
        Some((cert, key)) => Some(bcfl_tls::ServerTls::from_pem_files(cert, key)?),
        None => None,
    };
    let bind = |source| NetError::Bind {
        addr: config.listen,
        source,
    };
    let listener = crate::activation::bind(config.listen).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    ready(local, &store.list()?);
    let auth = Authenticator::new(Some(signer.public_key().as_hex().to_owned()), registry)
        .with_max_skew(config.max_clock_skew);
    let server = NodeServer::new(transfers, config.max_probe_bytes).with_auth(auth);
    let served = match &tls {
        Some(tls) => server.serve_tls(listener, tls, shutdown).await,
        None => server.serve(listener, shutdown).await,
    }
    .map_err(NetError::Serve);
    if let Some(follower) = follower {
        follower.abort();
    }
    served
}
