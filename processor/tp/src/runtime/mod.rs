//! A Sawtooth 1.2 transaction-processor runtime: the component protocol spoken directly on one
//! ZMQ `DEALER` socket, in the thread that applies the transactions.
//!
//! It replaces the SDK's `TransactionProcessor` loop in `bcfl-tp` for speed; any
//! [`TransactionHandler`] runs on it unchanged, and it speaks exactly the same messages
//! (`TpRegisterRequest` per family version, `TpProcessRequest`/`TpProcessResponse`, the
//! `TpState*`/`TpEventAdd`/`TpReceiptAddData` context requests, pings, `TpUnregisterRequest`).
//! What differs from the SDK, and why:
//!
//! - **No thread hops.** The SDK hands every message between the handler thread and a socket
//!   thread over channels, and that thread polls the socket and its outbound channel alternately
//!   with 10 ms timeouts. Here the handler's thread sends a context request and reads the reply
//!   from the socket itself: one round trip costs the two processes' work and nothing else.
//! - **Trailing writes are pipelined.** `set`, `delete`, receipt data and events are sent
//!   without waiting for their replies; the replies are collected ("settled") before the next
//!   state read and before the `TpProcessResponse`, so the validator has accepted every write
//!   before the transaction is reported done, and a read always sees the writes before it. A
//!   refused write fails the transaction exactly as it would have failed on the spot: the first
//!   failure, mapped by the caller's rules (see [`ProcessorError`] and `bcfl-tp`).
//! - **Registration is checked**: a `TpRegisterResponse` with status `ERROR` stops the processor
//!   with a clear error instead of waiting for requests that never come.
//! - Messages that arrive while a transaction waits for a context reply are kept in order:
//!   pings are answered at once, further process requests are queued and served next.
//!
//! A lost validator (the socket monitor reports a disconnect) makes the runtime reconnect and
//! register again, with a growing pause (up to 5 s). SIGINT/SIGTERM (through the shared `stop`
//! flag) finish the transaction in hand, unregister, and return.

mod connection;
mod context;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::network::PingResponse;
use sawtooth_sdk::messages::processor::{
    TpProcessRequest, TpProcessResponse, TpProcessResponse_Status, TpRegisterRequest,
    TpRegisterResponse, TpRegisterResponse_Status, TpUnregisterRequest,
};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as Type};
use sawtooth_sdk::processor::handler::{ApplyError, ContextError, TransactionHandler};
use thiserror::Error;

use connection::{Connection, Inbound};
pub use context::PipelinedContext;

/// A failure that stops the runtime.
#[derive(Debug, Error)]
pub enum ProcessorError {
    /// The endpoint cannot be used (bad address, ZMQ failure).
    #[error("cannot use the validator endpoint {endpoint}: {source}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// The ZMQ error.
        source: zmq::Error,
    },
    /// The validator refused to register the handler.
    #[error("the validator refused to register family {family} version {version}")]
    RegistrationRefused {
        /// Family name.
        family: String,
        /// Family version.
        version: String,
    },
    /// A message could not be encoded.
    #[error("cannot encode a message: {0}")]
    Encode(#[from] protobuf::ProtobufError),
}

/// How a context failure becomes the transaction's error; `bcfl-tp` passes the family's own
/// mapping (authorization failures are invalid transactions, transport failures internal).
pub type ContextErrorMap = fn(ContextError) -> ApplyError;

/// The runtime: one validator endpoint, one handler.
pub struct Processor<'h> {
    endpoint: String,
    handler: &'h dyn TransactionHandler,
    map_context_error: ContextErrorMap,
    stop: Arc<AtomicBool>,
}

/// Why a connection ended.
enum Ended {
    /// The stop flag was raised (and the processor unregistered).
    Stopped,
    /// The validator went away; connect again.
    Disconnected,
}

impl<'h> Processor<'h> {
    /// A runtime for `handler` against the validator at `endpoint` (for example
    /// `tcp://localhost:4004`); raising `stop` ends [`Processor::run`].
    pub fn new(
        endpoint: &str,
        handler: &'h dyn TransactionHandler,
        map_context_error: ContextErrorMap,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            handler,
            map_context_error,
            stop,
        }
    }

    /// Connects, registers and serves until the stop flag is raised.
    pub fn run(&self) -> Result<(), ProcessorError> {
        let zmq = zmq::Context::new();
        let mut pause = Duration::from_millis(100);
        let mut attempt = 0u64;
        while !self.stopped() {
            attempt += 1;
            let mut connection =
                Connection::open(&zmq, &self.endpoint, attempt).map_err(|source| {
                    ProcessorError::Endpoint {
                        endpoint: self.endpoint.clone(),
                        source,
                    }
                })?;
            match self.serve(&mut connection)? {
                Ended::Stopped => return Ok(()),
                Ended::Disconnected => {
                    tracing::warn!(endpoint = %self.endpoint, "validator disconnected; reconnecting");
                    drop(connection);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn serve(&self, connection: &mut Connection) -> Result<Ended, ProcessorError> {
        if !self.register(connection)? {
            return Ok(Ended::Disconnected);
        }
        tracing::info!(endpoint = %self.endpoint, family = %self.handler.family_name(), "registered");
        loop {
            if self.stopped() {
                self.unregister(connection)?;
                return Ok(Ended::Stopped);
            }
            let message = match connection.next_request(Duration::from_millis(200)) {
                Inbound::Message(message) => message,
                Inbound::Idle => continue,
                Inbound::Disconnected => return Ok(Ended::Disconnected),
            };
            match message.get_message_type() {
                Type::TP_PROCESS_REQUEST => {
                    if !self.process(connection, &message)? {
                        return Ok(Ended::Disconnected);
                    }
                }
                Type::PING_REQUEST => {
                    let pong = PingResponse::new().write_to_bytes()?;
                    connection.send(Type::PING_RESPONSE, message.get_correlation_id(), pong);
                }
                other => tracing::debug!(?other, "ignoring an unexpected message"),
            }
        }
    }

    /// Registers every version of the handler; false when the validator went away meanwhile.
    fn register(&self, connection: &mut Connection) -> Result<bool, ProcessorError> {
        let family = self.handler.family_name();
        for version in self.handler.family_versions() {
            let mut request = TpRegisterRequest::new();
            request.set_family(family.clone());
            request.set_version(version.clone());
            request.set_namespaces(RepeatedField::from_vec(self.handler.namespaces()));
            tracing::debug!(%family, %version, "sending TpRegisterRequest");
            let id = connection.request(Type::TP_REGISTER_REQUEST, request.write_to_bytes()?);
            let reply = loop {
                match connection.reply(&id, Duration::from_millis(500)) {
                    Inbound::Message(reply) => break reply,
                    Inbound::Disconnected => return Ok(false),
                    Inbound::Idle if self.stopped() => return Ok(false),
                    Inbound::Idle => continue,
                }
            };
            let response =
                TpRegisterResponse::parse_from_bytes(reply.get_content()).unwrap_or_default();
            if response.get_status() != TpRegisterResponse_Status::OK {
                return Err(ProcessorError::RegistrationRefused { family, version });
            }
        }
        Ok(true)
    }

    /// Tells the validator this processor leaves; waits up to a second for its answer.
    fn unregister(&self, connection: &mut Connection) -> Result<(), ProcessorError> {
        tracing::info!("sending TpUnregisterRequest");
        let id = connection.request(
            Type::TP_UNREGISTER_REQUEST,
            TpUnregisterRequest::new().write_to_bytes()?,
        );
        if !matches!(
            connection.reply(&id, Duration::from_secs(1)),
            Inbound::Message(_)
        ) {
            tracing::info!("no answer to the unregister request; leaving anyway");
        }
        Ok(())
    }

    /// Applies one transaction and answers it; false when the validator went away meanwhile.
    fn process(
        &self,
        connection: &mut Connection,
        message: &Message,
    ) -> Result<bool, ProcessorError> {
        let request = match TpProcessRequest::parse_from_bytes(message.get_content()) {
            Ok(request) => request,
            Err(err) => {
                // Without a parsed request there is no context to answer for; the validator's
                // own retry handles it, as with the SDK.
                tracing::error!(%err, "cannot parse a TpProcessRequest");
                return Ok(true);
            }
        };
        let outcome = {
            let mut context = PipelinedContext::new(connection, request.get_context_id());
            let applied = self.handler.apply(&request, &mut context);
            let settled = context.settle();
            match (applied, settled) {
                (Err(err), _) => Err(err),
                (Ok(()), Ok(())) => Ok(()),
                (Ok(()), Err(err)) => Err((self.map_context_error)(err)),
            }
        };
        if connection.is_disconnected() {
            return Ok(false);
        }
        let mut response = TpProcessResponse::new();
        match outcome {
            Ok(()) => response.set_status(TpProcessResponse_Status::OK),
            Err(ApplyError::InvalidTransaction(msg)) => {
                response.set_status(TpProcessResponse_Status::INVALID_TRANSACTION);
                response.set_message(msg);
            }
            Err(err) => {
                response.set_status(TpProcessResponse_Status::INTERNAL_ERROR);
                response.set_message(err.to_string());
            }
        }
        connection.send(
            Type::TP_PROCESS_RESPONSE,
            message.get_correlation_id(),
            response.write_to_bytes()?,
        );
        Ok(true)
    }
}
