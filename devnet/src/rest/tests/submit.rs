//! `POST /batches` and `/batch_statuses`, including `wait`.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use protobuf::{Message, RepeatedField};
use sawtooth_sdk::messages::batch::{Batch, BatchList};

use super::memory::{id, simple_batch, MemoryLedger};
use super::{app, assert_error, get, send};
use crate::rest::{router_with_config, RestConfig};

fn batch_list(batches: &[Batch]) -> Vec<u8> {
    let mut list = BatchList::new();
    list.set_batches(RepeatedField::from_vec(batches.to_vec()));
    list.write_to_bytes().unwrap()
}

const OCTET: Option<&str> = Some("application/octet-stream");

#[tokio::test]
async fn submit_answers_202_with_only_a_link() {
    let ledger = MemoryLedger::with_genesis();
    let router = app(&ledger);
    let (a, b) = (simple_batch("a"), simple_batch("b"));
    let reply = send(
        &router,
        Method::POST,
        "/batches?wait=10",
        OCTET,
        batch_list(&[a.clone(), b.clone()]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.content_type(), "application/json; charset=utf-8");
    let expected = format!(
        "{{\n  \"link\": \"http://api:8008/batch_statuses?id={},{}&wait=10\"\n}}",
        a.get_header_signature(),
        b.get_header_signature()
    );
    assert_eq!(reply.body, expected);
    let json = get(
        &router,
        &format!("/batch_statuses?id={}", a.get_header_signature()),
    )
    .await
    .json();
    assert_eq!(json["data"][0]["status"], "PENDING");
}

#[tokio::test]
async fn submit_errors() {
    let ledger = MemoryLedger::with_genesis();
    let router = app(&ledger);
    let body = batch_list(&[simple_batch("a")]);
    for content_type in [
        None,
        Some("application/json"),
        Some("application/octet-stream; charset=utf-8"),
    ] {
        let reply = send(
            &router,
            Method::POST,
            "/batches",
            content_type,
            body.clone(),
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, 42);
    }
    assert_error(
        &send(&router, Method::POST, "/batches", OCTET, Vec::new()).await,
        StatusCode::BAD_REQUEST,
        34,
    );
    assert_error(
        &send(
            &router,
            Method::POST,
            "/batches",
            OCTET,
            vec![0x0a, 0x05, 0x01],
        )
        .await,
        StatusCode::BAD_REQUEST,
        35,
    );
    let mut bad = simple_batch("bad");
    bad.set_header_signature("not hex".into());
    let reply = send(
        &router,
        Method::POST,
        "/batches",
        OCTET,
        batch_list(&[simple_batch("ok"), bad]),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, 30);
    assert_eq!(
        reply.body,
        "{\n  \"error\": {\n    \"code\": 30,\n    \"message\": \"The submitted BatchList was rejected by the validator. It was poorly formed, or has an invalid signature.\",\n    \"title\": \"Submitted Batches Invalid\"\n  }\n}"
    );
    ledger.set_queue_full(true);
    assert_error(
        &send(&router, Method::POST, "/batches", OCTET, body.clone()).await,
        StatusCode::TOO_MANY_REQUESTS,
        31,
    );
    let empty = app(&MemoryLedger::empty());
    assert_error(
        &send(&empty, Method::POST, "/batches", OCTET, body).await,
        StatusCode::SERVICE_UNAVAILABLE,
        15,
    );
}

#[tokio::test]
async fn bodies_over_ten_mebibytes_are_413() {
    let router = app(&MemoryLedger::with_genesis());
    let reply = send(
        &router,
        Method::POST,
        "/batches",
        OCTET,
        vec![0u8; 10 * 1024 * 1024],
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body,
        "Maximum request body size 10485760 exceeded, actual body size 10485760"
    );
    let reply = send(
        &router,
        Method::POST,
        "/batch_statuses",
        Some("application/json"),
        vec![b' '; 11 * 1024 * 1024],
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn statuses_golden_shapes() {
    let ledger = MemoryLedger::with_genesis();
    let router = app(&ledger);
    let (invalid, committed) = (simple_batch("bad"), simple_batch("good"));
    ledger.invalidate(&invalid, "", b"");
    ledger.commit(vec![committed.clone()], Vec::new());
    let unknown = id("unknown");
    let uri = format!(
        "/batch_statuses?id={},{},{unknown}",
        invalid.get_header_signature(),
        committed.get_header_signature()
    );
    let reply = get(&router, &uri).await;
    let expected = format!(
        r#"{{
  "data": [
    {{
      "id": "{bad}",
      "invalid_transactions": [
        {{
          "id": "{bad_txn}"
        }}
      ],
      "status": "INVALID"
    }},
    {{
      "id": "{good}",
      "invalid_transactions": [],
      "status": "COMMITTED"
    }},
    {{
      "id": "{unknown}",
      "invalid_transactions": [],
      "status": "UNKNOWN"
    }}
  ],
  "link": "http://api:8008{uri}"
}}"#,
        bad = invalid.get_header_signature(),
        bad_txn = invalid.get_transactions()[0].get_header_signature(),
        good = committed.get_header_signature(),
    );
    assert_eq!(reply.body, expected);

    let other = simple_batch("other");
    ledger.invalidate(&other, "no such key", b"\x01\x02");
    let body = serde_json::to_vec(&[other.get_header_signature()]).unwrap();
    let reply = send(
        &router,
        Method::POST,
        "/batch_statuses",
        Some("application/json"),
        body,
    )
    .await;
    let json = reply.json();
    assert!(json.get("link").is_none());
    assert_eq!(
        json["data"][0]["invalid_transactions"][0]["message"],
        "no such key"
    );
    assert_eq!(
        json["data"][0]["invalid_transactions"][0]["extended_data"],
        "AQI="
    );
}

#[tokio::test]
async fn status_request_errors() {
    let router = app(&MemoryLedger::with_genesis());
    assert_error(
        &get(&router, "/batch_statuses").await,
        StatusCode::BAD_REQUEST,
        66,
    );
    assert_error(
        &get(&router, "/batch_statuses?id=").await,
        StatusCode::BAD_REQUEST,
        60,
    );
    assert_error(
        &get(&router, &format!("/batch_statuses?id={},zz", id("a"))).await,
        StatusCode::BAD_REQUEST,
        60,
    );
    let post = |content_type: Option<&'static str>, body: &'static str| {
        send(
            &router,
            Method::POST,
            "/batch_statuses",
            content_type,
            body.into(),
        )
    };
    assert_error(
        &post(Some("text/json"), "[]").await,
        StatusCode::BAD_REQUEST,
        43,
    );
    assert_error(
        &post(Some("application/json"), "[]").await,
        StatusCode::BAD_REQUEST,
        46,
    );
    assert_error(
        &post(Some("application/json"), "[\"a\", 1]").await,
        StatusCode::BAD_REQUEST,
        46,
    );
    assert_error(
        &post(Some("application/json"), "[\"a\"]").await,
        StatusCode::BAD_REQUEST,
        60,
    );
    assert_eq!(
        post(Some("application/json"), "[").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn wait_returns_when_nothing_is_pending() {
    let ledger = MemoryLedger::with_genesis();
    let router = app(&ledger);
    let batch = simple_batch("w");
    ledger.submit(&batch);
    let committer = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ledger.commit_pending(Vec::new());
        })
    };
    let started = std::time::Instant::now();
    let json = get(
        &router,
        &format!(
            "/batch_statuses?id={}&wait=20",
            batch.get_header_signature()
        ),
    )
    .await
    .json();
    committer.await.unwrap();
    assert_eq!(json["data"][0]["status"], "COMMITTED");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        json["link"],
        format!(
            "http://api:8008/batch_statuses?id={}&wait=20",
            batch.get_header_signature()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn wait_times_out_with_pending_or_the_rest_timeout() {
    let ledger = MemoryLedger::with_genesis();
    let batch = simple_batch("slow");
    ledger.submit(&batch);
    let router = app(&ledger);
    let json = get(
        &router,
        &format!("/batch_statuses?id={}&wait=2", batch.get_header_signature()),
    )
    .await
    .json();
    assert_eq!(json["data"][0]["status"], "PENDING");
    // A bare wait is 95 % of the REST timeout, which ends first as a validator time-out.
    let config = RestConfig {
        validator_timeout: Duration::from_secs(10),
        ..RestConfig::default()
    };
    let router = router_with_config(ledger.clone(), config);
    let json = get(
        &router,
        &format!("/batch_statuses?id={}&wait", batch.get_header_signature()),
    )
    .await
    .json();
    assert_eq!(json["data"][0]["status"], "PENDING");
    let reply = get(
        &router,
        &format!("/batch_statuses?id={}&wait=0", batch.get_header_signature()),
    )
    .await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, 17);
}

impl MemoryLedger {
    fn submit(&self, batch: &Batch) {
        crate::view::LedgerView::submit_batches(self, vec![batch.clone()]).unwrap();
    }
}

#[tokio::test]
async fn shutdown_answers_waiting_status_requests_at_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ledger = MemoryLedger::with_genesis();
    let batch = simple_batch("stuck");
    ledger.submit(&batch);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::rest::serve(listener, ledger.clone(), async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /batch_statuses?id={}&wait=200 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        batch.get_header_signature()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\"status\": \"PENDING\""), "{response}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}
