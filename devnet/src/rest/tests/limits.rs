//! The REST API's connection limits, with real sockets on a 127.0.0.1:0 listener: a bounded
//! number of request bodies at once, a body-read timeout and a header-read timeout.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::memory::MemoryLedger;
use crate::rest::{serve_with_config, RestConfig};

/// Serves the API with `config`; returns its address and a stop handle.
async fn start(config: RestConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with_config(
        listener,
        MemoryLedger::with_genesis(),
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Opens a `POST /batches` announcing `length` bytes and sends only `sent` of them.
async fn partial_upload(addr: &str, length: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /batches HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![0u8; sent]).await.unwrap();
    stream
}

/// Reads until the server closes the connection (or `limit` passes); returns what came and
/// whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&raw).into(), true),
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&raw).into(), false),
        }
    }
}

/// A complete request; returns the status line and body.
async fn request(addr: &str, body: &[u8]) -> (String, String) {
    let mut stream = partial_upload(addr, body.len(), 0).await;
    stream.write_all(body).await.unwrap();
    let (raw, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let status = raw.lines().next().unwrap_or_default().to_owned();
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn bodies_beyond_the_cap_are_refused_at_once_and_slots_free_up() {
    let (addr, _stop) = start(RestConfig {
        max_concurrent_bodies: 2,
        body_slot_wait: Duration::from_millis(100),
        ..RestConfig::default()
    })
    .await;
    // Two uploads that never finish hold both slots.
    let held = [
        partial_upload(&addr, 1_000_000, 10).await,
        partial_upload(&addr, 1_000_000, 10).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, body) = request(&addr, b"not a batch list").await;
    assert!(status.contains("429"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], 31);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Once they hang up, bodies are read again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = request(&addr, b"not a batch list").await;
    assert!(status.contains("400"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], 35);
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_its_connection_closed() {
    let (addr, _stop) = start(RestConfig {
        body_read_timeout: Duration::from_millis(300),
        ..RestConfig::default()
    })
    .await;
    let mut stalled = partial_upload(&addr, 1_000, 10).await;
    let started = Instant::now();
    let (raw, closed) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    assert!(closed, "the connection stays open: {raw}");
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_half_sent_header_is_disconnected_after_the_timeout() {
    let (addr, _stop) = start(RestConfig {
        header_read_timeout: Duration::from_millis(300),
        ..RestConfig::default()
    })
    .await;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /blocks HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "a slowloris client is never disconnected");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Others are served meanwhile and after.
    let mut ok = TcpStream::connect(&addr).await.unwrap();
    ok.write_all(b"GET /blocks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (raw, _) = read_until_closed(&mut ok, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}
