//! Blob transfer benchmark: what signed requests and TLS cost a member downloading a blob from
//! another member's blob server, over loopback, in this process. Prints one JSON object.
//!
//! ```text
//! cargo bench -p bcfl-tests --bench blob_transfer                 # 50 MiB, 3 repeats
//! cargo bench -p bcfl-tests --bench blob_transfer -- --mib 200 --repeats 5
//! ```
//!
//! Scenarios (each the median of `--repeats`):
//! * `transfer_http`, `transfer_https`: one verified fetch of a `--mib` MiB blob
//!   ([`Transfers::fetch`]: signed manifest and data requests, chunk verification, written to
//!   disk and committed), from a blob server over HTTP and over HTTPS (rustls); seconds and MB/s.
//! * `requests_signed`, `requests_unsigned_baseline`: `--requests` sequential small requests on
//!   one connection: `GET /v1/probe?bytes=0` of a blob server (signed and checked: signature,
//!   clock window, membership, nonce) against the same route of a bare axum server with no
//!   authentication; microseconds per request (the difference is what signing costs a request).
//! * `sign_us`, `verify_us`: signing a request, and the server's whole check of one, alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_net::auth::{unix_now, Authenticator, PeerClient, SignedHeaders};
use bcfl_net::blob::BlobStore;
use bcfl_net::registry::Registry;
use bcfl_net::route::Peers;
use bcfl_net::server::NodeServer;
use bcfl_net::transfer::Transfers;
use bcfl_tls::pki::TestCa;
use bcfl_tls::{client_builder_trusting, read_certificates, ServerTls};
use serde_json::json;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mib = arg("--mib", 50);
    let repeats = arg("--repeats", 3).max(1) as usize;
    let requests = arg("--requests", 2000).max(1) as usize;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("bench CA")?;
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file)?;
    let files = ca.server(&["127.0.0.1"])?.write(dir.path(), "server")?;
    let tls = ServerTls::from_pem_files(&files.cert, &files.key)?;
    let cas = read_certificates(&ca_file)?;
    let client = |cas: &[_]| {
        client_builder_trusting(cas)
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .expect("a client")
    };

    let (server_key, member_key) = (
        Arc::new(Signer::new(PrivateKey::random())),
        Arc::new(Signer::new(PrivateKey::random())),
    );
    let server_id = server_key.public_key().as_hex().to_owned();
    let member_id = member_key.public_key().as_hex().to_owned();
    let store = Arc::new(BlobStore::open(dir.path().join("holder"), 1 << 20)?);
    let data: Vec<u8> = (0..mib << 20).map(|i| (i * 31 + (i >> 13)) as u8).collect();
    let id = store.insert_bytes(&data).await?;
    drop(data);
    let registry = Registry::new(Some(server_id.clone()));
    registry.allow_keys([member_id.clone()]);
    let holder = Arc::new(
        Transfers::new(store, PeerClient::new(client(&cas), server_key.clone()))
            .with_registry(registry.clone()),
    );
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (http_addr, _h) = NodeServer::new(holder.clone(), 1 << 20).spawn(any).await?;
    let (https_addr, _s) = NodeServer::new(holder.clone(), 1 << 20)
        .spawn_tls(any, tls)
        .await?;

    let mut out = json!({ "blob_mib": mib, "repeats": repeats });
    for (name, url) in [
        ("transfer_http", format!("http://{http_addr}")),
        ("transfer_https", format!("https://{https_addr}")),
    ] {
        let mut seconds = Vec::new();
        for r in 0..repeats {
            let store = Arc::new(BlobStore::open(
                dir.path().join(format!("{name}-{r}")),
                1 << 20,
            )?);
            let peers =
                Registry::with_peers(None, Peers([(server_id.clone(), url.clone())].into()));
            let member = Arc::new(
                Transfers::new(store, PeerClient::new(client(&cas), member_key.clone()))
                    .with_registry(peers),
            );
            let started = Instant::now();
            member
                .fetch(&id, vec![server_id.clone()], None)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            seconds.push(started.elapsed().as_secs_f64());
        }
        let s = median(seconds);
        out[name] = json!({ "seconds": s, "mb_per_s": (mib << 20) as f64 / s / 1e6 });
    }

    // Small requests, signed, against a bare server without authentication.
    let member = PeerClient::new(client(&[]), member_key.clone());
    let signed_url = format!("http://{http_addr}/v1/probe?bytes=0");
    let bare = axum::Router::new().route("/v1/probe", axum::routing::get(|| async { "" }));
    let listener = tokio::net::TcpListener::bind(any).await?;
    let bare_addr = listener.local_addr()?;
    // The same socket options as the blob server (`TCP_NODELAY`).
    tokio::spawn(async move { axum::serve(bcfl_tls::plain(listener), bare).await });
    let bare_url = format!("http://{bare_addr}/v1/probe?bytes=0");
    let plain = client(&[]);
    let mut per_request = |label: &str, us: Vec<f64>| {
        out[label] = json!({ "requests": requests, "us_per_request": median(us) });
    };
    let mut signed = Vec::new();
    let mut unsigned = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        for _ in 0..requests {
            let r = member.get(&server_id, &signed_url).send().await?;
            anyhow::ensure!(r.status().is_success(), "signed probe: {}", r.status());
            r.bytes().await?;
        }
        signed.push(started.elapsed().as_secs_f64() * 1e6 / requests as f64);
        let started = Instant::now();
        for _ in 0..requests {
            plain.get(&bare_url).send().await?.bytes().await?;
        }
        unsigned.push(started.elapsed().as_secs_f64() * 1e6 / requests as f64);
    }
    per_request("requests_signed", signed);
    per_request("requests_unsigned_baseline", unsigned);

    // Signing and checking alone.
    let n = 2000;
    let started = Instant::now();
    let headers: Vec<_> = (0..n)
        .map(|_| {
            SignedHeaders::sign(
                &member_key,
                "GET",
                "/v1/blobs",
                None,
                &server_id,
                b"",
                unix_now(),
            )
        })
        .collect();
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let auth = Authenticator::new(None, registry).with_max_skew(Duration::from_secs(60));
    let started = Instant::now();
    for h in &headers {
        auth.check("GET", "/v1/blobs", None, h, unix_now())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    out["sign_us"] = json!(sign_us);
    out["verify_us"] = json!(verify_us);
    println!("{out}");
    Ok(())
}
