//! The `blob_request` target: one HTTP request, made of arbitrary bytes, through the blob
//! server's whole router (authentication first, then routing, extractors and handlers), in
//! process.
//!
//! Input: a flags byte (bit 0: sign the request validly with a member's key, so the input
//! reaches past authentication into the handlers; bits 1-3: the method), then the request
//! target (`/path?query`) up to the first `\n`, then `name: value` header lines up to an empty
//! line (added after signing, so they can also replace the signature's headers), then the body.
//!
//! Invariants: the router never panics; an unsigned request is answered 4xx (401, or 400 for
//! what cannot be a request); a signed one is never answered 5xx. The member's registry names
//! no endpoint, so no input makes the server contact anything.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_net::auth::{unix_now, Authenticator, PeerClient, SignedHeaders};
use bcfl_net::blob::BlobStore;
use bcfl_net::registry::Registry;
use bcfl_net::server::NodeServer;
use bcfl_net::transfer::{http_client, Transfers};

/// The member whose key signs the signed inputs.
const MEMBER_KEY: &str = "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088";
/// The server's own key (its node id is the target signatures are for).
const SERVER_KEY: &str = "1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff001";

const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
    Method::TRACE,
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    transfers: Arc<Transfers>,
    member: Signer,
    server_id: String,
    _dir: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = crate::http::runtime();
        let dir = std::env::temp_dir().join(format!("bcfl-fuzz-blob-{}", std::process::id()));
        let store = Arc::new(BlobStore::open(&dir, 4096).expect("a blob store"));
        runtime
            .block_on(store.insert_bytes(b"a held blob, served to members"))
            .expect("a blob");
        let server = Signer::new(PrivateKey::from_hex(SERVER_KEY).expect("a key"));
        let member = Signer::new(PrivateKey::from_hex(MEMBER_KEY).expect("a key"));
        let registry = Registry::new(Some(server.public_key().as_hex().to_owned()));
        registry.allow_keys([member.public_key().as_hex().to_owned()]);
        let http = PeerClient::new(
            http_client(std::time::Duration::from_millis(100)),
            Arc::new(server.clone()),
        );
        let transfers = Arc::new(Transfers::new(store, http).with_registry(registry));
        Fixture {
            runtime,
            transfers,
            member,
            server_id: server.public_key().as_hex().to_owned(),
            _dir: dir,
        }
    })
}

/// One request through the router; see the module docs.
pub fn blob_request(data: &[u8]) {
    let Some(raw) = crate::http::parse(data) else {
        return;
    };
    let sign = raw.flags & 1 == 1;
    let method = METHODS[usize::from(raw.flags >> 1) % METHODS.len()].clone();
    let (target, headers) = (raw.target, raw.headers);
    let body = raw.body.to_vec();
    let Ok(uri) = axum::http::Uri::try_from(target) else {
        return;
    };
    let fx = fixture();
    let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
    if sign {
        let signed = SignedHeaders::sign(
            &fx.member,
            method.as_str(),
            uri.path(),
            uri.query(),
            &fx.server_id,
            &body,
            unix_now(),
        );
        for (name, value) in signed.pairs() {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in &headers {
        builder = builder.header(name.as_slice(), value.as_slice());
    }
    let Ok(request) = builder.body(Body::from(body)) else {
        return;
    };
    // A fresh nonce cache per input: fuzzing sends far more signed requests than a window holds.
    let auth = Authenticator::new(None, fx.transfers.registry().clone());
    let router = NodeServer::new(fx.transfers.clone(), 1 << 16)
        .with_auth(auth)
        .router();
    // Read what it sends (bounded: probes are at most 64 KiB here).
    let status = crate::http::send(&fx.runtime, router, request, 1 << 20);
    let replaced = headers
        .iter()
        .any(|(n, _)| n.to_ascii_lowercase().starts_with(b"x-bcfl-"));
    if !sign {
        assert!(
            status.is_client_error(),
            "unsigned request answered {status}"
        );
    } else if !replaced {
        assert!(
            !status.is_server_error(),
            "signed request answered {status}"
        );
    }
}

/// Seeds: each route, signed and not, and a few malformed requests.
pub fn seeds() -> Vec<Vec<u8>> {
    let id = bcfl_fed::digest::sha256_hex(b"a held blob, served to members");
    let requests: [(u8, String, &str, &str); 10] = [
        (0, "/v1/blobs".into(), "", ""),
        (0, format!("/v1/blobs/{id}"), "", ""),
        (0, format!("/v1/blobs/{id}/manifest"), "", ""),
        (0, format!("/v1/blobs/{id}"), "range: bytes=2-9", ""),
        (1, "/v1/probe?bytes=100".into(), "", ""),
        (
            2,
            "/v1/probe".into(),
            "content-type: application/octet-stream",
            "probe bytes",
        ),
        (0, format!("/v1/relay/{id}?upstream=aa,bb&size=3"), "", ""),
        (
            2,
            "/v1/pull".into(),
            "content-type: application/json",
            r#"{"sha256":"00","upstream":[]}"#,
        ),
        (0, "/v1/blobs/not-a-hash".into(), "", ""),
        (0, "/v1/blobs".into(), "x-bcfl-nonce: 00", ""),
    ];
    let mut out = Vec::new();
    for (method, target, header, body) in requests {
        for signed in [0u8, 1] {
            let mut input = vec![(method << 1) | signed];
            input.extend_from_slice(target.as_bytes());
            input.push(b'\n');
            if !header.is_empty() {
                input.extend_from_slice(header.as_bytes());
                input.push(b'\n');
            }
            input.push(b'\n');
            input.extend_from_slice(body.as_bytes());
            out.push(input);
        }
    }
    out
}
