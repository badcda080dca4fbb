//! One ZMQ `DEALER` connection to a validator's component endpoint, with correlation of replies.
//!
//! Every message is one frame holding a `validator.Message` (type, correlation id, content), as
//! the SDK sends it. Requests from the validator (`TP_PROCESS_REQUEST`, `PING_REQUEST`) that
//! arrive while the processor waits for a reply are queued, or answered at once for pings;
//! replies to requests still outstanding are kept until asked for; anything else is dropped
//! with a debug log. A socket monitor reports the validator going away.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use sawtooth_sdk::messages::network::PingResponse;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as Type};

/// What a wait produced.
pub(crate) enum Inbound {
    /// The message waited for.
    Message(Message),
    /// Nothing within the timeout.
    Idle,
    /// The validator went away.
    Disconnected,
}

/// What [`Connection::wait`] waits for.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// The reply with this correlation id.
    Reply(&'a str),
    /// The next request from the validator.
    Request,
}

/// A connection (see the module documentation).
pub(crate) struct Connection {
    socket: zmq::Socket,
    monitor: zmq::Socket,
    /// Validator requests received while waiting for a reply, in arrival order.
    queued: VecDeque<Message>,
    /// Correlation ids of our requests whose replies have not been taken yet.
    outstanding: HashSet<String>,
    /// Replies that arrived before they were asked for.
    early: HashMap<String, Message>,
    prefix: String,
    next_id: u64,
    disconnected: bool,
}

impl Connection {
    /// Connects a new socket to `endpoint`; `attempt` keeps the monitor's address unique.
    pub(crate) fn open(zmq: &zmq::Context, endpoint: &str, attempt: u64) -> zmq::Result<Self> {
        let socket = zmq.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        let monitor_address = format!("inproc://bcfl-tp-monitor-{attempt}");
        socket.monitor(&monitor_address, zmq::SocketEvent::DISCONNECTED as i32)?;
        let monitor = zmq.socket(zmq::PAIR)?;
        monitor.connect(&monitor_address)?;
        socket.connect(endpoint)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(Self {
            socket,
            monitor,
            queued: VecDeque::new(),
            outstanding: HashSet::new(),
            early: HashMap::new(),
            prefix: format!("{:x}-{nanos:x}-{attempt}-", std::process::id()),
            next_id: 0,
            disconnected: false,
        })
    }

    /// Whether the monitor reported the validator gone.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.disconnected
    }

    /// Sends one message with the given correlation id (a reply, or a request).
    pub(crate) fn send(&mut self, kind: Type, correlation_id: &str, content: Vec<u8>) {
        let mut message = Message::new();
        message.set_message_type(kind);
        message.set_correlation_id(correlation_id.to_owned());
        message.set_content(content);
        let sent = message
            .write_to_bytes()
            .map_err(|e| e.to_string())
            .and_then(|bytes| self.socket.send(bytes, 0).map_err(|e| e.to_string()));
        if let Err(err) = sent {
            // A DEALER send only fails when the socket itself is unusable.
            tracing::warn!(%err, "cannot send to the validator");
            self.disconnected = true;
        }
    }

    /// Sends a request and returns its correlation id; take the reply with [`Connection::reply`].
    pub(crate) fn request(&mut self, kind: Type, content: Vec<u8>) -> String {
        self.next_id += 1;
        let id = format!("{}{:x}", self.prefix, self.next_id);
        self.outstanding.insert(id.clone());
        self.send(kind, &id, content);
        id
    }

    /// Waits up to `timeout` for the reply to request `id`.
    pub(crate) fn reply(&mut self, id: &str, timeout: Duration) -> Inbound {
        if let Some(reply) = self.early.remove(id) {
            self.outstanding.remove(id);
            return Inbound::Message(reply);
        }
        self.wait(Want::Reply(id), timeout)
    }

    /// The next validator request (queued ones first), waiting up to `timeout`.
    pub(crate) fn next_request(&mut self, timeout: Duration) -> Inbound {
        match self.queued.pop_front() {
            Some(message) => Inbound::Message(message),
            None => self.wait(Want::Request, timeout),
        }
    }

    /// Receives until the message `want` names arrives; everything else on the way is queued
    /// (validator requests while waiting for a reply), answered (pings, likewise), kept (replies
    /// still outstanding) or dropped.
    fn wait(&mut self, want: Want<'_>, timeout: Duration) -> Inbound {
        let deadline = Instant::now() + timeout;
        loop {
            let message = match self.receive(deadline) {
                Inbound::Message(message) => message,
                other => return other,
            };
            let kind = message.get_message_type();
            let request = matches!(kind, Type::TP_PROCESS_REQUEST | Type::PING_REQUEST);
            match want {
                Want::Request if request => return Inbound::Message(message),
                Want::Reply(_) if kind == Type::PING_REQUEST => self.pong(&message),
                Want::Reply(_) if request => self.queued.push_back(message),
                Want::Reply(id) if message.get_correlation_id() == id => {
                    self.outstanding.remove(id);
                    return Inbound::Message(message);
                }
                _ => self.keep_or_drop(message),
            }
        }
    }

    fn keep_or_drop(&mut self, message: Message) {
        let id = message.get_correlation_id();
        if self.outstanding.contains(id) {
            self.early.insert(id.to_owned(), message);
        } else {
            tracing::debug!(
                kind = ?message.get_message_type(),
                correlation_id = id,
                "dropping a message nobody waits for"
            );
        }
    }

    fn pong(&mut self, ping: &Message) {
        match PingResponse::new().write_to_bytes() {
            Ok(content) => self.send(Type::PING_RESPONSE, ping.get_correlation_id(), content),
            Err(err) => tracing::warn!(%err, "cannot encode a PingResponse"),
        }
    }

    /// Receives one well-formed message before `deadline`.
    fn receive(&mut self, deadline: Instant) -> Inbound {
        loop {
            if self.disconnected {
                return Inbound::Disconnected;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut items = [
                self.socket.as_poll_item(zmq::POLLIN),
                self.monitor.as_poll_item(zmq::POLLIN),
            ];
            let timeout_ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
            match zmq::poll(&mut items, timeout_ms) {
                Ok(_) => {}
                // A signal (SIGTERM) interrupted the wait: let the caller look at its stop flag.
                Err(zmq::Error::EINTR) => return Inbound::Idle,
                Err(err) => {
                    tracing::warn!(%err, "polling the validator socket failed");
                    self.disconnected = true;
                    return Inbound::Disconnected;
                }
            }
            let (readable, monitor_event) = (items[0].is_readable(), items[1].is_readable());
            if monitor_event {
                // The only event subscribed to is DISCONNECTED.
                let _ = self.monitor.recv_multipart(0);
                self.disconnected = true;
                return Inbound::Disconnected;
            }
            if !readable {
                if Instant::now() >= deadline {
                    return Inbound::Idle;
                }
                continue;
            }
            let frames = match self.socket.recv_multipart(0) {
                Ok(frames) => frames,
                Err(zmq::Error::EINTR) => return Inbound::Idle,
                Err(err) => {
                    tracing::warn!(%err, "receiving from the validator failed");
                    self.disconnected = true;
                    return Inbound::Disconnected;
                }
            };
            match frames.last().map(|frame| Message::parse_from_bytes(frame)) {
                Some(Ok(message)) => return Inbound::Message(message),
                Some(Err(err)) => tracing::warn!(%err, "dropping a malformed message"),
                None => tracing::debug!("dropping an empty message"),
            }
        }
    }
}
