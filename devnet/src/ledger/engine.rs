//! The component endpoint: one thread that owns the ZMQ ROUTER socket (spec 1.1).
//!
//! zmq sockets are not thread-safe, so everything that talks to processors runs here: frame
//! handling, registration, block building ([`super::publisher`]), state requests, pings and
//! disconnect detection. Other threads reach the loop through the [`Waker`] (an inproc PUSH
//! socket): submissions only put batches in the shared pool and wake the loop.
//!
//! Liveness: every identity silent for 10 s gets a `PING_REQUEST` every 10 s. The ROUTER is in
//! `ROUTER_MANDATORY` mode, so sending to a vanished identity fails at once (EHOSTUNREACH) and that
//! connection's registrations are dropped. On a ZMQ `DISCONNECTED` monitor event (which does not
//! say which peer left) every registered processor is pinged; a processor that neither answers nor
//! fails within 10 s is dropped. A dropped processor's in-flight transaction is retried.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use sawtooth_sdk::messages::network::PingRequest;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};

use super::committer::{CommitEvent, SealJob};
use super::error::Result;
use super::publisher::{BlockBuild, HeadCache, Overlay};
use super::registry::Registry;
use super::settings::FamilyAllowList;
use super::Shared;

/// How long an identity may be silent before it is pinged, and the ping period.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long processors have to answer the pings sent after a disconnect event.
pub const LIVENESS_GRACE: Duration = Duration::from_secs(10);

/// Wakes the component loop from other threads.
pub struct Waker {
    socket: Mutex<zmq::Socket>,
}

impl Waker {
    /// Wakes the loop (never blocks; a full pipe means a wake-up is already pending).
    pub fn wake(&self) {
        if let Ok(socket) = self.socket.lock() {
            let _ = socket.send(&[][..], zmq::DONTWAIT);
        }
    }
}

/// Engine settings taken from the devnet config.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Minimum time between block starts.
    pub block_interval: Duration,
    /// Maximum batches per block (0: unlimited).
    pub max_batches_per_block: usize,
    /// Pending batches that trigger a block at once.
    pub publish_threshold: usize,
    /// Retries after INTERNAL_ERROR before the batch is invalid.
    pub max_retries: u32,
    /// How long a processor may take for one transaction.
    pub processor_timeout: Duration,
    /// Transactions in flight at once (1: serial execution).
    pub max_inflight: usize,
}

/// A request a processor is working on (keyed by its correlation id).
pub(super) struct InFlight {
    pub context_id: String,
    pub identity: Vec<u8>,
    pub deadline: Instant,
}

/// A block handed to the committer and not yet committed.
pub(super) struct Outstanding {
    pub writes: Arc<Overlay>,
    pub batch_ids: Vec<String>,
    pub txn_ids: Vec<String>,
}

/// Per-identity liveness bookkeeping.
pub(super) struct Peer {
    pub last_seen: Instant,
    pub last_ping: Option<Instant>,
}

/// The component loop (see the module docs).
pub struct Engine {
    pub(super) router: zmq::Socket,
    monitor: zmq::Socket,
    wake: zmq::Socket,
    pub(super) shared: Arc<Shared>,
    pub(super) settings: EngineSettings,
    pub(super) registry: Registry,
    pub(super) peers: HashMap<Vec<u8>, Peer>,
    pub(super) block: Option<BlockBuild>,
    /// The allow-list of the state the current block builds on.
    pub(super) families: FamilyAllowList,
    /// Head-state values read so far (see [`HeadCache`]).
    pub(super) head_cache: HeadCache,
    /// Requests with processors, by correlation id.
    pub(super) inflight: HashMap<String, InFlight>,
    pub(super) avoid: Option<Vec<u8>>,
    pub(super) last_block_start: Option<Instant>,
    /// True when the last block left nothing pending: the next batch is published at once.
    pub(super) idle: bool,
    pub(super) jobs: Option<Sender<SealJob>>,
    events: Receiver<CommitEvent>,
    committer: Option<JoinHandle<()>>,
    /// Blocks with the committer, oldest first.
    pub(super) committing: VecDeque<Outstanding>,
    /// Bumped when a commit fails, so blocks built on the failed one are dropped.
    pub(super) generation: u64,
    awaiting_pong: HashSet<Vec<u8>>,
    liveness_deadline: Option<Instant>,
    reprobe_at: Vec<Instant>,
}

impl Engine {
    /// Binds the ROUTER on `endpoint` and prepares the monitor and wake sockets. Returns the
    /// engine, the waker and the actual bound endpoint (with the real port if 0 was asked).
    pub fn bind(
        endpoint: &str,
        shared_init: impl FnOnce(Waker, String) -> Arc<Shared>,
        settings: EngineSettings,
    ) -> Result<(Self, Arc<Shared>)> {
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER)?;
        router.set_router_mandatory(true)?;
        router.set_linger(0)?;
        router.set_sndhwm(100_000)?;
        router.set_rcvhwm(100_000)?;
        router.bind(endpoint)?;
        let bound = router
            .get_last_endpoint()?
            .map_err(|raw| super::error::LedgerError::Config(format!("bad endpoint {raw:?}")))?;
        let tag = super::uuid4_hex();
        let monitor_ep = format!("inproc://devnet-monitor-{tag}");
        router.monitor(&monitor_ep, zmq::SocketEvent::DISCONNECTED as i32)?;
        let monitor = ctx.socket(zmq::PAIR)?;
        monitor.connect(&monitor_ep)?;
        let wake_ep = format!("inproc://devnet-wake-{tag}");
        let wake = ctx.socket(zmq::PULL)?;
        wake.bind(&wake_ep)?;
        let push = ctx.socket(zmq::PUSH)?;
        push.set_sndhwm(1)?;
        push.set_linger(0)?;
        push.connect(&wake_ep)?;
        let shared = shared_init(
            Waker {
                socket: Mutex::new(push),
            },
            bound,
        );
        let (jobs, job_rx) = std::sync::mpsc::channel();
        let (event_tx, events) = std::sync::mpsc::channel();
        let committer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("devnet-committer".into())
                .spawn(move || super::committer::run(shared, job_rx, event_tx))?
        };
        let engine = Self {
            router,
            monitor,
            wake,
            shared: Arc::clone(&shared),
            settings,
            registry: Registry::default(),
            peers: HashMap::new(),
            block: None,
            families: FamilyAllowList::default(),
            head_cache: HeadCache::default(),
            inflight: HashMap::new(),
            avoid: None,
            last_block_start: None,
            idle: true,
            jobs: Some(jobs),
            events,
            committer: Some(committer),
            committing: VecDeque::new(),
            generation: 0,
            awaiting_pong: HashSet::new(),
            liveness_deadline: None,
            reprobe_at: Vec::new(),
        };
        Ok((engine, shared))
    }

    /// Runs until shutdown is requested.
    pub fn run(mut self) {
        tracing::info!("component loop started");
        while !self.shared.shutdown.load(Ordering::Acquire) {
            let timeout = self.poll_timeout();
            let (router_ready, monitor_ready, wake_ready) = {
                let mut items = [
                    self.router.as_poll_item(zmq::POLLIN),
                    self.monitor.as_poll_item(zmq::POLLIN),
                    self.wake.as_poll_item(zmq::POLLIN),
                ];
                if let Err(err) = zmq::poll(&mut items, timeout) {
                    tracing::error!(%err, "zmq poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                (
                    items[0].is_readable(),
                    items[1].is_readable(),
                    items[2].is_readable(),
                )
            };
            if wake_ready {
                while self.wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
            }
            if monitor_ready {
                self.drain_monitor();
            }
            if router_ready {
                self.drain_router();
            }
            self.drain_commit_events();
            self.check_timers();
            self.drive();
        }
        // Let the committer finish the blocks it holds, then stop it.
        drop(self.jobs.take());
        if let Some(committer) = self.committer.take() {
            if committer.join().is_err() {
                tracing::error!("the committer panicked");
            }
        }
        tracing::info!("component loop stopped");
    }

    fn drain_commit_events(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                CommitEvent::Committed => {
                    if let Some(block) = self.committing.pop_front() {
                        self.head_cache.forget(&block.writes);
                    }
                }
                CommitEvent::Failed(generation) if generation == self.generation => {
                    // Everything built on the failed block is void; its batches are still
                    // pending and will be executed again.
                    self.generation += 1;
                    self.committing.clear();
                    self.head_cache.clear();
                    self.block = None;
                }
                CommitEvent::Failed(_) => {}
            }
        }
    }

    fn poll_timeout(&self) -> i64 {
        let now = Instant::now();
        let mut until = now + Duration::from_secs(1);
        if let Some(deadline) = self.inflight.values().map(|f| f.deadline).min() {
            until = until.min(deadline);
        }
        if let Some(d) = self.liveness_deadline {
            until = until.min(d);
        }
        if let Some(r) = self.reprobe_at.iter().min() {
            until = until.min(*r);
        }
        // A block timer only matters when batches wait that are not already with the committer
        // (whose events wake the loop anyway).
        let outstanding: usize = self.committing.iter().map(|o| o.batch_ids.len()).sum();
        if self.block.is_none()
            && self.committing.len() < super::handlers::MAX_OUTSTANDING
            && self.shared.pool.pending_len() > outstanding
        {
            let next = match self.last_block_start {
                Some(t) if !self.idle => t + self.settings.block_interval,
                _ => now,
            };
            until = until.min(next);
        }
        until.saturating_duration_since(now).as_millis() as i64
    }

    fn drain_router(&mut self) {
        for _ in 0..10_000 {
            match self.router.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => self.on_frames(frames),
                Err(zmq::Error::EAGAIN) => return,
                Err(err) => {
                    tracing::error!(%err, "router receive failed");
                    return;
                }
            }
        }
    }

    fn on_frames(&mut self, mut frames: Vec<Vec<u8>>) {
        if frames.len() != 2 {
            tracing::warn!(
                frames = frames.len(),
                "ignoring a message that is not [identity, message]"
            );
            return;
        }
        let body = frames.pop().unwrap_or_default();
        let identity = frames.pop().unwrap_or_default();
        self.seen(&identity);
        if body.is_empty() {
            if let Err(err) = self
                .router
                .send_multipart([identity.as_slice(), &[]], zmq::DONTWAIT)
            {
                tracing::debug!(%err, "probe echo failed");
            }
            return;
        }
        match Message::parse_from_bytes(&body) {
            Ok(msg) => self.on_message(identity, msg),
            Err(err) => tracing::warn!(%err, "ignoring an undecodable message from a component"),
        }
    }

    fn seen(&mut self, identity: &[u8]) {
        self.awaiting_pong.remove(identity);
        let now = Instant::now();
        self.peers
            .entry(identity.to_vec())
            .and_modify(|p| p.last_seen = now)
            .or_insert(Peer {
                last_seen: now,
                last_ping: None,
            });
    }

    /// Sends one message; a vanished identity is dropped.
    pub(super) fn send(
        &mut self,
        identity: &[u8],
        message_type: Message_MessageType,
        correlation_id: &str,
        content: &dyn protobuf::Message,
    ) -> std::result::Result<(), zmq::Error> {
        let mut msg = Message::new();
        msg.set_message_type(message_type);
        msg.set_correlation_id(correlation_id.to_string());
        msg.set_content(content.write_to_bytes().unwrap_or_default());
        let bytes = msg.write_to_bytes().unwrap_or_default();
        let result = self
            .router
            .send_multipart([identity, bytes.as_slice()], zmq::DONTWAIT);
        if let Err(err) = result {
            tracing::warn!(%err, identity = %hex::encode(identity), ?message_type, "send failed");
            if err == zmq::Error::EHOSTUNREACH {
                self.drop_connection(identity, "connection is gone");
            }
        }
        result
    }

    /// Forgets a connection: its registrations, its liveness record, and its in-flight work
    /// (retried elsewhere).
    pub(super) fn drop_connection(&mut self, identity: &[u8], why: &str) {
        self.peers.remove(identity);
        self.awaiting_pong.remove(identity);
        if self.registry.unregister(identity) {
            tracing::info!(identity = %hex::encode(identity), why, "processor dropped");
        }
        let lost: Vec<String> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.identity == identity)
            .map(|(cid, _)| cid.clone())
            .collect();
        for cid in lost {
            let flight = self.inflight.remove(&cid).expect("listed above");
            self.fail_running(
                flight,
                format!("transaction processor disconnected ({why})"),
            );
        }
    }

    fn drain_monitor(&mut self) {
        let mut disconnected = false;
        while let Ok(frames) = self.monitor.recv_multipart(zmq::DONTWAIT) {
            let event = frames
                .first()
                .and_then(|f| f.get(..2))
                .map(|b| u16::from_le_bytes([b[0], b[1]]));
            disconnected |= event == Some(zmq::SocketEvent::DISCONNECTED as u16);
        }
        if disconnected {
            tracing::debug!("a component disconnected; checking processors");
            let now = Instant::now();
            self.reprobe_at = vec![
                now + Duration::from_millis(50),
                now + Duration::from_millis(500),
            ];
            self.probe_registered();
            self.liveness_deadline = Some(now + LIVENESS_GRACE);
        }
    }

    fn probe_registered(&mut self) {
        for identity in self.registry.identities() {
            self.awaiting_pong.insert(identity.clone());
            self.ping(&identity);
        }
    }

    fn ping(&mut self, identity: &[u8]) {
        let id = super::uuid4_hex();
        if let Some(peer) = self.peers.get_mut(identity) {
            peer.last_ping = Some(Instant::now());
        }
        let _ = self.send(
            identity,
            Message_MessageType::PING_REQUEST,
            &id,
            &PingRequest::new(),
        );
    }

    fn check_timers(&mut self) {
        let now = Instant::now();
        let late: Vec<String> = self
            .inflight
            .iter()
            .filter(|(_, f)| now >= f.deadline)
            .map(|(cid, _)| cid.clone())
            .collect();
        for cid in late {
            let flight = self.inflight.remove(&cid).expect("listed above");
            self.registry.release(&flight.identity);
            tracing::warn!(identity = %hex::encode(&flight.identity), "processor timed out");
            self.fail_running(flight, "transaction processor timed out".into());
        }
        let due = self.reprobe_at.len();
        self.reprobe_at.retain(|t| *t > now);
        if self.reprobe_at.len() != due {
            let waiting: Vec<Vec<u8>> = self.awaiting_pong.iter().cloned().collect();
            for identity in waiting {
                self.ping(&identity);
            }
        }
        if self.liveness_deadline.is_some_and(|d| now >= d) {
            self.liveness_deadline = None;
            let silent: Vec<Vec<u8>> = self.awaiting_pong.drain().collect();
            for identity in silent {
                self.drop_connection(&identity, "no answer to ping after a disconnect");
            }
        }
        let stale: Vec<Vec<u8>> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                now.duration_since(p.last_seen) >= PING_INTERVAL
                    && p.last_ping
                        .is_none_or(|t| now.duration_since(t) >= PING_INTERVAL)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for identity in stale {
            self.ping(&identity);
        }
    }
}
