//! The REST API over TLS (`--tls-cert`, `--tls-key`): HTTPS requests and the `wss://`
//! subscriptions websocket, trusted through a test CA; a client without the CA is refused.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::memory::MemoryLedger;
use crate::rest::{serve_tls_with_config, RestConfig};

#[tokio::test]
async fn https_and_wss_with_a_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = bcfl_tls::pki::TestCa::new("devnet test CA").unwrap();
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file).unwrap();
    let files = ca
        .server(&["127.0.0.1"])
        .unwrap()
        .write(dir.path(), "rest")
        .unwrap();
    let tls = bcfl_tls::ServerTls::from_pem_files(&files.cert, &files.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = RestConfig {
        header_read_timeout: Duration::from_secs(2),
        ..RestConfig::default()
    };
    tokio::spawn(serve_tls_with_config(
        listener,
        MemoryLedger::with_genesis(),
        config,
        Some(tls),
        std::future::pending(),
    ));

    let cas = bcfl_tls::read_certificates(&ca_file).unwrap();
    let trusting = bcfl_tls::client_builder_trusting(&cas).build().unwrap();
    let blocks = trusting
        .get(format!("https://127.0.0.1:{port}/blocks"))
        .send()
        .await
        .unwrap();
    assert_eq!(blocks.status(), 200);
    assert!(blocks.text().await.unwrap().contains("\"data\""));

    let plain = bcfl_tls::client_builder_trusting(&[]).build().unwrap();
    let refused = plain
        .get(format!("https://127.0.0.1:{port}/blocks"))
        .send()
        .await
        .unwrap_err();
    assert!(bcfl_tls::explain(&refused).contains("--ca-cert"));
    // Plain HTTP to the TLS port gets nowhere.
    let http = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/blocks"))
        .send()
        .await;
    assert!(http.is_err() || !http.unwrap().status().is_success());

    bcfl_tls::trust_ca_file(&ca_file).unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(bcfl_tls::client_config());
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://127.0.0.1:{port}/subscriptions"),
        None,
        false,
        Some(connector),
    )
    .await
    .unwrap();
    socket
        .send(Message::Text(r#"{"action": "dance"}"#.into()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        answer,
        Message::Text(r#"{"error": "Unknown action \"dance\""}"#.into())
    );
}
