//! [`RestLedger`]: the [`Ledger`] over Sawtooth REST APIs.
//!
//! Several URLs may be given (validators of one network): requests go to the current one and,
//! when it cannot be reached or answers 429/503, to the next, in turn. Batches are built with
//! [`BcflTransaction`] (which runs the processor's own payload checks before signing) and waited
//! for until they commit; an INVALID batch becomes [`LedgerError::Rejected`] with the
//! processor's message.
//!
//! Following the chain: a background task holds the REST API's `/subscriptions` websocket,
//! subscribed to the family's namespace, and [`Ledger::changed`] returns as soon as a block
//! arrives. When the websocket cannot be held (an API without it, a proxy), `changed` simply
//! waits for its timeout: polling is the fallback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bcfl_processor::NAMESPACE;
use bcfl_protos::bcfl as pb;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::watch;

use super::ledger::{Ledger, LedgerError};
use bcfl_ledger::family::BcflTransaction;
use bcfl_ledger::keys::Signer;
use bcfl_ledger::rest::{BatchStatusKind, RestClient, RestError};
use bcfl_ledger::state::{BcflReader, FamilyState};

/// A ledger behind one or more REST API URLs.
#[derive(Debug)]
pub struct RestLedger {
    readers: Vec<BcflReader>,
    current: Arc<AtomicUsize>,
    wait: Duration,
    blocks: watch::Receiver<String>,
    follower: tokio::task::JoinHandle<()>,
}

fn unavailable(action: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable {
        action: action.to_owned(),
        reason: e.to_string(),
    }
}

/// Whether `e` says this URL is unusable now (so the next one should be tried).
fn is_transport(e: &RestError) -> bool {
    matches!(e, RestError::Unreachable { .. }) || e.is_retryable()
}

impl RestLedger {
    /// A ledger behind `urls` (at least one); submissions wait up to `wait` to commit. Must be
    /// called inside a tokio runtime (it starts the subscription task).
    pub fn new(urls: &[String], wait: Duration) -> Result<Self, LedgerError> {
        if urls.is_empty() {
            return Err(LedgerError::Invalid("no ledger URL given".into()));
        }
        let readers = urls
            .iter()
            .map(|u| {
                RestClient::new(u)
                    .map(BcflReader::new)
                    .map_err(|e| LedgerError::Invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let current = Arc::new(AtomicUsize::new(0));
        let (tx, blocks) = watch::channel(String::new());
        let bases: Vec<String> = readers
            .iter()
            .map(|r| r.client().base_url().to_owned())
            .collect();
        let follower = tokio::spawn(follow(bases, current.clone(), tx));
        Ok(Self {
            readers,
            current,
            wait,
            blocks,
            follower,
        })
    }

    /// The readers in the order to try them, the current one first.
    fn in_turn(&self) -> impl Iterator<Item = (usize, &BcflReader)> {
        let start = self.current.load(Ordering::Relaxed);
        let n = self.readers.len();
        (0..n).map(move |i| {
            let index = (start + i) % n;
            (index, &self.readers[index])
        })
    }

    fn moved_to(&self, index: usize) {
        if self.current.swap(index, Ordering::Relaxed) != index {
            tracing::warn!(
                url = self.readers[index].client().base_url(),
                "using the next ledger URL"
            );
        }
    }
}

impl Drop for RestLedger {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Ledger for RestLedger {
    async fn state(&self) -> Result<FamilyState, LedgerError> {
        let mut last = None;
        for (index, reader) in self.in_turn() {
            match reader.family_state(None).await {
                Ok(state) => {
                    self.moved_to(index);
                    return Ok(state);
                }
                Err(e) if is_transport(&e) => last = Some(e),
                Err(e) => return Err(LedgerError::Invalid(e.to_string())),
            }
        }
        Err(unavailable(
            "reading the family state",
            last.map_or_else(|| "no ledger".to_owned(), |e| e.to_string()),
        ))
    }

    async fn submit(
        &self,
        signer: &Signer,
        payload: pb::BcflPayload,
        action: &str,
    ) -> Result<(), LedgerError> {
        let batches = BcflTransaction::new(payload)
            .into_batch_list(signer)
            .map_err(|e| LedgerError::Invalid(format!("building {action}: {e}")))?;
        let mut last = None;
        for (index, reader) in self.in_turn() {
            match reader.client().submit(&batches, Some(self.wait)).await {
                Ok(statuses) => {
                    self.moved_to(index);
                    if let Some(open) = statuses
                        .iter()
                        .find(|s| s.status != BatchStatusKind::Committed)
                    {
                        return Err(unavailable(
                            action,
                            format!(
                                "batch {} is still {} after {} s (is bcfl-tp connected?)",
                                open.id,
                                open.status,
                                self.wait.as_secs()
                            ),
                        ));
                    }
                    tracing::debug!(action, "committed");
                    return Ok(());
                }
                Err(RestError::Rejected { message, .. }) => {
                    return Err(LedgerError::Rejected {
                        action: action.to_owned(),
                        reason: message,
                    })
                }
                Err(e) if is_transport(&e) => last = Some(e),
                Err(e) => return Err(unavailable(action, e)),
            }
        }
        Err(unavailable(
            action,
            last.map_or_else(|| "no ledger".to_owned(), |e| e.to_string()),
        ))
    }

    async fn changed(&self, head: &str, timeout: Duration) {
        let mut blocks = self.blocks.clone();
        let moved = async {
            loop {
                if !blocks.borrow_and_update().is_empty() && *blocks.borrow() != head {
                    return;
                }
                if blocks.changed().await.is_err() {
                    // The follower stopped: fall back to the timeout.
                    std::future::pending::<()>().await;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, moved).await;
    }

    fn describe(&self) -> String {
        self.readers
            .iter()
            .map(|r| r.client().base_url())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The websocket URL of a REST API's `/subscriptions`.
fn subscriptions_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/subscriptions")
}

/// Holds a `/subscriptions` websocket to the current URL and publishes each block id; on any
/// failure waits and connects again (to whichever URL is current then).
async fn follow(bases: Vec<String>, current: Arc<AtomicUsize>, blocks: watch::Sender<String>) {
    let mut failures = 0u32;
    loop {
        let base = &bases[current.load(Ordering::Relaxed) % bases.len()];
        match subscribe(base, &blocks).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::info!(%base, error = %e, "no state-delta subscription; polling");
                }
            }
        }
        if blocks.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(10)))).await;
    }
}

/// One websocket session: subscribe to the namespace, publish each block id until it closes.
async fn subscribe(base: &str, blocks: &watch::Sender<String>) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    // wss:// with the same trust as the REST client (built-in roots and --ca-cert).
    let connector = tokio_tungstenite::Connector::Rustls(bcfl_tls::client_config());
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        subscriptions_url(base),
        None,
        false,
        Some(connector),
    )
    .await
    .map_err(|e| bcfl_tls::explain(&e))?;
    let request = serde_json::json!({"action": "subscribe", "address_prefixes": [NAMESPACE]});
    socket
        .send(Message::text(request.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(%base, "following the chain over /subscriptions");
    while let Some(message) = socket.next().await {
        let text = match message.map_err(|e| e.to_string())? {
            Message::Text(text) => text,
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if let Some(error) = value.get("error") {
            return Err(format!("subscription refused: {error}"));
        }
        if let Some(id) = value.get("block_id").and_then(|v| v.as_str()) {
            blocks.send_replace(id.to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            subscriptions_url("http://127.0.0.1:8008/"),
            "ws://127.0.0.1:8008/subscriptions"
        );
        assert_eq!(
            subscriptions_url("https://ledger.example:443"),
            "wss://ledger.example:443/subscriptions"
        );
    }

    #[tokio::test]
    async fn no_url_is_an_error_and_dead_urls_are_unavailable() {
        assert!(RestLedger::new(&[], Duration::from_secs(1)).is_err());
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let ledger = RestLedger::new(
            &[
                "http://127.0.0.1:9".to_owned(),
                "http://127.0.0.1:9/".to_owned(),
            ],
            Duration::from_secs(1),
        )
        .unwrap();
        let err = ledger.state().await.unwrap_err();
        assert!(matches!(err, LedgerError::Unavailable { .. }), "{err}");
        // `changed` falls back to its timeout.
        let started = std::time::Instant::now();
        ledger.changed("x", Duration::from_millis(200)).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
