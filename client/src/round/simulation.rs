//! Many members in one process: the real roles ([`Coordinator`], [`Member`]) over the
//! in-memory ledger ([`MemoryLedger`], the processor's real rules), each member with its own
//! key, blob store and blob server on loopback. `bcfl fl simulate` runs on it: the same round
//! code as `bcfl node run`, without the processes and the validator.
//!
//! The members tick one after another in one task, so their training runs in turn (they
//! usually share one [`SharedModel`](super::model::SharedModel)); the coordinator opens each
//! round, the aggregator evaluates (the processor computes the verdict), fetches the accepted
//! updates over HTTP from the other members' blob servers, checks them against their
//! commitments, aggregates and commits, and every member fetches, checks and (with a held-out
//! set) scores the global model. Each member is registered with its
//! [`SimulatedMember::max_samples`] cap (`bcfl fl simulate` gives its shard's size; the attack
//! benchmark none, to measure what detection alone catches of an inflated claim).
//!
//! Links: no bandwidth probes run (every member is on loopback, so probes would measure the
//! same machine). Instead [`SimulationConfig::links`] may give link measurements by member
//! name; before round 1 each member reports its outgoing ones through a real `ReportBandwidth`
//! transaction signed with its own key, so the anomaly evidence (PageRank over `1/B_ij`, the
//! bandwidth features), the aggregator's choice and the fetch routes (Bellman-Ford over
//! `M / B_ij`) see them exactly as they would see probed links. Without links the aggregator
//! is the first member in good standing by key, and fetches go straight to the holder.
//!
//! Keys are derived from [`SimulationConfig::seed`] and the members' names, so a simulation
//! rerun with the same settings writes the same ledger (the same keys, the same order of the
//! members in verdicts and aggregates). [`SimulationOutcome::global`] is the newest global
//! model, read back from a member's store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bcfl_protos::bcfl as pb;

use super::coordinator::{Coordinator, CoordinatorConfig, CoordinatorStatus};
use super::ledger::Ledger;
use super::member::{Member, MemberConfig, MemberStatus, CHUNK_SIZE};
use super::memory::MemoryLedger;
use super::model::Trainer;
use super::report::{NodeEvent, Report};
use super::summary::{round_done, round_report, MemberInfo, RoundReport};
use super::{Error, Result};
use crate::demo::attack::{AttackKind, CollusionNoise};
use bcfl_fed::digest::sha256_hex;
use bcfl_fed::update::{Encoding, Update};
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_ledger::state::FamilyState;
use bcfl_net::auth::PeerClient;
use bcfl_net::blob::BlobStore;
use bcfl_net::manifest::BlobId;
use bcfl_net::probe::ProbeConfig;
use bcfl_net::server::{NodeServer, DEFAULT_MAX_PROBE_BYTES};
use bcfl_net::transfer::{http_client, Transfers};

/// One simulated member.
pub struct SimulatedMember {
    /// Its name.
    pub name: String,
    /// Its model and data.
    pub trainer: Box<dyn Trainer>,
    /// Testing misbehaviour.
    pub attack: Option<AttackKind>,
    /// Extra time after training, as a multiple of the training time.
    pub slowdown: f64,
    /// The sample cap registered with it (`RegisterMember.max_samples`, its shard's size as
    /// `bcfl demo` registers it): the processor refuses a commitment that claims more. 0: none.
    pub max_samples: u64,
}

/// A simulation's settings.
#[derive(Debug, Clone)]
pub struct SimulationConfig {
    /// The consortium's parameters (the initial model's hash is filled in).
    pub params: pb::ConsortiumParams,
    /// The coordinator's schedule.
    pub schedule: CoordinatorConfig,
    /// The initial trainable tensors (round 1's parent).
    pub initial: Update,
    /// Encoding of the update blobs.
    pub encoding: Encoding,
    /// Seed of local training.
    pub seed: u64,
    /// Blob stores go here.
    pub work_dir: PathBuf,
    /// Whether the first member has a held-out set (each round's report then waits for its
    /// score).
    pub first_scores: bool,
    /// Link measurements reported before round 1, `from` and `to` being member names; each
    /// link's newest sample is reported by `from` (see the module docs). Empty: none.
    pub links: Vec<pb::Link>,
    /// How far each colluding attacker moves its copy of the crafted update
    /// ([`crate::demo::attack::perturbed`]).
    pub collusion_noise: CollusionNoise,
    /// Adaptive attackers hide from another projection than the round's
    /// ([`super::member::MemberConfig::blind_projection`]).
    pub blind_projection: bool,
}

/// What a simulation leaves.
pub struct SimulationOutcome {
    /// The ledger's final state.
    pub state: FamilyState,
    /// Every member's events.
    pub events: Vec<NodeEvent>,
    /// The members.
    pub members: Vec<MemberInfo>,
    /// One report per round.
    pub rounds: Vec<RoundReport>,
    /// The newest global model on chain (the initial model when no round aggregated), checked
    /// against its on-chain SHA-256.
    pub global: Update,
}

impl SimulationOutcome {
    /// The name of the member whose key is `key` (the key itself for one not among them).
    pub fn name_of(&self, key: &str) -> String {
        self.members
            .iter()
            .find(|m| m.key == key)
            .map_or_else(|| key.to_owned(), |m| m.name.clone())
    }

    /// The key of the member called `name`, if one is.
    pub fn key_of(&self, name: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.key.as_str())
    }
}

/// A key derived from the simulation's seed and a label (a member's name, or `admin`).
fn derived_key(seed: u64, label: &str) -> Result<PrivateKey> {
    PrivateKey::from_hex(&sha256_hex(
        format!("bcfl simulation key {seed} {label}").as_bytes(),
    ))
    .map_err(|e| Error::Config(format!("deriving the simulation key of {label}: {e}")))
}

/// Each member's `ReportBandwidth` of its outgoing `links` (named by member name).
async fn report_links(
    ledger: &MemoryLedger,
    links: &[pb::Link],
    signers: &[(String, Signer)],
) -> Result<()> {
    let key_of = |name: &str| {
        signers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.public_key().as_hex().to_owned())
            .ok_or_else(|| {
                Error::Config(format!("link endpoint {name:?} is not a simulated member"))
            })
    };
    for (name, signer) in signers {
        let mut by_epoch: std::collections::BTreeMap<u64, Vec<pb::LinkMeasurement>> =
            Default::default();
        for link in links.iter().filter(|l| &l.from == name) {
            let Some(sample) = link.samples.last() else {
                continue;
            };
            by_epoch
                .entry(sample.epoch)
                .or_default()
                .push(pb::LinkMeasurement {
                    to: key_of(&link.to)?,
                    bytes_per_sec: sample.bytes_per_sec.max(1),
                    rtt_us: sample.rtt_us,
                    probe_bytes: sample.probe_bytes.max(1),
                    ..Default::default()
                });
        }
        for (epoch, measurements) in by_epoch {
            let mut payload = pb::BcflPayload::new();
            payload.set_report_bandwidth(pb::ReportBandwidth {
                epoch,
                measurements: measurements.into(),
                ..Default::default()
            });
            ledger
                .submit(signer, payload, &format!("ReportBandwidth {name}"))
                .await?;
        }
    }
    Ok(())
}

/// Runs `config.schedule.rounds` rounds of `members`; `on_round` sees each round's report as
/// it completes.
pub async fn simulate(
    config: SimulationConfig,
    members: Vec<SimulatedMember>,
    mut on_round: impl FnMut(&RoundReport),
) -> Result<SimulationOutcome> {
    let ledger = Arc::new(MemoryLedger::new());
    let admin = Signer::new(derived_key(config.seed, "admin")?);
    let initial_bytes = config.initial.to_bytes(Encoding::F32);
    let initial_path = config.work_dir.join("initial.safetensors");
    std::fs::create_dir_all(&config.work_dir)?;
    std::fs::write(&initial_path, &initial_bytes)?;
    let mut params = config.params.clone();
    params.initial_model_sha256 = sha256_hex(&initial_bytes);
    let mut init = pb::BcflPayload::new();
    init.set_init_consortium(pb::InitConsortium {
        admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
        params: Some(params).into(),
        ..Default::default()
    });
    ledger.submit(&admin, init, "InitConsortium").await?;

    let http = http_client(Duration::from_secs(3));
    let rounds = config.schedule.rounds;
    let mut nodes = Vec::with_capacity(members.len());
    let mut servers = Vec::with_capacity(members.len());
    let mut infos = Vec::with_capacity(members.len());
    let mut reporters = Vec::with_capacity(members.len());
    let mut stores = Vec::with_capacity(members.len());
    // Colluding attackers know each other.
    let mut colluders = BTreeSet::new();
    for m in members
        .iter()
        .filter(|m| m.attack.is_some_and(AttackKind::colludes))
    {
        let key = derived_key(config.seed, &m.name)?;
        colluders.insert(Signer::new(key).public_key().as_hex().to_owned());
    }
    for m in members {
        let signer = Signer::new(derived_key(config.seed, &m.name)?);
        reporters.push((
            m.name.clone(),
            Signer::new(derived_key(config.seed, &m.name)?),
        ));
        let store_dir = config.work_dir.join(&m.name);
        let store = Arc::new(
            BlobStore::open(&store_dir, CHUNK_SIZE)
                .map_err(|e| Error::file("opening", &store_dir, e))?,
        );
        stores.push(store.clone());
        let http = PeerClient::new(http.clone(), Arc::new(signer.clone()));
        let transfers = Arc::new(Transfers::new(store, http.clone()));
        let (addr, server) = NodeServer::new(transfers.clone(), DEFAULT_MAX_PROBE_BYTES)
            .spawn(([127, 0, 0, 1], 0).into())
            .await?;
        servers.push(server);
        let endpoint = format!("http://{addr}");
        let mut register = pb::BcflPayload::new();
        register.set_register_member(pb::RegisterMember {
            public_key: signer.public_key().as_hex().to_owned(),
            name: m.name.clone(),
            endpoint: endpoint.clone(),
            max_samples: m.max_samples,
            ..Default::default()
        });
        ledger
            .submit(&admin, register, &format!("RegisterMember {}", m.name))
            .await?;
        infos.push(MemberInfo {
            name: m.name.clone(),
            key: signer.public_key().as_hex().to_owned(),
            endpoint,
            shard: 0,
            attack: m.attack.map(|a| a.to_string()),
            peak_rss_bytes: 0,
        });
        let member_config = MemberConfig {
            name: m.name,
            probe: ProbeConfig {
                bytes: 0,
                rtt_samples: 0,
            },
            probe_every: 0,
            commit_timeout: config.schedule.commit_timeout,
            seed: config.seed,
            attack: m.attack,
            colluders: if m.attack.is_some_and(AttackKind::colludes) {
                colluders.clone()
            } else {
                BTreeSet::new()
            },
            collusion_noise: config.collusion_noise,
            blind_projection: config.blind_projection,
            slowdown: m.slowdown,
            until_round: Some(rounds),
            encoding: config.encoding,
        };
        nodes.push(Member::new(
            ledger.clone(),
            signer,
            member_config,
            transfers,
            http.clone(),
            m.trainer,
            Some(initial_path.clone()),
            Report::new(None)?,
        ));
    }
    report_links(&ledger, &config.links, &reporters).await?;
    // The first member scores the global models when it has a held-out set.
    let scorer = infos
        .first()
        .map(|m| m.key.clone())
        .filter(|_| config.first_scores);
    let mut coordinator = Coordinator::new(ledger.clone(), admin, config.schedule.clone());
    let mut reports = Vec::new();
    let mut next = 1;
    let state = loop {
        let state = ledger.state().await?;
        let head = state.head.clone();
        let coordinator_done = coordinator.tick(&state).await? == CoordinatorStatus::Finished;
        let mut members_done = true;
        for node in &mut nodes {
            // Each member sees the ledger as the previous one left it.
            let state = ledger.state().await?;
            if node.tick(&state).await? == MemberStatus::Working {
                members_done = false;
            }
        }
        let state = ledger.state().await?;
        let events: Vec<NodeEvent> = nodes.iter().flat_map(|n| n.report().events()).collect();
        while next <= rounds && round_done(&state, next, &events, &[], scorer.as_deref()) {
            if let Some(report) = round_report(&state, next, &infos, &events) {
                on_round(&report);
                reports.push(report);
            }
            next += 1;
        }
        if coordinator_done && members_done {
            break state;
        }
        // A pass that moved the chain goes round again at once: the next step (a commitment
        // after the round opened, the verdict after the last commitment) is ready now.
        if state.head != head {
            continue;
        }
        // Nothing moved in a whole pass: someone waits for a deadline.
        ledger
            .changed(&state.head, Duration::from_millis(100))
            .await;
    };
    for server in servers {
        server.abort();
    }
    let events: Vec<NodeEvent> = nodes.iter().flat_map(|n| n.report().events()).collect();
    let global = match state.aggregates.values().next_back() {
        None => config.initial,
        Some(aggregate) => {
            let id = BlobId::parse(&aggregate.model_sha256)?;
            let store = stores
                .iter()
                .find(|s| s.contains(&id))
                .ok_or_else(|| Error::State("no member holds the last global model".into()))?;
            let bytes = std::fs::read(store.path(&id))?;
            if sha256_hex(&bytes) != aggregate.model_sha256 {
                return Err(Error::Integrity(
                    "the stored global model does not match the chain".into(),
                ));
            }
            Update::from_bytes(&bytes)?
        }
    };
    Ok(SimulationOutcome {
        state,
        events,
        members: infos,
        rounds: reports,
        global,
    })
}
