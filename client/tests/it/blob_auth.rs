//! Signed requests between blob servers, with real processes: `bcfl-devnet`, `bcfl-tp` and
//! `bcfl node serve` on loopback. Anonymous requests get 401, a key the chain does not know 403,
//! a replayed request 401; a registered member downloads, also one registered after the node
//! started (the node re-reads the registry for a key it does not know, rather than wait for its
//! once-a-minute refresh).

use std::sync::Arc;
use std::time::Duration;

use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_net::auth::{unix_now, PeerClient, SignedHeaders};
use bcfl_net::transfer::http_client;
use bcfl_testkit::{Cli, ConsortiumSetup, Ledger};

use crate::net_plan_cli::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_servers_serve_registered_members_only() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 333) as u8).collect();
    let file = dir.path().join("update.bin");
    std::fs::write(&file, &data).unwrap();
    let sha = bcfl_fed::digest::sha256_hex(&data);
    // alice's node starts before anyone is registered.
    let (_alice, url) = serve(&cli, "alice", &dir.path().join("store-alice"), &[&file]);
    ConsortiumSetup::new()
        .with_init_args(&["--min-participants", "2"])
        .with_member("alice", &url)
        .run(&cli);
    let alice = cli.public_key("alice");
    let blob_url = format!("{url}/v1/blobs/{sha}");
    let http = http_client(Duration::from_secs(3));

    // No signature: 401.
    let anonymous = http.get(&blob_url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // bob, registered after the node started, downloads at once.
    cli.keygen("bob");
    cli.register_member("admin", "bob", "http://127.0.0.1:9");
    let key = |name: &str| {
        Arc::new(Signer::from_file(&cli.key_dir().join(format!("{name}.priv"))).unwrap())
    };
    let bob = PeerClient::new(http.clone(), key("bob"));
    let served = bob.get(&alice, &blob_url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), &data[..]);

    // The same signed request twice: the second is a replay, 401.
    let path = format!("/v1/blobs/{sha}");
    let signed = SignedHeaders::sign(&key("bob"), "GET", &path, None, &alice, b"", unix_now());
    let send = || {
        let mut request = http.get(&blob_url);
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        request.send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.unwrap().len(), data.len());
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.unwrap().contains("replayed"));

    // A valid signature by a key the chain does not know: 403, and nothing listed.
    let stranger = PeerClient::new(http.clone(), Arc::new(Signer::new(PrivateKey::random())));
    let refused = stranger
        .get(&alice, &format!("{url}/v1/blobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("not an active member"));
}
