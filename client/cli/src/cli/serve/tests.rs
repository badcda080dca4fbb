//! The server's routes on a state built in memory: what each returns, its caching headers, and
//! that ledger text stays text.

use axum::body::Body;
use axum::http::Request;
use bcfl_protos::bcfl as pb;
use tower::ServiceExt as _;

use super::*;

fn key(i: u8) -> String {
    format!("02{}", hex::encode([i; 32]))
}

/// Three members (the third named with markup), two rounds: round 1 closed with member 3
/// excluded and an aggregate, round 2 open; links from every member to every other.
fn state() -> FamilyState {
    let mut s = FamilyState {
        head: "ab".repeat(64),
        ..Default::default()
    };
    let mut consortium = pb::Consortium::new();
    consortium.admin_keys = vec![key(9)].into();
    consortium.current_round = 2;
    s.consortium = Some(consortium);
    let names = ["alpha", "beta", "<img src=x onerror=alert(1)>"];
    for (i, name) in names.iter().enumerate() {
        let k = key(i as u8 + 1);
        s.members.insert(
            k.clone(),
            pb::Member {
                public_key: k,
                name: (*name).to_owned(),
                endpoint: format!("http://10.0.0.{}:9000", i + 1),
                status: pb::MemberStatus::ACTIVE,
                ..Default::default()
            },
        );
    }
    for number in [1, 2] {
        s.rounds.insert(
            number,
            pb::Round {
                number,
                phase: if number == 1 {
                    pb::RoundPhase::CLOSED
                } else {
                    pb::RoundPhase::OPEN
                },
                aggregator: key(1),
                parent_model_sha256: "00".repeat(32),
                ..Default::default()
            },
        );
    }
    for i in 1..=3u8 {
        s.commitments.insert(
            (1, key(i)),
            pb::Commitment {
                round: 1,
                member: key(i),
                update_sha256: hex::encode([i + 100; 32]),
                size_bytes: 1000 + u64::from(i),
                num_samples: 10,
                loss_micro: 1_500_000,
                // alpha and beta send one direction, gamma one orthogonal to it.
                sketch: bcfl_protos::signed_bytes::pack(if i < 3 { &[3, 1] } else { &[1, -3] })
                    .unwrap(),
                ..Default::default()
            },
        );
        for j in 1..=3u8 {
            if i != j {
                s.links.insert(
                    (key(i), key(j)),
                    pb::Link {
                        from: key(i),
                        to: key(j),
                        samples: vec![pb::LinkSample {
                            epoch: 1,
                            bytes_per_sec: 1_000_000 * u64::from(i + j),
                            rtt_us: 500,
                            ..Default::default()
                        }]
                        .into(),
                        ..Default::default()
                    },
                );
            }
        }
    }
    s.verdicts.insert(
        1,
        pb::Verdict {
            round: 1,
            accepted: vec![key(1), key(2)].into(),
            excluded: vec![key(3)].into(),
            evaluated_by: key(9),
            ..Default::default()
        },
    );
    s.aggregates.insert(
        1,
        pb::Aggregate {
            round: 1,
            model_sha256: "cd".repeat(32),
            size_bytes: 4321,
            submitted_by: key(1),
            ..Default::default()
        },
    );
    s
}

fn app(state: Option<FamilyState>, reports: Vec<PathBuf>) -> Router {
    let snapshot = state.map_or_else(Snapshot::default, |s| {
        Snapshot::of(s, "http://ledger:8008", !reports.is_empty())
    });
    let (_tx, rx) = watch::channel(Arc::new(snapshot));
    router(AppState {
        snapshot: rx,
        reports: Arc::new(reports),
        assets: Arc::new(Assets::bundled()),
    })
}

async fn get_with(app: &Router, uri: &str, etag: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::get(uri);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    get_with(app, uri, None).await
}

fn json_of(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn the_page_names_its_hashed_assets_and_is_revalidated_by_etag() {
    let app = app(Some(state()), vec![]);
    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains("{{"), "a placeholder is left: {html}");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, body) = get_with(&app, "/", Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    // Each asset the page names is served, immutable, under its content hash.
    let assets = Assets::bundled();
    for asset in &assets.files {
        let path = format!("/assets/{}", asset.name);
        assert!(html.contains(&path), "{path} is not linked");
        let (status, headers, body) = get(&app, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(headers[header::CONTENT_TYPE], asset.content_type);
        assert_eq!(body, asset.body);
        let digest = hex::encode(Sha256::digest(&body));
        assert!(asset.name.contains(&digest[..16]), "{}", asset.name);
    }
    let (status, _, _) = get(&app, "/assets/app-0000000000000000.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = get(&app, "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
}

#[tokio::test]
async fn the_overview_lists_members_rounds_and_every_recorded_hash() {
    let app = app(Some(state()), vec![]);
    let (status, headers, body) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    let etag = format!("\"{}\"", "ab".repeat(32));
    assert_eq!(headers[header::ETAG], etag.as_str());
    let o = json_of(&body);
    assert_eq!(o["head"], "ab".repeat(64));
    assert_eq!(o["ledger"], "http://ledger:8008");
    assert_eq!(o["consortium"]["current_round"], 2);
    let names: Vec<&str> = o["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    // By name.
    assert_eq!(names, ["<img src=x onerror=alert(1)>", "alpha", "beta"]);
    assert_eq!(o["members"][0]["commitments"], 1);
    let rounds = o["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0]["phase"], "CLOSED");
    assert_eq!(rounds[0]["aggregator_name"], "alpha");
    assert_eq!(rounds[0]["commitments"], 3);
    assert!(rounds[0]["drawn"].is_null());
    assert_eq!(
        rounds[0]["excluded"],
        serde_json::json!(["<img src=x onerror=alert(1)>"])
    );
    assert_eq!(rounds[0]["model_sha256"], "cd".repeat(32));
    assert_eq!(rounds[1]["phase"], "OPEN");
    assert!(rounds[1]["model_sha256"].is_null());
    // The verify box's lookup: an aggregate, a commitment, upper-case hex, nothing, not hex.
    let (status, _, body) = get(&app, &format!("/api/hashes/{}", "cd".repeat(32))).await;
    assert_eq!(status, StatusCode::OK);
    let found = json_of(&body);
    assert_eq!(
        found["matches"],
        serde_json::json!([{"sha256": "cd".repeat(32), "size_bytes": 4321, "kind": "aggregate",
            "round": 1, "member": "alpha"}])
    );
    let beta = hex::encode([102u8; 32]).to_uppercase();
    let found = json_of(&get(&app, &format!("/api/hashes/{beta}")).await.2);
    assert_eq!(found["matches"][0]["kind"], "commitment");
    assert_eq!(found["matches"][0]["member"], "beta");
    assert_eq!(found["matches"][0]["size_bytes"], 1002);
    let found = json_of(
        &get(&app, &format!("/api/hashes/{}", "00".repeat(32)))
            .await
            .2,
    );
    assert_eq!(found["matches"], serde_json::json!([]));
    for bad in ["abc", &"zz".repeat(32)] {
        let (status, _, _) = get(&app, &format!("/api/hashes/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert!(!o["charts"].as_bool().unwrap());
    // Unchanged head: 304.
    let (status, _, _) = get_with(&app, "/api/overview", Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = get_with(&app, "/api/overview", Some("\"other\", *")).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn before_the_ledger_is_read_the_api_says_so() {
    let app = app(None, vec![]);
    let (status, headers, body) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("not been read"));
    // The page itself is there.
    assert_eq!(get(&app, "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_round_in_detail_and_its_graph() {
    let app = app(Some(state()), vec![]);
    let (status, _, body) = get(&app, "/api/rounds/1").await;
    assert_eq!(status, StatusCode::OK);
    let d = json_of(&body);
    assert_eq!(d["round"]["number"], 1);
    assert_eq!(d["commitments"].as_array().unwrap().len(), 3);
    assert_eq!(d["commitments"][0]["name"], "alpha");
    assert_eq!(d["commitments"][0]["loss"], 1.5);
    assert_eq!(d["commitments"][0]["base_round"], 1);
    assert_eq!(d["sketch_agreement"], 1.0);
    assert_eq!(d["accepted"], serde_json::json!(["alpha", "beta"]));
    // The aggregate's contributors and exclusions are read from the verdict.
    assert_eq!(
        d["aggregate"]["contributors"],
        serde_json::json!(["alpha", "beta"])
    );
    assert_eq!(
        d["aggregate"]["excluded"],
        serde_json::json!(["<img src=x onerror=alert(1)>"])
    );
    assert_eq!(d["aggregate"]["finality"], "FINAL");

    let (status, headers, body) = get(&app, "/api/rounds/1/graph.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    let svg = String::from_utf8(body).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains(">alpha<"), "{svg}");
    // The hostile name is escaped text in the figure.
    assert!(!svg.contains("<img"), "{svg}");
    assert!(svg.contains("&lt;img"), "{svg}");

    for (uri, status) in [
        ("/api/rounds/7", StatusCode::NOT_FOUND),
        ("/api/rounds/seven", StatusCode::BAD_REQUEST),
        ("/api/rounds/7/graph.svg", StatusCode::NOT_FOUND),
        ("/api/charts/accuracy.svg", StatusCode::NOT_FOUND),
        ("/api/charts/other.svg", StatusCode::NOT_FOUND),
    ] {
        let (got, _, body) = get(&app, uri).await;
        assert_eq!(got, status, "{uri}");
        assert!(json_of(&body)["error"].is_string(), "{uri}");
    }
}

#[tokio::test]
async fn a_member_in_detail() {
    let app = app(Some(state()), vec![]);
    let (status, _, body) = get(&app, &format!("/api/members/{}", key(3))).await;
    assert_eq!(status, StatusCode::OK);
    let m = json_of(&body);
    assert_eq!(m["name"], "<img src=x onerror=alert(1)>");
    assert_eq!(m["endpoint"], "http://10.0.0.3:9000");
    let commitments = m["commitments"].as_array().unwrap();
    assert_eq!(commitments.len(), 1);
    assert_eq!(commitments[0]["round"], 1);
    assert_eq!(commitments[0]["verdict"], "excluded");
    assert_eq!(commitments[0]["update_sha256"], hex::encode([103u8; 32]));
    assert_eq!(m["aggregated"], serde_json::json!([]));
    let out = m["links_out"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["peer_name"], "alpha");
    assert_eq!(out[0]["bytes_per_sec"], 4_000_000);
    assert_eq!(m["links_in"].as_array().unwrap().len(), 2);

    let alpha = json_of(&get(&app, &format!("/api/members/{}", key(1))).await.2);
    assert_eq!(alpha["commitments"][0]["verdict"], "accepted");
    assert_eq!(alpha["aggregated"], serde_json::json!([1]));

    let (status, _, body) = get(&app, &format!("/api/members/{}", key(7))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("is not a member"));
}

#[tokio::test]
async fn charts_are_drawn_from_the_nodes_report_files() {
    use bcfl_client::round::report::{NodeEvent, Report};
    let dir = tempfile::tempdir().unwrap();
    let report = Report::new(Some(&dir.path().join("alpha.jsonl"))).unwrap();
    let start = std::time::Instant::now();
    let mut score = NodeEvent::new("alpha", &key(1), 0, "score", start, 0);
    score.accuracy = Some(0.4);
    report.record(score).unwrap();
    report
        .record(NodeEvent::new("alpha", &key(1), 1, "train", start, 0))
        .unwrap();
    let mut score = NodeEvent::new("alpha", &key(1), 1, "score", start, 0);
    score.accuracy = Some(0.55);
    report.record(score).unwrap();
    // A file that is not JSON lines is skipped, not fatal.
    std::fs::write(dir.path().join("broken.jsonl"), "not json\n").unwrap();

    let app = app(Some(state()), vec![dir.path().to_path_buf()]);
    let o = json_of(&get(&app, "/api/overview").await.2);
    assert!(o["charts"].as_bool().unwrap());
    for chart in ["accuracy", "rounds"] {
        let (status, headers, body) = get(&app, &format!("/api/charts/{chart}.svg")).await;
        assert_eq!(status, StatusCode::OK, "{chart}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        let svg = String::from_utf8(body).unwrap();
        assert!(svg.contains("<svg"), "{chart}");
        if chart == "accuracy" {
            // The round's score, in percent.
            assert!(svg.contains("55"), "{svg}");
        }
    }
}

#[tokio::test]
async fn events_start_with_the_current_head() {
    let app = app(Some(state()), vec![]);
    let response = app
        .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    use futures_util::StreamExt as _;
    let first = body.next().await.unwrap().unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert_eq!(text, format!("event: head\ndata: {}\n\n", "ab".repeat(64)));
}

/// The overview of a large consortium: 1,000 members, 10 rounds of 1,000 commitments each
/// (ignored by default: a measurement; `cargo test --release -p bcfl-cli --bin bcfl
/// overview_at_scale -- --ignored --nocapture` prints its JSON).
#[tokio::test]
#[ignore = "a measurement"]
async fn overview_at_scale() {
    let mut s = FamilyState {
        head: "ef".repeat(64),
        ..Default::default()
    };
    let key = |i: u32| format!("02{:064x}", i);
    for i in 0..1000u32 {
        s.members.insert(
            key(i),
            pb::Member {
                public_key: key(i),
                name: format!("member-{i}"),
                endpoint: format!("http://10.0.{}.{}:9000", i / 250, i % 250),
                status: pb::MemberStatus::ACTIVE,
                ..Default::default()
            },
        );
    }
    for round in 1..=10u64 {
        s.rounds.insert(
            round,
            pb::Round {
                number: round,
                phase: pb::RoundPhase::CLOSED,
                aggregator: key(0),
                ..Default::default()
            },
        );
        for i in 0..1000u32 {
            s.commitments.insert(
                (round, key(i)),
                pb::Commitment {
                    round,
                    member: key(i),
                    update_sha256: format!("{:064x}", u64::from(i) * 1000 + round),
                    size_bytes: 305_000,
                    num_samples: 40,
                    ..Default::default()
                },
            );
        }
    }
    let started = std::time::Instant::now();
    let snapshot = Snapshot::of(s, "http://ledger:8008", false);
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let bytes = snapshot.overview.len();
    let (_tx, rx) = watch::channel(Arc::new(snapshot));
    let app = router(AppState {
        snapshot: rx,
        reports: Arc::new(Vec::new()),
        assets: Arc::new(Assets::bundled()),
    });
    let started = std::time::Instant::now();
    let (status, _, body) = get(&app, "/api/overview").await;
    let serve_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), bytes);
    let started = std::time::Instant::now();
    let (status, _, _) = get(&app, "/api/rounds/10").await;
    let round_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let (status, _, body) = get(&app, &format!("/api/hashes/{:064x}", 500_007u64)).await;
    let lookup_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["matches"][0]["round"], 7);
    println!(
        "{}",
        serde_json::json!({
            "members": 1000, "rounds": 10, "commitments": 10_000,
            "overview_bytes": bytes, "overview_build_ms": build_ms,
            "overview_serve_ms": serve_ms, "round_detail_ms": round_ms,
            "hash_lookup_ms": lookup_ms,
        })
    );
}

/// A ledger that cannot be read is reported (503 with the reason, a `ledger-error` event), and
/// the server keeps trying.
#[tokio::test]
async fn a_dead_ledger_is_reported_and_not_fatal() {
    // Port 9 (discard) on loopback: nothing listens there in the test environment.
    let dead = "http://127.0.0.1:9".to_owned();
    let ledger = RestLedger::new(std::slice::from_ref(&dead), Duration::from_secs(1)).unwrap();
    let (tx, mut rx) = watch::channel(Arc::new(Snapshot::default()));
    let follower = tokio::spawn(follow(ledger, dead, false, Duration::from_secs(1), tx));
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| s.error.is_some()))
        .await
        .expect("the failure is published")
        .unwrap();
    let app = router(AppState {
        snapshot: rx,
        reports: Arc::new(Vec::new()),
        assets: Arc::new(Assets::bundled()),
    });
    let (status, _, body) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let why = json_of(&body)["error"].as_str().unwrap().to_owned();
    assert!(why.contains("127.0.0.1:9"), "{why}");
    let response = app
        .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = response.into_body().into_data_stream();
    use futures_util::StreamExt as _;
    let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: ledger-error\ndata: "), "{first}");
    assert!(!follower.is_finished(), "the follower keeps trying");
    follower.abort();
}
