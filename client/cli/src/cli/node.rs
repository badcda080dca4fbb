//! `bcfl node serve|probe|fetch|distribute`: a member's blob server, peer probes, and routed
//! fetches and distributions ([`bcfl_net::node`]); `bcfl node run` trains and runs in
//! `bcfl-train`.
//!
//! - `serve` prints one JSON line `{"listening": ADDR, "url": URL, "blobs": [...]}` once bound
//!   (HTTPS with `--tls-cert FILE --tls-key FILE`), then serves until SIGINT or SIGTERM; it
//!   relays and pulls from the ledger's active members, read every `--registry-refresh`
//!   seconds, or with `--peer ID=URL` exactly those peers.
//! - `probe` measures every peer and, with `--submit`, reports the sweep on chain as one
//!   `ReportBandwidth` signed with `--key`.
//! - `fetch` asks a node to pull a blob from the nearest holder along the routed path.
//! - `distribute` pushes a blob from a source to every peer along the route tree (`--mode
//!   async|sync`), printing each delivery on stderr as it completes, then the measured against
//!   the predicted times.
//!
//! With `--round N`, `fetch` and `distribute` leave out the members round N's on-chain verdict
//! excluded and say so (a stderr line and the `excluded_by_verdict` field). Peers come from
//! `--peer ID=URL` (repeatable) or the ledger's active members; the graph from `--bandwidth
//! FILE` or the ledger's links (median of the last `--window` samples).
//!
//! Every request these commands make to a blob server is signed with `--key`
//! ([`bcfl_net::auth`]); servers answer only active members and admins (and `--allow-key`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bcfl_ledger::keys::Signer;
use bcfl_ledger::rest::RestClient;
use bcfl_net::auth::PeerClient;
use bcfl_net::blob::DEFAULT_CHUNK_SIZE;
use bcfl_net::manifest::BlobId;
use bcfl_net::node::{
    DistributeRequest, FetchRequest, NodeEvent, ProbeRequest, ServeConfig, SweepReport,
    TopologySpec,
};
use bcfl_net::probe::ProbeConfig;
use bcfl_net::route::{DistributionMode, Peers};
use bcfl_net::server::DEFAULT_MAX_PROBE_BYTES;
use bcfl_net::transfer::{http_client, DEFAULT_MAX_BLOB_SIZE};
use clap::{Args, Subcommand};
use serde_json::json;

use super::net::{RoutingArg, SharingArgs};

/// `bcfl node ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub(crate) enum NodeCommand {
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
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Blob store directory.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Files to add to the store before serving.
    #[arg(long, value_name = "FILE")]
    add: Vec<PathBuf>,
    /// Chunk size of manifests (and so of relays' verification), bytes.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    chunk_size: u64,
    /// Largest probe served, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_PROBE_BYTES)]
    max_probe_bytes: u64,
    /// Largest blob received when the asker gives no size, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BLOB_SIZE)]
    max_blob_size: u64,
    /// A peer this server may relay and pull from, as ID=URL (repeatable); without any, the
    /// ledger's active members and their registered endpoints. With --peer, the keys served are
    /// those IDs (and --allow-key); without, the ledger's active members and admins.
    #[arg(long = "peer", value_name = "ID=URL")]
    peers: Vec<String>,
    /// This node's own id (its member key), refused in upstream chains (repeated nodes are
    /// refused with or without it).
    #[arg(long)]
    me: Option<String>,
    /// Seconds between reads of the ledger's member registry (without --peer).
    #[arg(long, default_value_t = 5)]
    registry_refresh: u64,
    /// A public key served besides the registered members (repeatable), e.g. an operator's
    /// key with --peer.
    #[arg(long = "allow-key", value_name = "KEY")]
    allow_keys: Vec<String>,
    /// Largest difference, seconds, between a signed request's timestamp and this clock.
    #[arg(long, default_value_t = 60)]
    max_clock_skew: u64,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Where peers and the bandwidth graph come from.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct TopologyArgs {
    /// A peer as ID=URL (repeatable); without any, the ledger's active members.
    #[arg(long = "peer", value_name = "ID=URL")]
    peers: Vec<String>,
    /// CSV edge list `from,to,bytes_per_sec`; without it, the ledger's measured links.
    #[arg(long, value_name = "FILE")]
    bandwidth: Option<PathBuf>,
    /// Ledger links: the median of this many newest samples per link.
    #[arg(long, default_value_t = 5)]
    window: usize,
    /// How routes are chosen.
    #[arg(long, value_enum, default_value_t = RoutingArg::Shortest)]
    routing: RoutingArg,
    /// Fetch attempts per receiver before giving up.
    #[arg(long, default_value_t = 4)]
    attempts: usize,
    /// Route for round N: leave out the members its on-chain anomaly verdict excluded.
    #[arg(long, value_name = "N")]
    round: Option<u64>,
}

/// Arguments of `bcfl node probe`.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct ProbeArgs {
    /// A peer as ID=URL (repeatable); without any, the ledger's active members.
    #[arg(long = "peer", value_name = "ID=URL")]
    peers: Vec<String>,
    /// This member's id, skipped in the sweep [default: the signing key's public key].
    #[arg(long)]
    me: Option<String>,
    /// Bytes per throughput probe.
    #[arg(long, default_value_t = 8 << 20)]
    bytes: u64,
    /// Small requests whose fastest is the RTT.
    #[arg(long, default_value_t = 5)]
    rtt_samples: usize,
    /// Report the sweep on chain (one ReportBandwidth transaction).
    #[arg(long)]
    submit: bool,
    /// The sweep's epoch [default: the consortium's current round].
    #[arg(long)]
    epoch: Option<u64>,
    /// Seconds to wait for the report to commit.
    #[arg(long, default_value_t = 30)]
    wait_timeout: u64,
}

/// Arguments of `bcfl node fetch`.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct FetchArgs {
    /// The blob (its on-chain SHA-256).
    #[arg(long)]
    sha256: String,
    /// The receiving node's id.
    #[arg(long)]
    to: String,
    /// Nodes holding the blob, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    holders: Vec<String>,
    #[command(flatten)]
    topology: TopologyArgs,
}

/// Arguments of `bcfl node distribute`.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct DistributeArgs {
    /// The blob (its on-chain SHA-256).
    #[arg(long)]
    sha256: String,
    /// The node holding it.
    #[arg(long)]
    source: String,
    /// All members at once (async) or one after another in tree order (sync).
    #[arg(long, value_enum, default_value_t = DistributionMode::Asynchronous)]
    mode: DistributionMode,
    #[command(flatten)]
    topology: TopologyArgs,
    #[command(flatten)]
    sharing: SharingArgs,
}

/// `--peer ID=URL` values; `None` without any (the ledger's members).
fn parse_peers(specs: &[String]) -> anyhow::Result<Option<Peers>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut peers = Peers::default();
    for spec in specs {
        let (id, url) = spec
            .split_once('=')
            .with_context(|| format!("--peer {spec:?}: expected ID=URL"))?;
        peers
            .0
            .insert(id.to_owned(), url.trim_end_matches('/').to_owned());
    }
    Ok(Some(peers))
}

impl TopologyArgs {
    fn spec(&self) -> anyhow::Result<TopologySpec> {
        Ok(TopologySpec {
            peers: parse_peers(&self.peers)?,
            bandwidth: self.bandwidth.clone(),
            window: self.window,
            routing: self.routing.into(),
            attempts: self.attempts,
            round: self.round,
        })
    }
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

/// Prints what a fetch or distribution reports while it runs, on stderr.
fn report_event(event: NodeEvent<'_>) {
    match event {
        NodeEvent::Excluded(exclusion) => eprintln!("{}", exclusion.describe()),
        NodeEvent::Delivered(d) => {
            eprintln!("{}", serde_json::to_string(d).unwrap_or_default());
        }
    }
}

/// SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

impl NodeCommand {
    /// Runs the command against the ledger at `ledger`, signing requests to blob servers (and
    /// `probe --submit`) with the key `signer` gives.
    pub(crate) async fn run(
        self,
        ledger: RestClient,
        signer: impl FnOnce() -> anyhow::Result<Signer>,
        json: bool,
    ) -> anyhow::Result<()> {
        let signer = Arc::new(signer()?);
        let http = PeerClient::new(http_client(Duration::from_secs(3)), signer.clone());
        match self {
            Self::Serve(args) => {
                let args = *args;
                let scheme = if args.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                let config = ServeConfig {
                    listen: args.listen,
                    store: args.store,
                    add: args.add,
                    chunk_size: args.chunk_size,
                    max_probe_bytes: args.max_probe_bytes,
                    max_blob_size: args.max_blob_size,
                    peers: parse_peers(&args.peers)?,
                    me: args.me,
                    registry_refresh: Duration::from_secs(args.registry_refresh.max(1)),
                    allow_keys: args.allow_keys,
                    max_clock_skew: Duration::from_secs(args.max_clock_skew),
                    tls: args.tls_cert.zip(args.tls_key),
                };
                let ready = |local: SocketAddr, blobs: &[BlobId]| {
                    println!(
                        "{}",
                        json!({
                            "listening": local.to_string(),
                            "url": format!("{scheme}://{local}"),
                            "blobs": blobs,
                        })
                    );
                };
                bcfl_net::node::serve(config, ledger, signer, ready, shutdown_signal()).await?;
            }
            Self::Probe(args) => {
                let peers = parse_peers(&args.peers)?;
                let me = match &args.me {
                    Some(me) => me.clone(),
                    None => signer.public_key().as_hex().to_owned(),
                };
                let report = args.submit.then(|| SweepReport {
                    signer: (*signer).clone(),
                    epoch: args.epoch,
                    wait: Duration::from_secs(args.wait_timeout),
                });
                let request = ProbeRequest {
                    peers,
                    me,
                    config: ProbeConfig {
                        bytes: args.bytes,
                        rtt_samples: args.rtt_samples,
                    },
                    report,
                };
                print(&bcfl_net::node::probe(request, &ledger, &http).await?, json);
            }
            Self::Fetch(args) => {
                let request = FetchRequest {
                    blob: BlobId::parse(&args.sha256)?,
                    to: args.to,
                    holders: args.holders,
                    topology: args.topology.spec()?,
                };
                let out = bcfl_net::node::fetch(&request, &ledger, &http, report_event).await?;
                print(&out, json);
            }
            Self::Distribute(args) => {
                let request = DistributeRequest {
                    blob: BlobId::parse(&args.sha256)?,
                    source: args.source,
                    mode: args.mode,
                    topology: args.topology.spec()?,
                    sharing: args.sharing.sharing(),
                };
                let done =
                    bcfl_net::node::distribute(&request, &ledger, &http, report_event).await?;
                print(&done.report, json);
                let failed = done.failed;
                anyhow::ensure!(failed == 0, "{failed} member(s) did not receive the blob");
            }
        }
        Ok(())
    }
}
