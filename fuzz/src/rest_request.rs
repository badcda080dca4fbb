//! The `rest_request` target: one HTTP request, made of arbitrary bytes, through devnet's whole
//! REST router (the Sawtooth REST API: routes, query parameters, paging, `wait`, bodies), in
//! process, over a real devnet ledger holding its genesis block and one committed-looking
//! submission queue (no processor is connected, so nothing executes).
//!
//! Input: a method byte, then the request target (`/path?query`) up to the first `\n`, then
//! `name: value` header lines up to an empty line, then the body.
//!
//! Invariants: the router never panics, and answers 500 only where the real Sawtooth 1.2.6 REST
//! API does and devnet copies it on purpose: a `POST /batch_statuses` or `POST /receipts` whose
//! body is not JSON (aiohttp's `request.json()` raises and the handler does not catch it: "Server
//! got itself in trouble"). The first run of this target found that case within seconds; it is
//! kept in the corpus.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bcfl_devnet::ledger::{Devnet, DevnetConfig};
use bcfl_devnet::rest::{router_with_config, RestConfig};

const METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _devnet: Devnet,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = crate::http::runtime();
        let dir = std::env::temp_dir().join(format!("bcfl-fuzz-rest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let devnet = {
            // The ledger binds its component socket inside the runtime's context.
            let _guard = runtime.enter();
            Devnet::start(DevnetConfig {
                data_dir: dir,
                component_endpoint: "tcp://127.0.0.1:0".into(),
                ..DevnetConfig::default()
            })
            .expect("devnet starts")
        };
        // Short waits: a `wait` query must not hold the fuzzer.
        let config = RestConfig {
            validator_timeout: Duration::from_millis(20),
            body_slot_wait: Duration::from_millis(20),
            body_read_timeout: Duration::from_millis(200),
            ..RestConfig::default()
        };
        let router = router_with_config(Arc::clone(&devnet.ledger()), config);
        Fixture {
            runtime,
            router,
            _devnet: devnet,
        }
    })
}

/// One request through the router; see the module docs.
pub fn rest_request(data: &[u8]) {
    let Some(raw) = crate::http::parse(data) else {
        return;
    };
    let method = METHODS[usize::from(raw.flags) % METHODS.len()].clone();
    let (target, headers, rest) = (raw.target, raw.headers, raw.body);
    let Ok(uri) = axum::http::Uri::try_from(target) else {
        return;
    };
    let mirrored_500 = method == Method::POST
        && matches!(uri.path(), "/batch_statuses" | "/receipts")
        && serde_json::from_slice::<serde_json::Value>(rest).is_err();
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &headers {
        builder = builder.header(name.as_slice(), value.as_slice());
    }
    let Ok(request) = builder.body(Body::from(rest.to_vec())) else {
        return;
    };
    let fx = fixture();
    let status = crate::http::send(&fx.runtime, fx.router.clone(), request, 16 << 20);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        assert!(mirrored_500, "answered 500");
    }
}

/// Seeds: every route of the REST API with its query parameters, good and bad, and a batch.
pub fn seeds(batch_list: &[u8]) -> Vec<Vec<u8>> {
    let id = "a".repeat(128);
    let targets: Vec<(u8, String, &str)> = vec![
        (0, "/blocks".into(), ""),
        (0, "/blocks?limit=1&reverse".into(), ""),
        (0, "/blocks?start=0x0000000000000000&limit=3".into(), ""),
        (0, "/blocks?head=zz&limit=-1".into(), ""),
        (0, format!("/blocks/{id}"), ""),
        (0, "/batches?id=a,b&count=7".into(), ""),
        (0, format!("/batches/{id}"), ""),
        (0, "/transactions?limit=1000000&reverse=false".into(), ""),
        (0, format!("/transactions/{id}"), ""),
        (0, "/state?address=085493&limit=2".into(), ""),
        (0, "/state?address=not-hex".into(), ""),
        (0, format!("/state/{}", "0".repeat(70)), ""),
        (0, format!("/batch_statuses?id={id}&wait=1"), ""),
        (0, format!("/batch_statuses?id={id}&wait"), ""),
        (0, format!("/receipts?id={id}"), ""),
        (0, "/peers".into(), ""),
        (0, "/status".into(), ""),
        (0, "/subscriptions".into(), ""),
        (0, "/no/such/route".into(), ""),
        (3, "/blocks".into(), ""),
        (
            2,
            "/batch_statuses".into(),
            "content-type: application/json",
        ),
        (
            2,
            "/batches".into(),
            "content-type: application/octet-stream",
        ),
        (2, "/batches".into(), "content-type: text/plain"),
    ];
    let mut out = Vec::new();
    for (method, target, header) in targets {
        let mut input = vec![method];
        input.extend_from_slice(target.as_bytes());
        input.push(b'\n');
        if !header.is_empty() {
            input.extend_from_slice(header.as_bytes());
            input.push(b'\n');
        }
        input.push(b'\n');
        if target == "/batch_statuses" {
            input.extend_from_slice(format!("[\"{id}\"]").as_bytes());
        } else if header.contains("octet-stream") {
            input.extend_from_slice(batch_list);
        }
        out.push(input);
    }
    out
}
