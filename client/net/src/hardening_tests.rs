//! Loopback regression tests of the issue "Trust and hardening": server-side request forgery
//! through relays and pulls (item 4), hostile manifests (item 5) and looping or hijacked
//! upstream chains (item 6). Real servers and real sockets on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;

use super::blob::BlobStore;
use super::manifest::{BlobId, Manifest, MAX_CHUNK_SIZE};
use super::registry::MAX_CHAIN_DEPTH;
use super::route::Peers;
use super::transfer::{http_client, Transfers};
use super::transfer_tests::{blob, kept, nodes, TestNode, CHUNK};

/// A loopback HTTP server answering every request with `status` and `body`, counting the
/// requests it gets; returns its base URL and the count.
async fn fake_peer(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (axum::http::StatusCode::from_u16(status).unwrap(), body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// A loopback "holder" serving `manifest` for every blob and then `body_bytes` of zeros as the
/// blob (streamed), counting the bytes it managed to send.
async fn hostile_holder(manifest: Manifest, body_bytes: u64) -> (String, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let manifest = serde_json::to_string(&manifest).unwrap();
    let app = Router::new()
        .route(
            "/v1/blobs/{id}/manifest",
            get(move || {
                let manifest = manifest.clone();
                async move { manifest }
            }),
        )
        .route(
            "/v1/blobs/{id}",
            get(move || {
                let counter = counter.clone();
                async move {
                    let stream = futures_util::stream::unfold(0u64, move |done| {
                        let counter = counter.clone();
                        async move {
                            if done >= body_bytes {
                                return None;
                            }
                            let n = (body_bytes - done).min(1 << 20);
                            counter.fetch_add(n as usize, Ordering::SeqCst);
                            let piece = bytes::Bytes::from(vec![0u8; n as usize]);
                            Some((Ok::<_, std::io::Error>(piece), done + n))
                        }
                    });
                    axum::body::Body::from_stream(stream)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sent)
}

fn client() -> reqwest::Client {
    http_client(Duration::from_secs(2))
}

/// Item 4: `/v1/relay` and `/v1/pull` used to take any URL as upstream, so any caller could
/// make a member's node request any address (another port, a path of its choosing). Upstream
/// chains now name registered members; a URL or an unknown key is refused (400) and nothing is
/// contacted.
#[tokio::test]
async fn relays_and_pulls_contact_only_registered_members() {
    let (nodes, _) = nodes(2).await;
    let (victim, hits) = fake_peer(200, "internal admin page").await;
    let id = BlobId::of_bytes(b"anything");
    let http = client();
    for upstream in [
        victim.clone(),
        format!("{victim}/admin?x=1"),
        "n9".to_owned(),
    ] {
        let url = format!(
            "{}/v1/relay/{id}?upstream={}",
            nodes[0].url,
            super::transfer::encode(&upstream)
        );
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{upstream}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains("is not a registered member with an endpoint"),
            "{text}"
        );
        let manifest = http
            .get(url.replace("?upstream", "/manifest?upstream"))
            .send()
            .await
            .unwrap();
        assert_eq!(manifest.status(), 400, "{upstream}");
        let pull = http
            .post(format!("{}/v1/pull", nodes[0].url))
            .json(&serde_json::json!({ "sha256": id, "upstream": [upstream] }))
            .send()
            .await
            .unwrap();
        assert_eq!(pull.status(), 400, "{upstream}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the victim was contacted");
}

/// Item 4: an upstream's answer used to be repeated in the relay's error, so a relay could be
/// used to read other servers' pages. Errors now say the status and a fixed reason only.
#[tokio::test]
async fn upstream_answers_are_never_echoed() {
    let (nodes, mut peers) = nodes(2).await;
    let (evil, hits) = fake_peer(500, "SECRET-BANNER ssh-2.0 on port 22").await;
    peers.0.insert("evil".into(), evil);
    nodes[0].transfers.registry().replace(peers.clone());
    nodes[1].transfers.registry().replace(peers);
    let id = BlobId::of_bytes(b"never held");
    let http = client();
    let response = http
        .get(format!("{}/v1/relay/{id}?upstream=evil", nodes[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(hits.load(Ordering::SeqCst) > 0);
    // The same through a chain: n1 asks n0 to relay from evil.
    let failure = nodes[1]
        .transfers
        .fetch(&id, vec!["n0".into(), "evil".into()], None)
        .await
        .unwrap_err();
    assert!(!failure.error.contains("SECRET"), "{failure:?}");
    assert_eq!(failure.failed_peer.as_deref(), Some("evil"), "{failure:?}");
}

/// Item 6: `relay?upstream=self,self,self` made a node wait on its own transfer for 30 s, and
/// every honest fetch of that blob joined the stuck transfer. Loops, repeated nodes and chains
/// deeper than the cap are refused at once.
#[tokio::test]
async fn chains_with_loops_or_too_many_nodes_are_refused() {
    let (nodes, mut peers) = nodes(3).await;
    let data = blob(100_000, 3);
    let id = nodes[2].store().insert_bytes(&data).await.unwrap();
    let many: Vec<String> = (0..=MAX_CHAIN_DEPTH).map(|i| format!("x{i}")).collect();
    for name in &many {
        peers.0.insert(name.clone(), nodes[1].url.clone());
    }
    nodes[0].transfers.registry().replace(peers);
    let http = client();
    let cases = [
        ("n0,n0,n0", "names this node (n0) itself"),
        ("n0", "names this node (n0) itself"),
        ("n1,n2,n1", "names n1 more than once"),
        ("n2,n2", "names n2 more than once"),
        ("", "the upstream chain is empty"),
        (&many.join(","), "more than the limit of 16"),
    ];
    for (upstream, expected) in cases {
        let started = Instant::now();
        let response = http
            .get(format!(
                "{}/v1/relay/{id}?upstream={upstream}",
                nodes[0].url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{upstream}");
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{upstream}: {text}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A good chain still works.
    let done = nodes[0]
        .transfers
        .fetch(&id, vec!["n1".into(), "n2".into()], Some(100_000))
        .await
        .unwrap();
    assert_eq!(done.size, 100_000);
}

/// Item 6: a transfer along a hanging chain used to be joined by every later request for the
/// same blob, whatever its chain, so one bad request blocked honest ones for 30 s and got the
/// honest relay blamed. A request along another chain now runs its own transfer.
#[tokio::test]
async fn a_transfer_is_joined_only_along_the_same_chain() {
    let (nodes, mut peers) = nodes(3).await;
    let data = blob(200_000, 4);
    let id = nodes[2].store().insert_bytes(&data).await.unwrap();
    // A registered member whose server accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    peers.0.insert(
        "hang".into(),
        format!("http://{}", listener.local_addr().unwrap()),
    );
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for node in &nodes {
        node.transfers.registry().replace(peers.clone());
    }
    // The attacker asks n0 to relay the blob from the hanging member.
    let attack = {
        let url = format!("{}/v1/relay/{id}?upstream=hang", nodes[0].url);
        tokio::spawn(async move { client().get(url).send().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // An honest n1 fetches through n0 from n2, the holder.
    let started = Instant::now();
    let done = nodes[1]
        .transfers
        .fetch(&id, vec!["n0".into(), "n2".into()], Some(200_000))
        .await
        .unwrap();
    assert_eq!(done.size, 200_000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(std::fs::read(nodes[1].store().path(&id)).unwrap(), data);
    attack.abort();
}

/// Item 5: a holder announcing a 4 GB chunk made a receiver buffer it whole (2.8 GB in 4 s).
/// A manifest's chunks are capped, and its size must match the size the receiver expects.
#[tokio::test]
async fn hostile_manifests_are_refused_before_any_byte() {
    let id = BlobId::of_bytes(b"the real blob");
    let huge = 4u64 << 30;
    let cases = [
        (
            Manifest {
                sha256: id.clone(),
                size: huge,
                chunk_size: huge,
                chunks: vec!["00".repeat(32)],
            },
            None,
            "chunk size 4294967296 exceeds the limit of 16777216 bytes",
        ),
        (
            Manifest {
                sha256: id.clone(),
                size: 64 << 20,
                chunk_size: 1 << 20,
                chunks: vec!["00".repeat(32); 64],
            },
            Some(13),
            "it declares 67108864 bytes, expected exactly 13 bytes",
        ),
        (
            Manifest {
                sha256: id.clone(),
                size: 64 << 20,
                chunk_size: 1 << 20,
                chunks: vec!["00".repeat(32); 64],
            },
            None,
            "it declares 67108864 bytes, expected at most 1048576 bytes",
        ),
    ];
    for (manifest, size, expected) in cases {
        let (url, sent) = hostile_holder(manifest, huge).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlobStore::open(dir.path(), CHUNK).unwrap());
        let transfers = Arc::new(
            Transfers::new(store, super::auth::PeerClient::unsigned(client()))
                .with_registry(super::registry::Registry::with_peers(
                    None,
                    Peers([("holder".to_owned(), url)].into()),
                ))
                .with_max_blob_size(1 << 20),
        );
        let failure = transfers
            .fetch(&id, vec!["holder".into()], size)
            .await
            .unwrap_err();
        assert!(failure.error.contains(expected), "{failure:?}");
        assert!(failure.integrity);
        assert_eq!(failure.failed_peer.as_deref(), Some("holder"));
        assert_eq!(sent.load(Ordering::SeqCst), 0, "the body was asked for");
    }
    assert_eq!(MAX_CHUNK_SIZE, 16 << 20);
}

/// Item 5: verified bytes of a running transfer are read back from disk by its readers, not
/// kept in memory: a relay that forwards a blob while receiving it holds about one chunk.
#[tokio::test]
async fn relays_read_verified_bytes_back_from_disk() {
    let (nodes, _) = nodes(3).await;
    let data = blob(3_000_000, 5);
    let id = nodes[0].store().insert_bytes(&data).await.unwrap();
    let done = nodes[2]
        .transfers
        .fetch(&id, vec!["n1".into(), "n0".into()], Some(3_000_000))
        .await
        .unwrap();
    assert_eq!(done.size, 3_000_000);
    assert_eq!(std::fs::read(nodes[2].store().path(&id)).unwrap(), data);
    let relay: &TestNode = &nodes[1];
    assert!(kept(relay.store(), &id).await);
    assert_eq!(std::fs::read(relay.store().path(&id)).unwrap(), data);
}
