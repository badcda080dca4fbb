//! `bcfl node ...`: run a member's blob server, probe peers, fetch and distribute blobs.
//!
//! - `run` (feature `train`): a long-running member and/or coordinator process that follows
//!   the ledger, `bcfl_client::round::node`. It trains, so it is not one of these commands: the
//!   `bcfl-train` binary runs it, and `bcfl`, which links no libtorch, hands it over.
//! - `serve`: the HTTP server of [`server`](super::server) over a blob store directory (HTTPS
//!   with `--tls-cert FILE --tls-key FILE`); prints one JSON line
//!   `{"listening": ADDR, "url": URL, "blobs": [...]}` once bound, then serves until SIGINT or
//!   SIGTERM. It relays and pulls only from the members of its
//!   [`Registry`]: the ledger's active members and their endpoints,
//!   read every `--registry-refresh` seconds, or with `--peer ID=URL` exactly those peers.
//! - `probe`: measures every peer ([`probe`](super::probe)) and, with `--submit`, reports the
//!   sweep on chain as one `ReportBandwidth` signed with `--key`.
//! - `fetch`: asks a node to pull a blob from the nearest holder along the routed path, with
//!   failover ([`pull_routed`]).
//! - `distribute`: pushes a blob from a source to every peer along the route tree, all at once
//!   (`--mode async`) or one after another in tree order (`--mode sync`), printing each
//!   delivery as it completes and the measured against the predicted times: the seed paper's
//!   synchronous and asynchronous totals and the contention-aware prediction
//!   ([`RouteTree::contended`](bcfl_processor::graph::RouteTree::contended)).
//!
//! Every request these commands make to a blob server is signed with `--key`
//! ([`auth`](super::auth)); servers answer only active members and admins.
//!
//! With `--round N`, `fetch` and `distribute` remove the members round N's on-chain verdict
//! excluded from the peers and the graph ([`RoundExclusion`]) and say so (a stderr line and the
//! `excluded_by_verdict` field).
//!
//! Peers come from `--peer ID=URL` (repeatable) or, without any, from the ledger's active
//! members and their endpoints; the graph from `--bandwidth FILE` (CSV `from,to,bytes_per_sec`)
//! or, without it, from the ledger's links (median of the last `--window` samples).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bcfl_processor::graph::{BandwidthGraph, DistributionTotals, TransferModel};
use serde_json::json;

use super::auth::{Authenticator, PeerClient};
use super::blob::{BlobStore, DEFAULT_CHUNK_SIZE};
use super::edges::graph_from_csv;
use super::exclusion::RoundExclusion;
use super::manifest::{BlobId, Manifest};
use super::plan::{RoutingArg, SharingArgs};
use super::probe::{ledger_peers, submit_sweep, sweep, ProbeConfig};
use super::registry::Registry;
use super::route::{distribute_with, pull_routed, DistributionMode, Peers, RoutePolicy};
use super::server::{NodeServer, DEFAULT_MAX_PROBE_BYTES};
use super::transfer::{http_client, Transfers, DEFAULT_MAX_BLOB_SIZE};
use bcfl_ledger::keys::Signer;
use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::{BcflReader, FamilyState};

/// `bcfl node ...`.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum NodeCommand {
    /// Serve this member's blobs, probes and relays over HTTP.
    Serve(Box<ServeArgs>),
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
    /// Largest blob received when the asker gives no size, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BLOB_SIZE)]
    pub max_blob_size: u64,
    /// A peer this server may relay and pull from, as ID=URL (repeatable); without any, the
    /// ledger's active members and their registered endpoints. With --peer, the keys served are
    /// those IDs (and --allow-key); without, the ledger's active members and admins.
    #[arg(long = "peer", value_name = "ID=URL")]
    pub peers: Vec<String>,
    /// This node's own id (its member key), refused in upstream chains (repeated nodes are
    /// refused with or without it).
    #[arg(long)]
    pub me: Option<String>,
    /// Seconds between reads of the ledger's member registry (without --peer).
    #[arg(long, default_value_t = 5)]
    pub registry_refresh: u64,
    /// A public key served besides the registered members (repeatable), e.g. an operator's
    /// key with --peer.
    #[arg(long = "allow-key", value_name = "KEY")]
    pub allow_keys: Vec<String>,
    /// Largest difference, seconds, between a signed request's timestamp and this clock.
    #[arg(long, default_value_t = 60)]
    pub max_clock_skew: u64,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
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
    /// Route for round N: leave out the members its on-chain anomaly verdict excluded.
    #[arg(long, value_name = "N")]
    pub round: Option<u64>,
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
    /// All members at once (async) or one after another in tree order (sync).
    #[arg(long, value_enum, default_value_t = DistributionMode::Asynchronous)]
    pub mode: DistributionMode,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub topology: TopologyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sharing: SharingArgs,
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

/// The peers and graph to route over, without the members `--round`'s verdict excluded.
struct Topology {
    peers: Peers,
    graph: BandwidthGraph,
    exclusion: Option<RoundExclusion>,
}

async fn topology(args: &TopologyArgs, ledger: &RestClient) -> anyhow::Result<Topology> {
    let state = if args.peers.is_empty() || args.bandwidth.is_none() || args.round.is_some() {
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
    let exclusion = match (args.round, &state) {
        (Some(round), Some(state)) => Some(RoundExclusion::from_state(state, round)?),
        _ => None,
    };
    Ok(match exclusion {
        Some(exclusion) => {
            eprintln!("{}", exclusion.describe());
            Topology {
                peers: exclusion.peers(&peers),
                graph: exclusion.graph(&graph)?,
                exclusion: Some(exclusion),
            }
        }
        None => Topology {
            peers,
            graph,
            exclusion: None,
        },
    })
}

async fn remote_manifest(
    http: &PeerClient,
    peers: &Peers,
    holder: &str,
    id: &BlobId,
) -> anyhow::Result<Manifest> {
    let url = peers
        .url(holder)
        .with_context(|| format!("no endpoint for {holder}"))?;
    let response = http
        .get(holder, &format!("{url}/v1/blobs/{id}/manifest"))
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
        expected_size: Some(manifest.size),
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
    /// Runs the command against the ledger at `ledger`, signing requests to blob servers (and
    /// `probe --submit`) with the key `signer` gives.
    pub async fn run(
        self,
        ledger: RestClient,
        signer: impl FnOnce() -> anyhow::Result<Signer>,
        json: bool,
    ) -> anyhow::Result<()> {
        let signer = Arc::new(signer()?);
        let http = PeerClient::new(http_client(Duration::from_secs(3)), signer.clone());
        match self {
            Self::Serve(args) => serve(*args, ledger, signer).await,
            Self::Probe(args) => {
                let me = match &args.me {
                    Some(me) => me.clone(),
                    None => signer.public_key().as_hex().to_owned(),
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
                if args.submit {
                    let epoch = match args.epoch {
                        Some(e) => e,
                        None => ledger_state(&ledger)
                            .await?
                            .consortium
                            .map_or(0, |c| c.current_round),
                    };
                    let wait = Some(Duration::from_secs(args.wait_timeout));
                    let statuses =
                        submit_sweep(&ledger, &signer, epoch, &result.links, wait).await?;
                    out["epoch"] = json!(epoch);
                    out["batches"] = json!(statuses.iter().map(|s| &s.id).collect::<Vec<_>>());
                }
                print(&out, json);
                Ok(())
            }
            Self::Fetch(args) => {
                let id = BlobId::parse(&args.sha256)?;
                let Topology {
                    peers,
                    graph,
                    exclusion,
                } = topology(&args.topology, &ledger).await?;
                let mut holders = args.holders.clone();
                if let Some(exclusion) = &exclusion {
                    anyhow::ensure!(
                        !exclusion.excludes(&args.to),
                        "{} is excluded by the {}",
                        args.to,
                        exclusion.describe()
                    );
                    holders.retain(|h| !exclusion.excludes(h));
                    anyhow::ensure!(
                        !holders.is_empty(),
                        "every holder is excluded by the {}",
                        exclusion.describe()
                    );
                }
                let manifest = remote_manifest(&http, &peers, &holders[0], &id).await?;
                let policy = policy(&args.topology, &manifest)?;
                let done =
                    pull_routed(&http, &graph, &peers, &policy, &id, &holders, &args.to).await?;
                let mut out = serde_json::to_value(&done)?;
                out["excluded_by_verdict"] = json!(exclusion);
                print(&out, json);
                Ok(())
            }
            Self::Distribute(args) => {
                let id = BlobId::parse(&args.sha256)?;
                let Topology {
                    peers,
                    graph,
                    exclusion,
                } = topology(&args.topology, &ledger).await?;
                if let Some(exclusion) = &exclusion {
                    anyhow::ensure!(
                        !exclusion.excludes(&args.source),
                        "the source {} is excluded by the {}",
                        args.source,
                        exclusion.describe()
                    );
                }
                let manifest = remote_manifest(&http, &peers, &args.source, &id).await?;
                let policy = policy(&args.topology, &manifest)?;
                let predicted = predict(&graph, &policy, &args.source, &args.sharing)?;
                let result = distribute_with(
                    args.mode,
                    &http,
                    &graph,
                    &peers,
                    &policy,
                    &id,
                    &args.source,
                    |d| eprintln!("{}", serde_json::to_string(d).unwrap_or_default()),
                )
                .await?;
                let out = json!({
                    "sha256": id,
                    "size": manifest.size,
                    "chunk_size": manifest.chunk_size,
                    "mode": args.mode.as_str(),
                    "excluded_by_verdict": exclusion,
                    "measured": result,
                    "predicted": predicted["destinations"],
                    "predicted_totals": predicted["totals"],
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

/// The predictions of a distribution from `source`: per destination (path, store-and-forward,
/// pipelined, contended) and the totals (the seed paper's synchronous and asynchronous under
/// both models, and the contention-aware one at once and one after another).
fn predict(
    graph: &BandwidthGraph,
    policy: &RoutePolicy,
    source: &str,
    sharing: &SharingArgs,
) -> anyhow::Result<serde_json::Value> {
    let sharing = sharing.sharing();
    let tree = graph.route(source, policy.routing, &policy.model)?;
    let routes = tree.routes();
    let contended = tree.contended(graph, &sharing)?;
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

async fn serve(args: ServeArgs, ledger: RestClient, signer: Arc<Signer>) -> anyhow::Result<()> {
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
    let registry = Registry::new(args.me.clone());
    registry.allow_keys(args.allow_keys.iter().cloned());
    let follower = if args.peers.is_empty() {
        Some(registry.follow(ledger, Duration::from_secs(args.registry_refresh.max(1))))
    } else {
        registry.replace(parse_peers(&args.peers)?);
        None
    };
    let transfers = Arc::new(
        Transfers::new(
            store.clone(),
            PeerClient::new(http_client(Duration::from_secs(3)), signer.clone()),
        )
        .with_registry(registry.clone())
        .with_max_blob_size(args.max_blob_size),
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(bcfl_tls::ServerTls::from_pem_files(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "{}",
        json!({ "listening": local.to_string(), "url": format!("{scheme}://{local}"), "blobs": store.list()? })
    );
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let auth = Authenticator::new(Some(signer.public_key().as_hex().to_owned()), registry)
        .with_max_skew(Duration::from_secs(args.max_clock_skew));
    let server = NodeServer::new(transfers, args.max_probe_bytes).with_auth(auth);
    let served = match &tls {
        Some(tls) => server.serve_tls(listener, tls, shutdown).await,
        None => server.serve(listener, shutdown).await,
    }
    .context("serving");
    if let Some(follower) = follower {
        follower.abort();
    }
    served
}
