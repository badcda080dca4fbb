//! TLS with real processes on loopback: `bcfl-devnet --tls-cert/--tls-key` serves an
//! `https://` ledger URL that the CLI uses with `--ca-cert`, and refuses clearly without it;
//! `bcfl node serve --tls-cert/--tls-key` serves a member's blob over HTTPS.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bcfl_ledger::keys::Signer;
use bcfl_net::auth::PeerClient;
use bcfl_testkit::{ChildGuard, Cli, ConsortiumSetup, Ledger};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_ledger_and_an_https_blob_server() {
    let dir = tempfile::tempdir().unwrap();
    let ca = bcfl_tls::pki::TestCa::new("bcfl test CA").unwrap();
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file).unwrap();
    let rest = ca
        .server(&["127.0.0.1"])
        .unwrap()
        .write(dir.path(), "rest")
        .unwrap();
    let (cert, key) = (rest.cert.to_str().unwrap(), rest.key.to_str().unwrap());
    let ledger = Ledger::start_with(dir.path(), &["--tls-cert", cert, "--tls-key", key]);
    assert!(ledger.url().starts_with("https://"), "{}", ledger.url());

    // Without the CA: a clear refusal.
    let untrusting = Cli::new(ledger.url(), dir.path().join("keys"));
    untrusting.keygen("admin");
    let out = untrusting.run("admin", &["audit", "consortium"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not trusted") && stderr.contains("--ca-cert"),
        "{stderr}"
    );

    // With it: the whole setup over https.
    let cli = untrusting.with_ca_cert(&ca_file);
    cli.keygen("alice");
    let blob_cert = ca
        .server(&["127.0.0.1"])
        .unwrap()
        .write(dir.path(), "alice")
        .unwrap();
    let data: Vec<u8> = (0..150_000u32).map(|i| (i * 11 + i / 97) as u8).collect();
    let file = dir.path().join("update.bin");
    std::fs::write(&file, &data).unwrap();
    let mut command = cli.command("alice");
    command
        .args(["node", "serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.path().join("store-alice"))
        .arg("--add")
        .arg(&file)
        .arg("--tls-cert")
        .arg(&blob_cert.cert)
        .arg("--tls-key")
        .arg(&blob_cert.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _node = ChildGuard::new(child);
    let listening: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let url = listening["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://"), "{listening}");
    ConsortiumSetup::new()
        .with_init_args(&["--min-participants", "2"])
        .with_member("alice", &url)
        .run(&cli);
    let members = cli.json("admin", &["audit", "members"]);
    assert!(members.to_string().contains(&url), "{members}");

    // The admin (served like a member) downloads alice's blob over https.
    let alice = cli.public_key("alice");
    let admin = Arc::new(Signer::from_file(&cli.key_dir().join("admin.priv")).unwrap());
    let cas = bcfl_tls::read_certificates(&ca_file).unwrap();
    let http = bcfl_tls::client_builder_trusting(&cas)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let sha = bcfl_fed::digest::sha256_hex(&data);
    let blob_url = format!("{url}/v1/blobs/{sha}");
    let response = PeerClient::new(http, admin.clone())
        .get(&alice, &blob_url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &data[..]);
    // A client that does not trust the CA is told why.
    let plain = bcfl_tls::client_builder_trusting(&[]).build().unwrap();
    let error = PeerClient::new(plain, admin)
        .get(&alice, &blob_url)
        .send()
        .await
        .unwrap_err();
    assert!(bcfl_tls::explain(&error).contains("not trusted"));
}
