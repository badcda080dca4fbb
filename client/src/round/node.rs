//! What `bcfl node run` runs: a long-running member (and/or coordinator) process that follows
//! the ledger ([`run`]).
//!
//! Configured by a TOML file ([`NodeConfig::read`]; the command line's flags and environment
//! variables override it, in `bcfl-train`):
//!
//! ```toml
//! ledger = ["http://127.0.0.1:8008", "http://10.0.0.2:8008"]   # used in turn when one fails
//! poll_seconds = 1.0          # re-read the state at least this often (a block wakes it sooner)
//!
//! [member]
//! name = "hospital-a"
//! key = "keys/hospital-a.priv"
//! package = "model"           # the consortium's model package (bcfl model init)
//! data = "shards/member-1.csv"   # private training data (a decoder package: member-1.json)
//! test_data = "shards/test.csv"  # optional: score every global model
//! store = "hospital-a/store"   # blob store
//! listen = "127.0.0.1:7001"    # blob server (the endpoint registered on chain; a socket
//!                              # passed in, LISTEN_FDS=1, must listen there)
//! tls_cert = "hospital-a/server.crt"   # optional: serve blobs over HTTPS (with tls_key)
//! tls_key = "hospital-a/server.key"
//! report = "hospital-a/report.jsonl"
//! commit_timeout_seconds = 120   # as aggregator: wait this long for every member
//! [member.train]
//! epochs = 2
//! batch_size = 16
//! learning_rate = 0.005
//! seed = 42
//! [member.probe]
//! bytes = 1048576
//! rtt_samples = 3
//! every_rounds = 1
//!
//! [coordinator]                 # this process also runs the consortium's schedule
//! key = "keys/admin.priv"
//! rounds = 3
//! topology = "serverless"       # or "server" with server = "<public key>"
//! synchrony = "synchronous"     # or "buffered-async" with buffer = K, max_staleness = S
//! commit_timeout = 120
//! aggregate_timeout = 300
//! ```
//!
//! Relative paths are relative to the configuration file. The loop: read the state (the
//! ledger's head), give it to each role ([`Coordinator::tick`], [`Member::tick`]), then wait
//! until a block arrives on the `/subscriptions` websocket or `poll_seconds` pass. A node keeps
//! its state in the ledger and its blob store only: killed at any moment and started again, it
//! picks up from what the chain shows. SIGINT or SIGTERM stops it cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::coordinator::{Coordinator, CoordinatorConfig, CoordinatorStatus};
use super::decoder::DecoderMember;
use super::ledger::Ledger;
use super::member::{Member, MemberConfig, MemberStatus, CHUNK_SIZE};
use super::model::{LocalModel, ModelPackage, Trainer};
use super::report::Report;
use super::rest::RestLedger;
use super::{Error, Result};
use crate::demo::attack::{ApplyAttack, AttackKind, DATA_KINDS};
use crate::llm::pubmedqa::read_questions;
use crate::train::trainer::TrainConfig;
use bcfl_ledger::keys::Signer;
use bcfl_net::auth::PeerClient;
use bcfl_net::blob::BlobStore;
use bcfl_net::probe::ProbeConfig;
use bcfl_net::server::{NodeServer, DEFAULT_MAX_PROBE_BYTES};
use bcfl_net::transfer::{http_client, Transfers};

/// The configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// REST API URLs of the ledger, tried in turn.
    #[serde(default)]
    pub ledger: Vec<String>,
    /// Seconds between state reads when no block arrives.
    #[serde(default = "default_poll")]
    pub poll_seconds: f64,
    /// Seconds a submission may take to commit.
    #[serde(default = "default_wait")]
    pub wait_seconds: f64,
    /// The member role.
    pub member: Option<MemberSection>,
    /// The coordinator role.
    pub coordinator: Option<CoordinatorSection>,
}

fn default_poll() -> f64 {
    1.0
}
fn default_wait() -> f64 {
    120.0
}

/// How long a member that reached `--until-round` keeps serving its blobs before it exits, so
/// that a member still fetching the last global model can get it from this one.
pub const LINGER: Duration = Duration::from_secs(5);

/// `[member]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    /// Display name.
    pub name: String,
    /// Private key file.
    pub key: PathBuf,
    /// The consortium's model package folder.
    pub package: PathBuf,
    /// Private training data: CSV, TSV or JSON lines (see `bcfl data split`) for a BERT
    /// package; PubMedQA questions in `ori_pqal.json`'s format (`bcfl data split --task
    /// pubmedqa`) for a decoder package.
    pub data: PathBuf,
    /// Held-out data to score each global model on (the same format as `data`).
    #[serde(default)]
    pub test_data: Option<PathBuf>,
    /// Blob store folder.
    pub store: PathBuf,
    /// Blob server address (its URL is the endpoint registered on chain).
    pub listen: SocketAddr,
    /// Serve blobs over HTTPS with this certificate chain (PEM; with `tls_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Report file (JSON lines).
    #[serde(default)]
    pub report: Option<PathBuf>,
    /// As aggregator: seconds to wait for every member before evaluating with the quorum.
    #[serde(default = "default_commit_timeout")]
    pub commit_timeout_seconds: f64,
    /// Local training (a decoder package carries its own recipe: only the seed is used).
    #[serde(default)]
    pub train: TrainSection,
    /// Bandwidth probes.
    #[serde(default)]
    pub probe: ProbeSection,
    /// Testing misbehaviour (`sign-flip`, `scale`, `noise`, `free-rider`, `stale-rider`,
    /// `disguised-scale`, the colluding `alie`, `ipm`, `min-max`, `min-sum`, the adaptive
    /// `hidden-reversal`, and `label-flip`: training on the data's labels shifted by one
    /// class).
    #[serde(default)]
    pub attack: Option<String>,
    /// A colluding attacker's fellow attackers (`alie`, `ipm`, `min-max`, `min-sum`): their
    /// public keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub colluders: Vec<String>,
    /// A colluding attacker moves its copy of the crafted update by Gaussian noise of this
    /// norm relative to the crafted change (0: the copy its fellows send too).
    #[serde(default, skip_serializing_if = "is_no_noise")]
    pub collusion_noise: crate::demo::attack::CollusionNoise,
    /// An adaptive attacker (`hidden-reversal`) hides from another projection than the
    /// round's, as it has to when sketches come after the commitments (an emulation of
    /// `sketch_after_commit` without its extra phase).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blind_projection: bool,
    /// Extra time after training, as a multiple of the training time.
    #[serde(default)]
    pub slowdown: f64,
}

fn is_no_noise(noise: &crate::demo::attack::CollusionNoise) -> bool {
    *noise == crate::demo::attack::CollusionNoise::NONE
}

fn default_commit_timeout() -> f64 {
    120.0
}

/// `[member.train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Local epochs per round.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 2,
            batch_size: 16,
            learning_rate: 5e-3,
            seed: 42,
        }
    }
}

/// `[member.probe]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSection {
    /// Bytes per throughput probe.
    pub bytes: u64,
    /// Small requests whose fastest is the RTT.
    pub rtt_samples: usize,
    /// Probe every this many rounds (0: never).
    pub every_rounds: u64,
}

impl Default for ProbeSection {
    fn default() -> Self {
        Self {
            bytes: 1 << 20,
            rtt_samples: 3,
            every_rounds: 1,
        }
    }
}

/// `[coordinator]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorSection {
    /// An admin's private key file.
    pub key: PathBuf,
    /// The schedule.
    #[serde(flatten)]
    pub schedule: CoordinatorConfig,
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

impl NodeConfig {
    /// No file: no roles, the default poll and wait.
    pub fn empty() -> Self {
        Self {
            poll_seconds: default_poll(),
            wait_seconds: default_wait(),
            ..Default::default()
        }
    }

    /// Reads a configuration file, its relative paths made relative to its folder.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file("reading", path, e))?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|e| Error::file("parsing", path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(m) = &mut config.member {
            for p in [&mut m.key, &mut m.package, &mut m.data, &mut m.store] {
                *p = resolve(base, p);
            }
            let optional = [
                &mut m.test_data,
                &mut m.report,
                &mut m.tls_cert,
                &mut m.tls_key,
            ];
            for p in optional.into_iter().flatten() {
                *p = resolve(base, p);
            }
        }
        if let Some(c) = &mut config.coordinator {
            c.key = resolve(base, &c.key);
        }
        Ok(config)
    }

    /// Refuses a configuration without a role, or with an invalid schedule.
    pub fn check(&self) -> Result<()> {
        if self.member.is_none() && self.coordinator.is_none() {
            return Err(Error::Config(
                "nothing to run: the configuration has neither [member] nor [coordinator]".into(),
            ));
        }
        if let Some(c) = &self.coordinator {
            c.schedule.validate().map_err(Error::Config)?;
        }
        Ok(())
    }
}

/// Starts the member role: checks the model package against the chain, loads the data,
/// starts the blob server.
async fn start_member<L: Ledger>(
    ledger: Arc<L>,
    m: &MemberSection,
    until_round: Option<u64>,
) -> Result<(Member<L>, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let signer = Signer::from_file(&m.key).map_err(|e| Error::file("reading", &m.key, e))?;
    let package = ModelPackage::read(&m.package)?;
    let state = ledger.state().await?;
    let consortium = state.consortium.as_ref().ok_or_else(|| {
        Error::State("the ledger holds no consortium yet (bcfl consortium init)".into())
    })?;
    let params = consortium.get_params();
    if params.base_model_sha256 != package.base_sha256 {
        return Err(Error::State(format!(
            "the package's base model {} is not the consortium's {}",
            package.base_sha256, params.base_model_sha256
        )));
    }
    if !params.initial_model_sha256.is_empty()
        && params.initial_model_sha256 != package.initial_sha256
    {
        return Err(Error::State(format!(
            "the package's initial model {} is not the consortium's {}",
            package.initial_sha256, params.initial_model_sha256
        )));
    }
    // A label flipper trains on its data's labels shifted (DATA_KINDS).
    let attack: Option<AttackKind> = m.attack.as_deref().map(str::parse).transpose()?;
    if let Some(kind) = attack.filter(|k| !k.replaces_update() && !DATA_KINDS.contains(k)) {
        return Err(kind.unsupported("a node").into());
    }
    let flipped = attack == Some(AttackKind::LabelFlip);
    if flipped {
        tracing::warn!(name = %m.name, "attack label-flip: training on labels shifted by one class");
    }
    let model: Box<dyn Trainer> = match package.decoder {
        Some(_) => {
            let mut shard = read_questions(&m.data)?;
            if flipped {
                shard.iter_mut().for_each(|q| q.answer = q.answer.flipped());
            }
            let test = m.test_data.as_deref().map(read_questions).transpose()?;
            let (package, base) = (package.clone(), params.base_model_sha256.clone());
            Box::new(
                tokio::task::spawn_blocking(move || {
                    DecoderMember::load(&package, &base, &shard, test.as_deref())
                })
                .await??,
            )
        }
        None => {
            let shard = package.load_examples(&m.data)?;
            let shard = if flipped {
                shard.label_flipped()
            } else {
                shard
            };
            let test = m
                .test_data
                .as_deref()
                .map(|p| package.load_examples(p))
                .transpose()?;
            let train = TrainConfig {
                epochs: m.train.epochs,
                batch_size: m.train.batch_size,
                learning_rate: m.train.learning_rate,
                seed: m.train.seed,
                ..TrainConfig::default()
            };
            let (package, base) = (package.clone(), params.base_model_sha256.clone());
            Box::new(
                tokio::task::spawn_blocking(move || {
                    LocalModel::load(&package, &base, shard, test, train)
                })
                .await??,
            )
        }
    };
    let store = Arc::new(
        BlobStore::open(&m.store, CHUNK_SIZE)
            .map_err(|e| Error::file("opening the blob store", &m.store, e))?,
    );
    let http = PeerClient::new(
        http_client(Duration::from_secs(3)),
        Arc::new(signer.clone()),
    );
    let transfers = Arc::new(Transfers::new(store, http.clone()));
    let server = NodeServer::new(transfers.clone(), DEFAULT_MAX_PROBE_BYTES);
    let tls = match (&m.tls_cert, &m.tls_key) {
        (Some(cert), Some(key)) => Some(bcfl_net::tls::ServerTls::from_pem_files(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "[member] needs both tls_cert and tls_key, or neither".into(),
            ))
        }
    };
    let failed = |e| Error::file("starting the blob server on", m.listen.to_string(), e);
    let listener = bcfl_net::activation::bind(m.listen).await.map_err(failed)?;
    let (addr, server) = match tls {
        Some(tls) => server.spawn_tls_on(listener, tls),
        None => server.spawn_on(listener),
    }
    .map_err(failed)?;
    let key = signer.public_key().as_hex().to_owned();
    match state.members.get(&key) {
        Some(member) => {
            tracing::info!(name = %m.name, %key, endpoint = %member.endpoint, listening = %addr, "member node up")
        }
        None => {
            tracing::warn!(name = %m.name, %key, "not a registered member yet: waiting for the admin to register it")
        }
    }
    let config = MemberConfig {
        name: m.name.clone(),
        probe: ProbeConfig {
            bytes: m.probe.bytes,
            rtt_samples: m.probe.rtt_samples,
        },
        probe_every: m.probe.every_rounds,
        commit_timeout: Duration::try_from_secs_f64(m.commit_timeout_seconds)?,
        seed: m.train.seed,
        attack,
        colluders: m.colluders.iter().cloned().collect(),
        collusion_noise: m.collusion_noise,
        blind_projection: m.blind_projection,
        slowdown: m.slowdown,
        until_round,
        encoding: bcfl_fed::update::Encoding::F32,
    };
    let report = Report::new(m.report.as_deref())?;
    let member = Member::new(
        ledger,
        signer,
        config,
        transfers,
        http,
        model,
        Some(package.initial_path()),
        report,
    );
    Ok((member, server))
}

/// Runs the node over the REST API of `config.ledger` until its roles finish or SIGINT/SIGTERM;
/// the member stops once it holds round `until_round`'s global model.
pub async fn run(config: &NodeConfig, until_round: Option<u64>) -> Result<()> {
    let ledger = Arc::new(RestLedger::new(
        &config.ledger,
        Duration::try_from_secs_f64(config.wait_seconds)?,
    )?);
    run_with(ledger, config, until_round).await
}

/// Runs the roles of `config` over `ledger` (any [`Ledger`]) until they finish or a signal.
pub async fn run_with<L: Ledger>(
    ledger: Arc<L>,
    config: &NodeConfig,
    until_round: Option<u64>,
) -> Result<()> {
    let poll = Duration::try_from_secs_f64(config.poll_seconds)?;
    let mut coordinator = match &config.coordinator {
        Some(c) => {
            let admin = Signer::from_file(&c.key).map_err(|e| Error::file("reading", &c.key, e))?;
            Some(Coordinator::new(ledger.clone(), admin, c.schedule.clone()))
        }
        None => None,
    };
    let (mut member, server) = match &config.member {
        Some(m) => {
            // The ledger may not hold the consortium yet: wait for it.
            loop {
                match ledger.state().await {
                    Ok(s) if s.consortium.is_some() => break,
                    Ok(_) => tracing::info!("waiting for the consortium to be initialized"),
                    Err(e) => tracing::warn!(error = %e, "ledger not reachable yet"),
                }
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = shutdown() => return Ok(()),
                }
            }
            let (member, server) = start_member(ledger.clone(), m, until_round).await?;
            (Some(member), Some(server))
        }
        None => (None, None),
    };
    tracing::info!(ledger = %ledger.describe(), coordinator = coordinator.is_some(), member = member.is_some(), "node running");
    let mut head = String::new();
    let outcome = loop {
        let state = match ledger.state().await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "ledger unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(poll) => continue,
                    () = shutdown() => break Ok(()),
                }
            }
        };
        let mut finished = true;
        if let Some(c) = &mut coordinator {
            match c.tick(&state).await {
                Ok(CoordinatorStatus::Finished) => {}
                Ok(CoordinatorStatus::Working) => finished = false,
                Err(e) => {
                    tracing::warn!(error = %e, "coordinator");
                    finished = false;
                }
            }
        }
        if let Some(m) = &mut member {
            match m.tick(&state).await {
                Ok(MemberStatus::Finished) => {}
                Ok(MemberStatus::Working) => finished = false,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "member");
                    finished = false;
                }
            }
        }
        if finished {
            if server.is_some() {
                // A member still fetching the last global model may need this node's copy.
                tracing::info!(
                    seconds = LINGER.as_secs(),
                    "every role finished; serving a while longer"
                );
                tokio::select! {
                    () = tokio::time::sleep(LINGER) => {}
                    () = shutdown() => {}
                }
            }
            tracing::info!("every role finished");
            break Ok(());
        }
        let moved = state.head != head;
        head = state.head;
        tokio::select! {
            () = ledger.changed(&head, if moved { Duration::from_millis(50) } else { poll }) => {}
            () = shutdown() => {
                tracing::info!("signal: stopping");
                break Ok(());
            }
        }
    };
    if let Some(server) = server {
        server.abort();
    }
    outcome
}

/// Resolves on SIGINT or SIGTERM (the node's and the demo's clean stop).
pub(crate) async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(extra: &str) -> std::result::Result<NodeConfig, toml::de::Error> {
        toml::from_str(&format!(
            "[member]\nname = \"m\"\nkey = \"k\"\npackage = \"p\"\ndata = \"d\"\nstore = \"s\"\n\
             listen = \"127.0.0.1:0\"\n{extra}"
        ))
    }

    /// A colluder's noise is read from the file, 0 when absent, and a negative one refused
    /// with a message that names it.
    #[test]
    fn collusion_noise_is_read_and_checked() {
        let none = member("").unwrap().member.unwrap();
        assert_eq!(
            none.collusion_noise,
            crate::demo::attack::CollusionNoise::NONE
        );
        let noisy = member("collusion_noise = 0.25").unwrap().member.unwrap();
        assert_eq!(noisy.collusion_noise.value(), 0.25);
        let err = member("collusion_noise = -1.0").unwrap_err().to_string();
        assert!(err.contains("collusion noise -1"), "{err}");
        // Written back without the field when there is no noise.
        assert!(!toml::to_string(&member("").unwrap())
            .unwrap()
            .contains("collusion_noise"));
    }

    /// An adaptive attacker's blind projection is read from the file, off when absent and then
    /// not written back.
    #[test]
    fn blind_projection_is_read_and_off_by_default() {
        assert!(!member("").unwrap().member.unwrap().blind_projection);
        let blind = member("blind_projection = true").unwrap();
        assert!(blind.member.as_ref().unwrap().blind_projection);
        assert!(toml::to_string(&blind)
            .unwrap()
            .contains("blind_projection = true"));
        assert!(!toml::to_string(&member("").unwrap())
            .unwrap()
            .contains("blind_projection"));
    }
}
