//! Tests of the REST client's request and error handling against a small local HTTP server.
//!
//! The server only plays back Sawtooth's documented response shapes, so these tests check our
//! parsing, retries, paging and waiting; end-to-end behaviour against the real devnet lives in
//! the integration tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::*;
use crate::keys::Signer;
use crate::protocol::{BatchBuilder, TransactionBuilder};

const HEAD_A: &str = "aa";
const HEAD_B: &str = "bb";

fn head(c: &str) -> String {
    c.repeat(64)
}

#[derive(Default)]
struct Counters {
    submits: AtomicUsize,
    statuses: AtomicUsize,
}

type Shared = Arc<Counters>;

fn sawtooth_error(status: StatusCode, code: u32, title: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "title": title, "message": message}})),
    )
        .into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn batch_list() -> BatchList {
    let signer = Signer::new(crate::keys::PrivateKey::random());
    let txn = TransactionBuilder::new()
        .with_family_name("bcfl")
        .with_family_version("1.0")
        .with_payload(vec![1, 2, 3])
        .build(&signer)
        .unwrap();
    BatchList::new(vec![BatchBuilder::new()
        .with_transaction(txn)
        .build(&signer)
        .unwrap()])
}

/// `POST /batches` answers 429 twice, then 202; statuses go PENDING, then the `mode` outcome.
fn submit_router(counters: Shared, outcome: &'static str) -> Router {
    Router::new()
        .route(
            "/batches",
            post(
                |State(c): State<Shared>, headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    assert_eq!(headers["content-type"], "application/octet-stream");
                    assert!(BatchList::from_bytes(&body).is_ok());
                    if c.submits.fetch_add(1, Ordering::SeqCst) < 2 {
                        return sawtooth_error(
                            StatusCode::TOO_MANY_REQUESTS,
                            31,
                            "Unable to Accept Batches",
                            "queue full",
                        );
                    }
                    (StatusCode::ACCEPTED, Json(json!({"link": "x"}))).into_response()
                },
            ),
        )
        .route(
            "/batch_statuses",
            get(
                move |State(c): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                    let id = q["id"].clone();
                    let n = c.statuses.fetch_add(1, Ordering::SeqCst);
                    let body = match (n, outcome) {
                        (0, _) => json!({"id": id, "status": "PENDING", "invalid_transactions": []}),
                        (_, "invalid") => json!({"id": id, "status": "INVALID",
                            "invalid_transactions": [{"id": "t1", "message": "round 9 is not open"}]}),
                        _ => json!({"id": id, "status": "COMMITTED", "invalid_transactions": []}),
                    };
                    Json(json!({"data": [body], "link": "l"}))
                },
            ),
        )
        .with_state(counters)
}

#[tokio::test]
async fn submit_retries_429_and_waits_for_commit() {
    let counters = Shared::default();
    let url = serve(submit_router(counters.clone(), "commit")).await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());
    let list = batch_list();
    let statuses = client
        .submit(&list, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].id, list.ids()[0]);
    assert_eq!(statuses[0].status, BatchStatusKind::Committed);
    assert_eq!(counters.submits.load(Ordering::SeqCst), 3);
    assert_eq!(counters.statuses.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rejected_batch_carries_the_processor_message() {
    let url = serve(submit_router(Shared::default(), "invalid")).await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());
    let list = batch_list();
    let err = client
        .submit(&list, Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    match err {
        RestError::Rejected {
            batch_id,
            transaction_id,
            message,
        } => {
            assert_eq!(batch_id, list.ids()[0]);
            assert_eq!(transaction_id.as_deref(), Some("t1"));
            assert_eq!(message, "round 9 is not open");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn retries_stop_after_the_policy_and_keep_the_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/blocks",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                sawtooth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    15,
                    "Validator Not Ready",
                    "no genesis",
                )
            }),
        )
        .with_state(calls.clone());
    let url = serve(router).await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());
    let err = client.chain_head().await.unwrap_err();
    assert!(
        matches!(&err, RestError::Api { status: 503, code: 15, title, .. } if title == "Validator Not Ready"),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn error_bodies_are_decoded() {
    let router = Router::new()
        .route(
            "/batches",
            post(|| async {
                sawtooth_error(
                    StatusCode::BAD_REQUEST,
                    30,
                    "Submitted Batches Invalid",
                    "bad signature",
                )
            }),
        )
        .route(
            "/state/{address}",
            get(
                |axum::extract::Path(address): axum::extract::Path<String>| async move {
                    if address.starts_with("ff") {
                        sawtooth_error(StatusCode::NOT_FOUND, 50, "Head Not Found", "no head")
                    } else if address.starts_with("ee") {
                        (StatusCode::BAD_GATEWAY, "<html>proxy down</html>").into_response()
                    } else if address.starts_with("dd") {
                        Json(json!({"data": "aGVsbG8=", "head": head(HEAD_A), "link": "l"}))
                            .into_response()
                    } else {
                        sawtooth_error(
                            StatusCode::NOT_FOUND,
                            75,
                            "State Not Found",
                            "There is no state data at the address specified.",
                        )
                    }
                },
            ),
        );
    let url = serve(router).await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());

    let err = client.submit_batches(&batch_list()).await.unwrap_err();
    assert!(
        matches!(&err, RestError::Api { status: 400, code: 30, message, .. } if message == "bad signature"),
        "{err:?}"
    );
    assert!(err.to_string().contains("Submitted Batches Invalid"));

    let addr = |c: &str| c.repeat(35);
    assert_eq!(client.state(&addr("00"), None).await.unwrap(), None);
    assert_eq!(
        client.state(&addr("dd"), None).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    let err = client.state(&addr("ff"), None).await.unwrap_err();
    assert!(
        matches!(err, RestError::NotFound { code: Some(50), .. }),
        "{err:?}"
    );
    let err = client.state(&addr("ee"), None).await.unwrap_err();
    assert!(
        matches!(&err, RestError::Http { status: 502, body, .. } if body.contains("proxy down")),
        "{err:?}"
    );
    let err = client
        .state(&addr("00"), Some("not-a-block-id"))
        .await
        .unwrap_err();
    assert!(matches!(err, RestError::InvalidUrl { .. }), "{err:?}");

    // An unknown route gets aiohttp's plain-text 404.
    let err = client.blocks(None, None).await.unwrap_err();
    assert!(
        matches!(err, RestError::NotFound { code: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_url_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = RestClient::new(&url).unwrap();
    let err = client.chain_head().await.unwrap_err();
    assert!(matches!(err, RestError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

/// A server that takes each request and, for the first `drops` connections, closes the
/// connection without answering; after them it answers every request with `response`. Returns
/// its URL and the count of connections it accepted.
async fn dropping_server(drops: usize, response: &'static str) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let n = count.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            if n < drops {
                continue; // dropped: closed without a response
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{response}",
                response.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (url, accepted)
}

/// Regression: a member gave up its round when a read's connection was closed under it
/// ("connection closed before message completed", a keep-alive connection the ledger closed as
/// it was reused). A read is sent again; a batch submission, which the ledger may have
/// received, is not.
#[tokio::test]
async fn a_read_whose_connection_broke_is_sent_again() {
    let body = r#"{"data":"aGk=","head":"aaaa","link":"x"}"#;
    let (url, accepted) = dropping_server(2, body).await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());
    let got = client.state(&"ab".repeat(35), None).await.unwrap();
    assert_eq!(got, Some(b"hi".to_vec()));
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // More broken connections than the policy's attempts: the error names the URL.
    let (url, accepted) = dropping_server(10, body).await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());
    let err = client.state(&"ab".repeat(35), None).await.unwrap_err();
    assert!(matches!(err, RestError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        fast_retry().attempts as usize
    );
    // A submission is sent once.
    let (url, accepted) = dropping_server(1, "{}").await;
    let client = RestClient::new(&url).unwrap().with_retry(fast_retry());
    let err = client.submit_batches(&batch_list()).await.unwrap_err();
    assert!(matches!(err, RestError::Unreachable { .. }), "{err:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn bad_base_urls_are_refused() {
    for url in ["127.0.0.1:8008", "ftp://host", "http://", "not a url"] {
        assert!(
            matches!(RestClient::new(url), Err(RestError::InvalidUrl { .. })),
            "{url}"
        );
    }
    assert_eq!(
        RestClient::new("http://h:1/api/").unwrap().base_url(),
        "http://h:1/api"
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let policy = RetryPolicy {
        attempts: 10,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };
    let delays: Vec<_> = (0..6).map(|i| policy.delay(i).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(policy.delay(40), Duration::from_secs(1));
}

/// Three pages of state; the head of the first page is pinned for the next ones.
#[tokio::test]
async fn state_list_follows_pages_at_one_head() {
    let router = Router::new().route(
        "/state",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            assert_eq!(q["address"], "abcd");
            let start = q.get("start").map(String::as_str);
            if start.is_some() {
                assert_eq!(q.get("head"), Some(&head(HEAD_A)), "head must be pinned");
            }
            let entry = |n: u8| json!({"address": format!("abcd{}", format!("{n:02x}").repeat(33)), "data": "AQI="});
            let (data, next) = match start {
                None => (vec![entry(1), entry(2)], Some("p2")),
                Some("p2") => (vec![entry(3)], Some("p3")),
                Some("p3") => (vec![entry(4)], None),
                Some(other) => panic!("unexpected start {other}"),
            };
            let paging = match next {
                Some(n) => json!({"limit": null, "start": start, "next_position": n,
                                  "next": format!("http://elsewhere/state?head=x&start={n}&limit=2")}),
                None => json!({"limit": null, "start": start}),
            };
            // A later page would answer with a newer head if it were not pinned.
            let h = if start.is_none() { head(HEAD_A) } else { head(HEAD_B) };
            Json(json!({"data": data, "head": h, "link": "l", "paging": paging}))
        }),
    );
    let url = serve(router).await;
    let client = RestClient::new(&url).unwrap();
    let snapshot = client.state_list("abcd", None).await.unwrap();
    assert_eq!(snapshot.head, head(HEAD_A));
    assert_eq!(snapshot.entries.len(), 4);
    assert_eq!(
        snapshot.entries[3].address,
        format!("abcd{}", "04".repeat(33))
    );
    assert_eq!(snapshot.entries[0].data, [1, 2]);
}

#[tokio::test]
async fn blocks_follow_next_links_and_accept_both_number_forms() {
    let router = Router::new().route(
        "/blocks",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let block = |n: u64, as_string: bool| {
                let num = if as_string { json!(n.to_string()) } else { json!(n) };
                json!({"header": {"block_num": num, "previous_block_id": "p",
                    "signer_public_key": "k", "batch_ids": [], "state_root_hash": "r",
                    "consensus": ""}, "header_signature": format!("{n:0128x}"), "batches": []})
            };
            match q.get("start").map(String::as_str) {
                None => Json(json!({"data": [block(3, true), block(2, false)], "head": head(HEAD_A),
                    "link": "l", "paging": {"limit": null, "start": null,
                    "next": "http://elsewhere/blocks?head=x&start=0x0000000000000001&limit=2"}})),
                Some("0x0000000000000001") => Json(json!({"data": [block(1, true), block(0, true)],
                    "head": head(HEAD_A), "link": "l", "paging": {"limit": null, "start": "0x0000000000000001"}})),
                Some(other) => panic!("unexpected start {other}"),
            }
        }),
    );
    let url = serve(router).await;
    let client = RestClient::new(&url).unwrap();
    let blocks = client.blocks(None, None).await.unwrap();
    let nums: Vec<u64> = blocks.iter().map(|b| b.block_num).collect();
    assert_eq!(nums, [3, 2, 1, 0]);
    assert_eq!(client.chain_head().await.unwrap().block_num, 3);
    assert_eq!(client.blocks(None, Some(3)).await.unwrap().len(), 3);
}

#[tokio::test]
async fn waiting_stops_at_the_deadline_with_the_last_status() {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/batch_statuses",
            get(
                |State(calls): State<Arc<AtomicUsize>>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // A held batch (dependencies missing) stays UNKNOWN and is not waited on
                    // server-side.
                    assert!(!q.contains_key("wait") || q["wait"] == "1");
                    Json(json!({"data": [{"id": q["id"], "status": "UNKNOWN",
                        "invalid_transactions": []}], "link": "l"}))
                },
            ),
        )
        .with_state(calls.clone());
    let url = serve(router).await;
    let client = RestClient::new(&url).unwrap();
    let started = std::time::Instant::now();
    let statuses = client
        .wait_for_batches(&["b1".to_owned()], Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(statuses[0].status, BatchStatusKind::Unknown);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(
        calls.load(Ordering::SeqCst) >= 3,
        "polled {} times",
        calls.load(Ordering::SeqCst)
    );
}
