//! End to end: the `bcfl` CLI against a real ledger with the real `bcfl-tp` processor, started
//! as child processes on loopback: `bcfl-devnet`, and a real Sawtooth 1.2.6 validator with
//! devmode consensus (`on_sawtooth`, skipped where its sources are absent). One test body, both
//! ledgers: the same commands must give the same answers.

use std::process::Command;
use std::time::{Duration, Instant};

use bcfl_testkit::{AnyLedger, Binary, Cli, ConsortiumSetup, LedgerKind};
use serde_json::Value;

bcfl_testkit::on_each_ledger!(a_round_end_to_end_through_the_cli);
bcfl_testkit::on_each_ledger!(a_sampled_round_takes_commitments_only_from_the_members_it_drew);

fn a_round_end_to_end_through_the_cli(kind: LedgerKind) {
    let dir = tempfile::tempdir().unwrap();
    let Some(ledger) = AnyLedger::start(kind, dir.path()) else {
        return;
    };
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));

    for name in ["admin", "alice", "bob"] {
        cli.ok(name, &["keygen", name]);
    }
    let again = cli.run("admin", &["keygen", "alice"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let (alice, bob) = (cli.public_key("alice"), cli.public_key("bob"));

    let base = "11".repeat(32);
    let out = cli.ok(
        "admin",
        &[
            "consortium",
            "init",
            "--base-model-sha256",
            &base,
            "--min-participants",
            "2",
            "--quorum",
            "2",
            "--sketch-length",
            "4",
            "--anomaly",
            "zscore",
        ],
    );
    assert!(
        out.starts_with("batch ") && out.trim_end().ends_with("COMMITTED"),
        "{out}"
    );
    let consortium = cli.json("admin", &["audit", "consortium"]);
    assert_eq!(consortium["params"]["sketch_length"], 4);
    assert_eq!(
        consortium["params"]["anomaly"]["zscore"]["threshold_ppm"],
        3_500_000
    );
    assert_eq!(consortium["admin_keys"][0], cli.public_key("admin"));

    for (name, port) in [("alice", 9001), ("bob", 9002)] {
        let endpoint = format!("http://127.0.0.1:{port}");
        let status = cli.json(
            "admin",
            &[
                "member",
                "register",
                name,
                "--name",
                name,
                "--endpoint",
                &endpoint,
            ],
        );
        assert_eq!(status["status"], "COMMITTED");
        assert_eq!(status["batch_id"].as_str().unwrap().len(), 128);
    }
    let members = cli.json("admin", &["audit", "members"]);
    assert_eq!(members.as_array().unwrap().len(), 2);

    // A member may change its own endpoint; the name it leaves out is kept.
    let out = cli.ok(
        "alice",
        &[
            "member",
            "update",
            "alice",
            "--endpoint",
            "http://127.0.0.1:9101",
            "--no-wait",
        ],
    );
    assert!(out.starts_with("batch "), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let record = cli.json("admin", &["audit", "member", &alice]);
        if record["member"]["endpoint"] == "http://127.0.0.1:9101" {
            assert_eq!(record["member"]["name"], "alice");
            assert_eq!(record["member"]["status"], "ACTIVE");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the update never committed: {record}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Only an admin sets a member's sample cap; the CLI refuses a cap of 0 before signing.
    cli.ok(
        "admin",
        &["member", "update", "bob", "--max-samples", "100"],
    );
    let record = cli.json("admin", &["audit", "member", &bob]);
    assert_eq!(
        record["member"]["max_samples"]
            .to_string()
            .trim_matches('"'),
        "100",
        "{record}"
    );
    let denied = cli.run("bob", &["member", "update", "bob", "--max-samples", "5000"]);
    assert_eq!(denied.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("only an admin may change member"),
        "{stderr}"
    );
    let zero = cli.run("admin", &["member", "update", "bob", "--max-samples", "0"]);
    assert!(!zero.status.success());
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(
        stderr.contains("a sample cap is a whole number from 1"),
        "{stderr}"
    );

    // A non-admin cannot open a round: the processor's reason comes back, exit status 2.
    let denied = cli.run("bob", &["round", "open", "--aggregator", "alice"]);
    assert_eq!(denied.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("was rejected"), "{stderr}");

    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    let round = cli.json("admin", &["audit", "round", "1"]);
    assert_eq!(round["round"]["phase"], "OPEN");
    assert_eq!(round["round"]["parent_model_sha256"], base);

    let files = dir.path();
    std::fs::write(files.join("bad-sketch"), "1,2,3").unwrap();
    std::fs::write(files.join("wide-sketch"), "1 2 3 128").unwrap();
    for (name, blob, sketch, loss) in [
        ("alice", b"update-a".as_slice(), "10, -3 7\n0", "0.25"),
        ("bob", b"update-b".as_slice(), "9 -2 8 1", "-0.5"),
    ] {
        let blob_path = files.join(format!("{name}.blob"));
        let sketch_path = files.join(format!("{name}.sketch"));
        std::fs::write(&blob_path, blob).unwrap();
        std::fs::write(&sketch_path, sketch).unwrap();
        let commit = |sketch: &std::path::Path| {
            cli.run(
                name,
                &[
                    "commit",
                    "--blob",
                    blob_path.to_str().unwrap(),
                    "--samples",
                    "100",
                    "--loss",
                    loss,
                    "--norm",
                    "1.5",
                    "--sketch",
                    sketch.to_str().unwrap(),
                ],
            )
        };
        let short = commit(&files.join("bad-sketch"));
        assert_eq!(short.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&short.stderr).contains("exactly 4"));
        // The ledger keeps a sketch one byte a value.
        let wide = commit(&files.join("wide-sketch"));
        assert_eq!(wide.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&wide.stderr);
        assert!(stderr.contains("a value outside -128..=127"), "{stderr}");
        let committed = commit(&sketch_path);
        assert!(
            committed.status.success(),
            "{}",
            String::from_utf8_lossy(&committed.stderr)
        );
    }
    let round = cli.json("admin", &["audit", "round", "1"]);
    let commitments = round["commitments"].as_array().unwrap();
    assert_eq!(commitments.len(), 2);
    let bob_commit = commitments
        .iter()
        .find(|c| c["member"] == bob.as_str())
        .unwrap();
    assert_eq!(bob_commit["loss_micro"], -500_000);
    assert_eq!(bob_commit["norm_micro"], 1_500_000);
    assert_eq!(bob_commit["sketch"], serde_json::json!([9, -2, 8, 1]));

    cli.ok(
        "alice",
        &[
            "bandwidth",
            "report",
            "--link",
            &format!("{bob}:1000000:500"),
        ],
    );
    let dot = cli.ok("admin", &["audit", "bandwidth", "--format", "dot"]);
    assert!(
        dot.contains(&format!(
            "\"{alice}\" -> \"{bob}\" [label=\"1000000 B/s\\n500 us\"]"
        )),
        "{dot}"
    );

    cli.ok("alice", &["round", "evaluate"]);
    let model = files.join("global.bin");
    std::fs::write(&model, b"global model bytes").unwrap();
    cli.ok(
        "alice",
        &["aggregate", "commit", "--model", model.to_str().unwrap()],
    );
    let round = cli.json("admin", &["audit", "round", "1"]);
    assert_eq!(round["round"]["phase"], "AGGREGATED");
    assert_eq!(round["aggregate"]["size_bytes"], 18);

    let verify = |args: &[&str]| {
        let mut all = vec!["audit", "verify"];
        all.extend_from_slice(args);
        cli.run("admin", &all).status.code()
    };
    let model = model.to_str().unwrap();
    let alice_blob = files.join("alice.blob");
    let alice_blob = alice_blob.to_str().unwrap();
    assert_eq!(verify(&[model, "--round", "1", "--aggregate"]), Some(0));
    assert_eq!(
        verify(&[alice_blob, "--round", "1", "--aggregate"]),
        Some(1)
    );
    assert_eq!(
        verify(&[alice_blob, "--round", "1", "--member", "alice"]),
        Some(0)
    );
    assert_eq!(
        verify(&[alice_blob, "--round", "1", "--member", "bob"]),
        Some(1)
    );

    cli.ok("admin", &["round", "close"]);
    let export = cli.ok("admin", &["audit", "export"]);
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for t in [
        "consortium",
        "members",
        "round",
        "commitments",
        "links",
        "verdict",
        "aggregate",
    ] {
        assert!(types.contains(&t), "{t} missing from export: {types:?}");
    }
    let round = lines.iter().find(|l| l["type"] == "round").unwrap();
    assert_eq!(round["value"]["phase"], "CLOSED");
    let rounds = cli.ok("admin", &["audit", "rounds"]);
    assert!(
        rounds.lines().nth(1).unwrap().contains("CLOSED"),
        "{rounds}"
    );

    // Round 2: the aggregator is the centre of the measured graph (symmetric here, so the
    // smaller key wins the tie) and the parent model is round 1's aggregate.
    cli.ok(
        "bob",
        &["bandwidth", "report", "--link", "alice:2000000:400"],
    );
    cli.ok("admin", &["round", "open", "--aggregator", "centre"]);
    let round1 = cli.json("admin", &["audit", "round", "1"]);
    let round2 = cli.json("admin", &["audit", "round", "2"]);
    assert_eq!(
        round2["round"]["aggregator"],
        alice.clone().min(bob.clone())
    );
    assert_eq!(
        round2["round"]["parent_model_sha256"],
        round1["aggregate"]["model_sha256"]
    );

    cli.ok(
        "admin",
        &[
            "member",
            "suspend",
            "bob",
            "--reason",
            "left the consortium",
        ],
    );
    let record = cli.json("admin", &["audit", "member", "bob"]);
    assert_eq!(record["member"]["status"], "SUSPENDED");
    let history = cli.json("admin", &["audit", "history"]);
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first; the rejected open_round never reached a block.
    assert_eq!(actions.first(), Some(&"suspend_member"));
    assert_eq!(actions.last(), Some(&"init_consortium"));
    assert_eq!(actions.iter().filter(|a| **a == "open_round").count(), 2);
    assert_eq!(actions.iter().filter(|a| **a == "commit_update").count(), 2);
    let init = history.as_array().unwrap().last().unwrap();
    assert_eq!(init["signer_public_key"], cli.public_key("admin"));
    assert_eq!(
        init["payload"]["init_consortium"]["params"]["sketch_length"],
        4
    );

    assert_eq!(record["member"]["suspend_reason"], "left the consortium");
    assert_eq!(record["commitments"].as_array().unwrap().len(), 1);
    assert_eq!(record["links_in"][0]["from"], alice.as_str());
}

#[test]
fn an_unreachable_ledger_is_named_in_the_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = Command::new(Binary::Bcfl.path())
        .args(["--url", &url, "audit", "rounds"])
        .output()
        .expect("running bcfl");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the REST API") && stderr.contains(&url),
        "{stderr}"
    );
}

/// `consortium init --sample-fraction 0.34` with three members: round 1 draws two of them
/// (ceil(3 x 0.34)), the audit shows them, the third member's commitment is refused with the
/// processor's reason and a drawn member's is recorded.
fn a_sampled_round_takes_commitments_only_from_the_members_it_drew(kind: LedgerKind) {
    let dir = tempfile::tempdir().unwrap();
    let Some(ledger) = AnyLedger::start(kind, dir.path()) else {
        return;
    };
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    let names = ["alice", "bob", "carol"];
    let mut setup = ConsortiumSetup::new().with_init_args(&[
        "--min-participants",
        "2",
        "--quorum",
        "1",
        "--sketch-length",
        "4",
        "--sample-fraction",
        "0.34",
        "--no-anomaly",
    ]);
    for (i, name) in names.iter().enumerate() {
        setup = setup.with_member(name, &format!("http://127.0.0.1:{}", 9001 + i));
    }
    setup.run(&cli);
    let consortium = cli.json("admin", &["audit", "consortium"]);
    assert_eq!(consortium["params"]["sample_ppm"], 340_000);
    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    let round = cli.json("admin", &["audit", "round", "1"]);
    let drawn: Vec<String> = round["round"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(drawn.len(), 2, "{round}");
    let keys: Vec<String> = names.iter().map(|n| cli.public_key(n)).collect();
    assert!(drawn.iter().all(|k| keys.contains(k)));
    let left_out = names
        .iter()
        .find(|n| !drawn.contains(&cli.public_key(n)))
        .unwrap();
    let inside = names
        .iter()
        .find(|n| drawn.contains(&cli.public_key(n)))
        .unwrap();
    let files = dir.path();
    std::fs::write(files.join("sketch"), "1 2 3 4").unwrap();
    let commit = |name: &str| {
        let blob = files.join(format!("{name}.blob"));
        std::fs::write(&blob, name.as_bytes()).unwrap();
        cli.run(
            name,
            &[
                "commit",
                "--blob",
                blob.to_str().unwrap(),
                "--samples",
                "10",
                "--loss",
                "0.5",
                "--norm",
                "1",
                "--sketch",
                files.join("sketch").to_str().unwrap(),
            ],
        )
    };
    let refused = commit(left_out);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "was not drawn to train round 1 (the consortium samples 2 of its members a round)"
        ),
        "{stderr}"
    );
    assert!(commit(inside).status.success());
    let round = cli.json("admin", &["audit", "round", "1"]);
    assert_eq!(
        round["round"]["committers"],
        serde_json::json!([cli.public_key(inside)])
    );
}
