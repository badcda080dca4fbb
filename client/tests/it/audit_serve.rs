//! `bcfl audit serve` over either ledger (`bcfl-devnet`, and a real Sawtooth 1.2.6 validator
//! with devmode consensus, skipped where its sources are absent): its JSON is the ledger's
//! state, and a new block reaches the page's event stream through the ledger's
//! `/subscriptions` websocket (polling is set to a minute, so only the websocket can deliver it
//! in time).

use std::process::Command;
use std::time::Duration;

use bcfl_testkit::{AnyLedger, Binary, Cli, ConsortiumSetup, LedgerKind, Spawned};
use futures_util::StreamExt as _;
use serde_json::Value;

bcfl_testkit::on_each_ledger!(the_auditors_page_reads_the_ledger_and_follows_its_blocks);

/// The server's overview at `url`, once it has read the ledger (503 until then).
async fn overview(http: &reqwest::Client, url: &str) -> Value {
    for _ in 0..100 {
        let response = http.get(format!("{url}api/overview")).send().await.unwrap();
        if response.status() == reqwest::StatusCode::OK {
            return response.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the overview never became available");
}

fn the_auditors_page_reads_the_ledger_and_follows_its_blocks(kind: LedgerKind) {
    let dir = tempfile::tempdir().unwrap();
    let Some(ledger) = AnyLedger::start(kind, dir.path()) else {
        return;
    };
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    ConsortiumSetup::new()
        .with_member("alice", "http://127.0.0.1:9001")
        .with_member("bob", "http://127.0.0.1:9002")
        .run(&cli);

    let mut serve = Command::new(Binary::Bcfl.path());
    serve
        .args(["--json", "-v", "--url", ledger.url(), "audit", "serve"])
        .args(["--listen", "127.0.0.1:0", "--poll-seconds", "60"])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    let mut server = Spawned::start("audit-serve", serve, dir.path());
    let line = server.wait_for_line("\"listening\"", Duration::from_secs(30));
    // `-v` logs when the server holds the ledger's websocket.
    server.wait_for_line(
        "following the chain over /subscriptions",
        Duration::from_secs(30),
    );
    let url = serde_json::from_str::<Value>(&line).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let before = overview(&http, &url).await;
        let names: Vec<&str> = before["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(before["consortium"]["current_round"], 0);
        assert_eq!(
            before["consortium"]["admins"][0],
            cli.public_key("admin").as_str()
        );

        // The event stream starts with the head the overview was read at.
        let mut events = http
            .get(format!("{url}api/events"))
            .send()
            .await
            .unwrap()
            .bytes_stream();
        let mut text = String::new();
        let mut heads = Vec::new();
        let mut next_head = async || loop {
            if let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if let Some(data) = event
                    .strip_prefix("event: head\ndata: ")
                    .map(|d| d.trim().to_owned())
                {
                    return data;
                }
                continue;
            }
            let chunk = events.next().await.expect("the stream goes on").unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        };
        heads.push(next_head().await);
        assert_eq!(heads[0], before["head"].as_str().unwrap());

        // A new block: carol joins. Its head arrives well before the next poll.
        let registered = tokio::task::spawn_blocking({
            let cli = cli.clone();
            move || {
                cli.keygen("carol");
                cli.register_member("admin", "carol", "http://127.0.0.1:9003");
            }
        });
        let started = std::time::Instant::now();
        let head = tokio::time::timeout(Duration::from_secs(30), next_head())
            .await
            .expect("a head event within 30 s (polling is set to 60 s)");
        registered.await.unwrap();
        assert_ne!(head, heads[0]);
        eprintln!(
            "{kind:?}: new head on the page's event stream {:.0} ms after the submission began",
            started.elapsed().as_secs_f64() * 1e3
        );
        let after = overview(&http, &url).await;
        assert_eq!(after["head"].as_str().unwrap(), head);
        assert_eq!(after["members"].as_array().unwrap().len(), 3);
        assert_eq!(after["members"][2]["name"], "carol");
    });
    server.assert_running();
}

/// The page over https in front of an https ledger (its `wss://` subscriptions included), each
/// trusted through `--ca-cert`.
#[test]
fn the_auditors_page_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = bcfl_tls::pki::TestCa::new("bcfl test CA").unwrap();
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file).unwrap();
    let server_cert = |name: &str| {
        ca.server(&["127.0.0.1"])
            .unwrap()
            .write(dir.path(), name)
            .unwrap()
    };
    let rest = server_cert("rest");
    let ledger = bcfl_testkit::Ledger::start_with(
        dir.path(),
        &[
            "--tls-cert",
            rest.cert.to_str().unwrap(),
            "--tls-key",
            rest.key.to_str().unwrap(),
        ],
    );
    let cli = Cli::new(ledger.url(), dir.path().join("keys")).with_ca_cert(&ca_file);
    ConsortiumSetup::new()
        .with_member("alice", "https://127.0.0.1:9001")
        .run(&cli);

    let page = server_cert("page");
    let mut serve = Command::new(Binary::Bcfl.path());
    serve
        .args(["--json", "-v", "--url", ledger.url(), "--ca-cert"])
        .arg(&ca_file)
        .args(["audit", "serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&page.cert)
        .arg("--tls-key")
        .arg(&page.key)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    let mut server = Spawned::start("audit-serve-tls", serve, dir.path());
    let line = server.wait_for_line("\"listening\"", Duration::from_secs(30));
    let url = serde_json::from_str::<Value>(&line).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    server.wait_for_line(
        "following the chain over /subscriptions",
        Duration::from_secs(30),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ca_der = bcfl_tls::read_certificates(&ca_file).unwrap();
        let http = bcfl_tls::client_builder_trusting(&ca_der).build().unwrap();
        let page = http.get(&url).send().await.unwrap();
        assert_eq!(page.status(), reqwest::StatusCode::OK);
        assert!(page.text().await.unwrap().contains("bcfl ledger audit"));
        let overview = overview(&http, &url).await;
        assert_eq!(overview["members"][0]["name"], "alice", "{overview}");
        // A client without the CA is refused by the TLS handshake.
        assert!(reqwest::Client::new().get(&url).send().await.is_err());
    });
    server.assert_running();
}
