//! `bcfl node ...`: run a member's blob server, probe peers, fetch and distribute blobs.
//!
//! - `serve`: the HTTP server of [`server`](super::server) over a blob store directory; prints
//!   one JSON line `{"listening": ADDR, "blobs": [...]}` once bound, then serves until SIGINT or
//!   SIGTERM.
//! - `probe`: measures every peer ([`probe`](super::probe)) and, with `--submit`, reports the
//!   sweep on chain as one `ReportBandwidth` signed with `--key`.
//! - `fetch`: asks a node to pull a blob from the nearest holder along the routed path, with
//!   failover ([`pull_routed`]).
//! - `distribute`: pushes a blob from a source to every peer along the route tree, printing
//!   each delivery as it completes and the measured against the predicted times.
//!
//! Peers come from `--peer ID=URL` (repeatable) or, without any, from the ledger's active
//! members and their endpoints; the graph from `--bandwidth FILE` (CSV `from,to,bytes_per_sec`)
//! or, without it, from the ledger's links (median of the last `--window` samples).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bcfl_processor::graph::{BandwidthGraph, TransferModel};
use serde_json::json;

use super::blob::{BlobStore, DEFAULT_CHUNK_SIZE};
use super::edges::graph_from_csv;
use super::manifest::{BlobId, Manifest};
use super::plan::RoutingArg;
use super::probe::{ledger_peers, submit_sweep, sweep, ProbeConfig};
use super::route::{distribute, pull_routed, Peers, RoutePolicy};
use super::server::{NodeServer, DEFAULT_MAX_PROBE_BYTES};
use super::transfer::{http_client, Transfers};
use crate::ledger::keys::Signer;
use crate::ledger::rest::RestClient;
use crate::ledger::state::{BcflReader, FamilyState};

/// `bcfl node ...`.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum NodeCommand {
    /// Serve this member's blobs, probes and relays over HTTP.
    Serve(ServeArgs),
    /// Measure throughput and RTT to every peer; `--submit` reports them on chain.
    Probe(ProbeArgs),
    /// Ask a node to fetch a blob from the nearest holder along its routed path.
    Fetch(FetchArgs),
    /// Distribute a blob from a source to every peer along the route tree.
    Distribute(DistributeArgs),
}

/// Arguments of `bcfl node serve`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Blob store directory.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Files to add to the store before serving.
    #[arg(long, value_name = "FILE")]
    pub add: Vec<PathBuf>,
    /// Chunk size of manifests (and so of relays' verification), bytes.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u64,
    /// Largest probe served, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_PROBE_BYTES)]
    pub max_probe_bytes: u64,
}

/// Where peers and the bandwidth graph come from.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct TopologyArgs {
    /// A peer as ID=URL (repeatable); without any, the ledger's active members.
    #[arg(long = "peer", value_name = "ID=URL")]
    pub peers: Vec<String>,
    /// CSV edge list `from,to,bytes_per_sec`; without it, the ledger's measured links.
    #[arg(long, value_name = "FILE")]
    pub bandwidth: Option<PathBuf>,
    /// Ledger links: the median of this many newest samples per link.
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// How routes are chosen.
    #[arg(long, value_enum, default_value_t = RoutingArg::Shortest)]
    pub routing: RoutingArg,
    /// Fetch attempts per receiver before giving up.
    #[arg(long, default_value_t = 4)]
    pub attempts: usize,
}

/// Arguments of `bcfl node probe`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ProbeArgs {
    /// A peer as ID=URL (repeatable); without any, the ledger's active members.
    #[arg(long = "peer", value_name = "ID=URL")]
    pub peers: Vec<String>,
    /// This member's id, skipped in the sweep [default: the signing key's public key].
    #[arg(long)]
    pub me: Option<String>,
    /// Bytes per throughput probe.
    #[arg(long, default_value_t = 8 << 20)]
    pub bytes: u64,
    /// Small requests whose fastest is the RTT.
    #[arg(long, default_value_t = 5)]
    pub rtt_samples: usize,
    /// Report the sweep on chain (one ReportBandwidth transaction).
    #[arg(long)]
    pub submit: bool,
    /// The sweep's epoch [default: the consortium's current round].
    #[arg(long)]
    pub epoch: Option<u64>,
    /// Seconds to wait for the report to commit.
    #[arg(long, default_value_t = 30)]
    pub wait_timeout: u64,
}

/// Arguments of `bcfl node fetch`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct FetchArgs {
    /// The blob (its on-chain SHA-256).
    #[arg(long)]
    pub sha256: String,
    /// The receiving node's id.
    #[arg(long)]
    pub to: String,
    /// Nodes holding the blob, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub holders: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub topology: TopologyArgs,
}

/// Arguments of `bcfl node distribute`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DistributeArgs {
    /// The blob (its on-chain SHA-256).
    #[arg(long)]
    pub sha256: String,
    /// The node holding it.
    #[arg(long)]
    pub source: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub topology: TopologyArgs,
}

fn parse_peers(specs: &[String]) -> anyhow::Result<Peers> {
    let mut peers = Peers::default();
    for spec in specs {
        let (id, url) = spec
            .split_once('=')
            .with_context(|| format!("--peer {spec:?}: expected ID=URL"))?;
        peers
            .0
            .insert(id.to_owned(), url.trim_end_matches('/').to_owned());
    }
    Ok(peers)
}

async fn ledger_state(ledger: &RestClient) -> anyhow::Result<FamilyState> {
    BcflReader::new(ledger.clone())
        .family_state(None)
        .await
        .context("reading the family state")
}

async fn topology(
    args: &TopologyArgs,
    ledger: &RestClient,
) -> anyhow::Result<(Peers, BandwidthGraph)> {
    let state = if args.peers.is_empty() || args.bandwidth.is_none() {
        Some(ledger_state(ledger).await?)
    } else {
        None
    };
    let peers = match &state {
        Some(state) if args.peers.is_empty() => ledger_peers(state),
        _ => parse_peers(&args.peers)?,
    };
    let graph = match (&args.bandwidth, &state) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            graph_from_csv(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        (None, Some(state)) => {
            BandwidthGraph::from_ledger_links(state.links.values(), args.window)?
        }
        (None, None) => unreachable!("the state is read when no edge list is given"),
    };
    Ok((peers, graph))
}

async fn remote_manifest(
    http: &reqwest::Client,
    peers: &Peers,
    holder: &str,
    id: &BlobId,
) -> anyhow::Result<Manifest> {
    let url = peers
        .url(holder)
        .with_context(|| format!("no endpoint for {holder}"))?;
    let response = http
        .get(format!("{url}/v1/blobs/{id}/manifest"))
        .send()
        .await
        .with_context(|| format!("asking {holder} for the manifest of {id}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{holder} does not serve blob {id}: HTTP {}",
        response.status()
    );
    let manifest: Manifest = response.json().await.context("decoding the manifest")?;
    manifest.validate(id)?;
    Ok(manifest)
}

fn policy(args: &TopologyArgs, manifest: &Manifest) -> anyhow::Result<RoutePolicy> {
    Ok(RoutePolicy {
        routing: args.routing.into(),
        model: TransferModel::new(manifest.size.max(1) as f64, manifest.chunk_size as f64)?,
        max_attempts: args.attempts,
    })
}

fn print(value: &serde_json::Value, json: bool) {
    if json {
        println!("{value}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

impl NodeCommand {
    /// Runs the command against the ledger at `ledger`, signing (only `probe --submit`) with
    /// the key `signer` gives.
    pub async fn run(
        self,
        ledger: RestClient,
        signer: impl FnOnce() -> anyhow::Result<Signer>,
        json: bool,
    ) -> anyhow::Result<()> {
        let http = http_client(Duration::from_secs(3));
        match self {
            Self::Serve(args) => serve(args).await,
            Self::Probe(args) => {
                let signer = if args.submit || args.me.is_none() {
                    Some(signer()?)
                } else {
                    None
                };
                let me = match (&args.me, &signer) {
                    (Some(me), _) => me.clone(),
                    (None, Some(s)) => s.public_key().as_hex().to_owned(),
                    (None, None) => unreachable!("a signer is read without --me"),
                };
                let peers = if args.peers.is_empty() {
                    ledger_peers(&ledger_state(&ledger).await?)
                } else {
                    parse_peers(&args.peers)?
                };
                let config = ProbeConfig {
                    bytes: args.bytes,
                    rtt_samples: args.rtt_samples,
                };
                let result = sweep(&http, &peers, &me, &config).await;
                let mut out = json!({ "from": me, "links": result.links, "failed": result.failed });
                if let (true, Some(signer)) = (args.submit, &signer) {
                    let epoch = match args.epoch {
                        Some(e) => e,
                        None => ledger_state(&ledger)
                            .await?
                            .consortium
                            .map_or(0, |c| c.current_round),
                    };
                    let wait = Some(Duration::from_secs(args.wait_timeout));
                    let statuses =
                        submit_sweep(&ledger, signer, epoch, &result.links, wait).await?;
                    out["epoch"] = json!(epoch);
                    out["batches"] = json!(statuses.iter().map(|s| &s.id).collect::<Vec<_>>());
                }
                print(&out, json);
                Ok(())
            }
            Self::Fetch(args) => {
                let id = BlobId::parse(&args.sha256)?;
                let (peers, graph) = topology(&args.topology, &ledger).await?;
                let manifest = remote_manifest(&http, &peers, &args.holders[0], &id).await?;
                let policy = policy(&args.topology, &manifest)?;
                let done =
                    pull_routed(&http, &graph, &peers, &policy, &id, &args.holders, &args.to)
                        .await?;
                print(&serde_json::to_value(&done)?, json);
                Ok(())
            }
            Self::Distribute(args) => {
                let id = BlobId::parse(&args.sha256)?;
                let (peers, graph) = topology(&args.topology, &ledger).await?;
                let manifest = remote_manifest(&http, &peers, &args.source, &id).await?;
                let policy = policy(&args.topology, &manifest)?;
                let tree = match policy.routing {
                    bcfl_processor::graph::Routing::Shortest => {
                        graph.shortest_paths(&args.source, &policy.model)?
                    }
                    bcfl_processor::graph::Routing::Widest => {
                        graph.widest_paths(&args.source, &policy.model)?
                    }
                };
                let result = distribute(&http, &graph, &peers, &policy, &id, &args.source, |d| {
                    eprintln!("{}", serde_json::to_string(d).unwrap_or_default());
                })
                .await?;
                let predicted: Vec<_> = tree
                    .routes()
                    .iter()
                    .map(|r| {
                        json!({
                            "node": r.destination.as_str(),
                            "path": r.path.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
                            "store_and_forward_s": r.store_and_forward_s,
                            "pipelined_s": r.pipelined_s,
                        })
                    })
                    .collect();
                let out = json!({
                    "sha256": id,
                    "size": manifest.size,
                    "chunk_size": manifest.chunk_size,
                    "measured": result,
                    "predicted": predicted,
                });
                print(&out, json);
                let failed = result
                    .deliveries
                    .iter()
                    .filter(|d| d.error.is_some())
                    .count();
                anyhow::ensure!(failed == 0, "{failed} member(s) did not receive the blob");
                Ok(())
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = Arc::new(
        BlobStore::open(&args.store, args.chunk_size)
            .with_context(|| format!("opening the blob store {}", args.store.display()))?,
    );
    for file in &args.add {
        let id = store
            .insert_file(file)
            .await
            .with_context(|| format!("adding {}", file.display()))?;
        tracing::info!(blob = %id, file = %file.display(), "added");
    }
    let transfers = Arc::new(Transfers::new(
        store.clone(),
        http_client(Duration::from_secs(3)),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    println!(
        "{}",
        json!({ "listening": local.to_string(), "blobs": store.list()? })
    );
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    NodeServer::new(transfers, args.max_probe_bytes)
        .serve(listener, shutdown)
        .await
        .context("serving")
}
