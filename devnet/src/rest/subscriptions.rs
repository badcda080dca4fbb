//! The `/subscriptions` websocket: state deltas of each committed block.
//!
//! Follows sawtooth-core's `state_delta_subscription_handler.py`. Clients send JSON actions:
//! `{"action": "subscribe", "address_prefixes": [...]}` (answered at once with the current
//! head's deltas, then one message per commit), `{"action": "unsubscribe"}` and
//! `{"action": "get_block_deltas", "block_id": ..., "address_prefixes": [...]}`. Messages are
//! Python `json.dumps` output in insertion order: `block_id`, `block_num` (a string),
//! `previous_block_id`, `fork_detected` (only when the block number did not increase) and
//! `state_changes` (`address`, `value`, `type`), filtered by the address prefixes (none = all).
//! Errors are `{"error": "..."}`. On server shutdown the socket closes with 1001.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sawtooth_sdk::messages::block::Block;
use sawtooth_sdk::messages::transaction_receipt::StateChange;
use tokio::sync::broadcast::error::RecvError;

use super::json::Json;
use super::render;
use super::AppState;
use crate::view::{CommitNotice, LedgerView, ViewError};

/// `GET /subscriptions`.
pub async fn subscriptions(State(app): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    if *app.shutdown.borrow() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    upgrade.on_upgrade(move |socket| Session::new(app).run(socket))
}

/// A block's deltas, as the handler's `StateDeltaEvent`.
struct Deltas {
    block_id: String,
    block_num: u64,
    previous_block_id: String,
    state_changes: Vec<StateChange>,
}

impl Deltas {
    fn message(&self, prefixes: &[String], fork_detected: bool) -> String {
        let mut fields = vec![
            ("block_id", Json::str(self.block_id.as_str())),
            ("block_num", Json::Str(self.block_num.to_string())),
            (
                "previous_block_id",
                Json::str(self.previous_block_id.as_str()),
            ),
        ];
        if fork_detected {
            fields.push(("fork_detected", Json::Bool(true)));
        }
        let changes = self
            .state_changes
            .iter()
            .filter(|c| {
                prefixes.is_empty()
                    || prefixes
                        .iter()
                        .any(|p| c.get_address().starts_with(p.as_str()))
            })
            .map(render::state_change)
            .collect();
        fields.push(("state_changes", Json::Arr(changes)));
        Json::obj(fields).to_python_compact()
    }
}

impl From<CommitNotice> for Deltas {
    fn from(notice: CommitNotice) -> Self {
        Deltas {
            block_id: notice.block_id,
            block_num: notice.block_num,
            previous_block_id: notice.previous_block_id,
            state_changes: notice.state_changes,
        }
    }
}

/// The deltas of a stored block, rebuilt from its transactions' receipts.
fn block_deltas(ledger: &dyn LedgerView, block: &Block) -> Result<Option<Deltas>, ViewError> {
    let Ok(header) = render::block_header(block) else {
        return Ok(None);
    };
    let mut receipts = Vec::new();
    for txn in block
        .get_batches()
        .iter()
        .flat_map(|b| b.get_transactions())
    {
        receipts.extend(ledger.receipt(txn.get_header_signature())?);
    }
    Ok(Some(Deltas {
        block_id: block.get_header_signature().to_owned(),
        block_num: header.get_block_num(),
        previous_block_id: header.get_previous_block_id().to_owned(),
        state_changes: render::block_state_changes(&receipts),
    }))
}

fn error_message(text: String) -> String {
    Json::obj([("error", Json::Str(text))]).to_python_compact()
}

/// Python's `str()` of a JSON value, for error messages.
fn python_str(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "None".to_owned(),
        serde_json::Value::Bool(true) => "True".to_owned(),
        serde_json::Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

fn prefixes(message: &serde_json::Value) -> Vec<String> {
    match message.get("address_prefixes") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        // Python iterates a string's characters.
        Some(serde_json::Value::String(s)) => s.chars().map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// What the session loop woke up for.
enum Wake {
    Client(Option<Result<Message, axum::Error>>),
    Commit(Result<CommitNotice, RecvError>),
    Shutdown,
}

/// One websocket connection.
struct Session {
    app: AppState,
    /// The address prefixes while subscribed.
    subscription: Option<Vec<String>>,
    /// The last block announced (id, number), for `fork_detected`.
    latest: Option<(String, u64)>,
    /// After falling behind: the last block announced from the store, whose still-queued
    /// notices are not announced again.
    replayed_through: Option<u64>,
}

/// The connection is over.
struct Closed;

impl Session {
    fn new(app: AppState) -> Self {
        Session {
            app,
            subscription: None,
            latest: None,
            replayed_through: None,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let mut commits = self.app.ledger.subscribe_commits();
        let mut shutdown = self.app.shutdown.clone();
        let mut watch_commits = true;
        let mut watch_shutdown = true;
        loop {
            let wake = tokio::select! {
                message = socket.recv() => Wake::Client(message),
                notice = commits.recv(), if watch_commits => Wake::Commit(notice),
                changed = shutdown.changed(), if watch_shutdown => match changed {
                    Ok(()) if *shutdown.borrow() => Wake::Shutdown,
                    Ok(()) => continue,
                    Err(_) => { watch_shutdown = false; continue; }
                },
            };
            let outcome = match wake {
                Wake::Client(Some(Ok(Message::Text(text)))) => {
                    self.on_text(&mut socket, text.as_str()).await
                }
                Wake::Client(Some(Ok(Message::Close(_)))) | Wake::Client(None) => Err(Closed),
                Wake::Client(Some(Ok(_))) => Ok(()),
                Wake::Client(Some(Err(err))) => {
                    tracing::warn!(%err, "websocket connection closed with an error");
                    Err(Closed)
                }
                Wake::Commit(Ok(notice)) => self.on_commit(&mut socket, notice).await,
                Wake::Commit(Err(RecvError::Lagged(missed))) => {
                    tracing::debug!(missed, "websocket subscriber fell behind; catching up");
                    self.catch_up(&mut socket).await
                }
                Wake::Commit(Err(RecvError::Closed)) => {
                    watch_commits = false;
                    send(
                        &mut socket,
                        Json::obj([("warning", Json::str("Validator unavailable"))])
                            .to_python_compact(),
                    )
                    .await
                }
                Wake::Shutdown => {
                    let frame = CloseFrame {
                        code: 1001,
                        reason: "Server shutdown".into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    Err(Closed)
                }
            };
            if outcome.is_err() {
                break;
            }
        }
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Result<(), Closed> {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(text) else {
            return send(socket, error_message(format!("Invalid input: \"{text}\""))).await;
        };
        if !message.is_object() {
            // The Python handler raises on `.get` of a non-object and drops the connection.
            return Err(Closed);
        }
        let action = message.get("action").map_or_else(String::new, python_str);
        match action.as_str() {
            "subscribe" => self.on_subscribe(socket, prefixes(&message)).await,
            "unsubscribe" => {
                self.subscription = None;
                Ok(())
            }
            "get_block_deltas" => self.on_get_block_deltas(socket, &message).await,
            _ => {
                send(
                    socket,
                    error_message(format!("Unknown action \"{action}\"")),
                )
                .await
            }
        }
    }

    async fn on_subscribe(
        &mut self,
        socket: &mut WebSocket,
        prefixes: Vec<String>,
    ) -> Result<(), Closed> {
        let ledger = self.app.ledger.as_ref();
        let head = match ledger
            .chain_head()
            .map(|head| block_deltas(ledger, &head))
            .transpose()
        {
            Ok(head) => head.flatten(),
            Err(err) => {
                tracing::warn!(%err, "could not read the head block's deltas");
                None
            }
        };
        let first = head.map(|deltas| {
            self.latest = Some((deltas.block_id.clone(), deltas.block_num));
            deltas.message(&prefixes, false)
        });
        self.subscription = Some(prefixes);
        match first {
            Some(message) => send(socket, message).await,
            None => Ok(()),
        }
    }

    async fn on_get_block_deltas(
        &mut self,
        socket: &mut WebSocket,
        message: &serde_json::Value,
    ) -> Result<(), Closed> {
        let Some(block_id) = message.get("block_id") else {
            return send(socket, error_message("Must specify a block id".to_owned())).await;
        };
        let ledger = self.app.ledger.as_ref();
        let block = match block_id
            .as_str()
            .map(|id| ledger.block_by_id(id))
            .transpose()
        {
            Ok(block) => block.flatten(),
            Err(err) => {
                tracing::warn!(%err, "could not read a block for get_block_deltas");
                None
            }
        };
        // Sawtooth's handler fails on an unknown block and the connection is dropped.
        let Some(block) = block else {
            return Err(Closed);
        };
        match block_deltas(ledger, &block) {
            Ok(Some(deltas)) => send(socket, deltas.message(&prefixes(message), false)).await,
            Ok(None) | Err(_) => Err(Closed),
        }
    }

    /// Announces, from the store, the blocks after the last one announced up to the head (the
    /// commit notices for them were dropped because this socket fell behind).
    async fn catch_up(&mut self, socket: &mut WebSocket) -> Result<(), Closed> {
        let ledger = self.app.ledger.as_ref();
        let Some((_, latest)) = self.latest.clone() else {
            return Ok(());
        };
        let mut num = latest + 1;
        loop {
            let block = match ledger.block_by_num(num) {
                Ok(Some(block)) => block,
                Ok(None) => return Ok(()),
                Err(err) => {
                    tracing::warn!(%err, "could not read missed blocks for a websocket subscriber");
                    return Ok(());
                }
            };
            let Ok(Some(deltas)) = block_deltas(ledger, &block) else {
                tracing::warn!(
                    num,
                    "could not rebuild a missed block's deltas; it is skipped"
                );
                num += 1;
                continue;
            };
            self.latest = Some((deltas.block_id.clone(), deltas.block_num));
            self.replayed_through = Some(deltas.block_num);
            if let Some(prefixes) = &self.subscription {
                send(socket, deltas.message(prefixes, false)).await?;
            }
            num += 1;
        }
    }

    async fn on_commit(
        &mut self,
        socket: &mut WebSocket,
        notice: CommitNotice,
    ) -> Result<(), Closed> {
        if self
            .latest
            .as_ref()
            .is_some_and(|(id, _)| *id == notice.block_id)
        {
            // Already announced as the head when the client subscribed.
            return Ok(());
        }
        if let Some(replayed) = self.replayed_through {
            if notice.block_num <= replayed {
                // Already announced from the store while catching up.
                return Ok(());
            }
            self.replayed_through = None;
        }
        let fork_detected = self
            .latest
            .as_ref()
            .is_some_and(|(_, num)| notice.block_num <= *num);
        let deltas = Deltas::from(notice);
        self.latest = Some((deltas.block_id.clone(), deltas.block_num));
        match &self.subscription {
            Some(prefixes) => send(socket, deltas.message(prefixes, fork_detected)).await,
            None => Ok(()),
        }
    }
}

async fn send(socket: &mut WebSocket, text: String) -> Result<(), Closed> {
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| Closed)
}
