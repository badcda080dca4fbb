//! End to end: binding anomaly verdicts. Five members commit to a round on a real `bcfl-devnet`
//! with the real `bcfl-tp`; one sends a scaled, sign-flipped update. `bcfl round evaluate` makes
//! the processor exclude it, `bcfl audit verdict 1` recomputes the stored verdict from the chain
//! and matches it, and `bcfl anomaly` finds the same member from a features file without a ledger.
//! In round 2 the same member commits an update that alone looks honest; its on-chain sketch
//! history still gives it away, and the audit replays that history and agrees.

use bcfl_testkit::{Cli, Ledger};

use crate::poisoned_round::{commit_with_poisoned_m4, init_poison_consortium, POISON_NAMES};

#[test]
fn the_processor_excludes_a_poisoned_update_and_the_audit_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    let names = POISON_NAMES;
    init_poison_consortium(&cli, |_| "http://127.0.0.1:9".to_owned());
    cli.ok("admin", &["round", "open", "--aggregator", "m0"]);
    let files = dir.path();
    // m4 scales its update x10 and flips its sign: the processor excludes it.
    commit_with_poisoned_m4(&cli, files, &names[1..]);
    let m2 = cli.public_key("m2");
    cli.ok(
        "m1",
        &[
            "bandwidth",
            "report",
            "--link",
            &format!("{m2}:1000000:500"),
        ],
    );
    cli.ok("m0", &["round", "evaluate"]);

    let m4 = cli.public_key("m4");
    let round = cli.json("admin", &["audit", "round", "1"]);
    let verdict = &round["verdict"];
    assert_eq!(verdict["excluded"], serde_json::json!([m4]), "{verdict}");
    assert_eq!(verdict["accepted"].as_array().unwrap().len(), 4);
    let methods = verdict["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 2, "{verdict}");
    // Scores are aligned with the scored committers, flags are positions among them.
    let scored = verdict["scored"].as_array().unwrap();
    assert_eq!(scored.len(), 5, "{verdict}");
    let m4_at = scored.iter().position(|k| k == m4.as_str()).unwrap();
    for m in methods {
        assert_eq!(m["scores_micro"].as_array().unwrap().len(), 5, "{m}");
    }
    assert!(methods
        .iter()
        .any(|m| m["flagged"] == serde_json::json!([m4_at])));

    let audit = cli.json("admin", &["audit", "verdict", "1"]);
    assert_eq!(audit["matches"], true, "{audit}");
    assert_eq!(audit["recomputed"]["excluded"], serde_json::json!([m4]));
    let text = cli.ok("admin", &["audit", "verdict", "1"]);
    assert!(text.contains("MATCH"), "{text}");
    let missing = cli.run("admin", &["audit", "verdict", "7"]);
    assert_eq!(missing.status.code(), Some(2));

    // The same evidence off the ledger.
    let features = files.join("features.csv");
    let mut csv = String::from("member,update_norm,sketch_cosine_distance\n");
    for c in round["commitments"].as_array().unwrap() {
        let norm = c["norm_micro"].as_u64().unwrap() as f64 / 1e6;
        let flipped = if c["member"] == m4.as_str() { 2.0 } else { 0.0 };
        csv.push_str(&format!(
            "{},{norm},{flipped}\n",
            c["member"].as_str().unwrap()
        ));
    }
    std::fs::write(&features, csv).unwrap();
    let offline = cli.json(
        "admin",
        &[
            "anomaly",
            "--method",
            "zscore",
            "--features",
            features.to_str().unwrap(),
        ],
    );
    assert_eq!(offline["excluded"], serde_json::json!([m4]), "{offline}");

    // Round 2: aggregate and close round 1, then everybody commits the honest direction.
    let model = files.join("global1.bin");
    std::fs::write(&model, b"global model after round 1").unwrap();
    cli.ok(
        "m0",
        &["aggregate", "commit", "--model", model.to_str().unwrap()],
    );
    cli.ok("admin", &["round", "close"]);
    cli.ok("admin", &["round", "open", "--aggregator", "m0"]);
    for name in &names[1..] {
        let blob = files.join(format!("{name}.round2.blob"));
        let sketch = files.join(format!("{name}.round2.sketch"));
        std::fs::write(&blob, format!("round 2 update of {name}")).unwrap();
        std::fs::write(&sketch, "10 4 7 3").unwrap();
        cli.ok(
            name,
            &[
                "commit",
                "--blob",
                blob.to_str().unwrap(),
                "--samples",
                "100",
                "--loss",
                "0.4",
                "--norm",
                "1.5",
                "--sketch",
                sketch.to_str().unwrap(),
            ],
        );
    }
    cli.ok("m0", &["round", "evaluate"]);
    let round2 = cli.json("admin", &["audit", "round", "2"]);
    assert_eq!(
        round2["verdict"]["excluded"],
        serde_json::json!([m4]),
        "{round2}"
    );
    let audit2 = cli.json("admin", &["audit", "verdict", "2"]);
    assert_eq!(audit2["matches"], true, "{audit2}");
    assert_eq!(audit2["history_matches"], true, "{audit2}");
    // The stored sums cover both rounds.
    let export = cli.ok("admin", &["audit", "export"]);
    let sums: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["type"] == "sketch_sums")
        .flat_map(|l| l["value"]["entries"].as_array().unwrap().clone())
        .collect();
    assert_eq!(sums.len(), names.len() - 1, "{sums:?}");
    let m4_sum = sums.iter().find(|e| e["member"] == m4.as_str()).unwrap();
    assert_eq!(m4_sum["rounds"], 2);
    assert_eq!(m4_sum["last_round"], 2);
    // The consensus holds the mean sketch of the four accepted members of each round.
    let consensus = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["type"] == "consensus")
        .expect("a consensus object in the export");
    assert_eq!(consensus["value"]["rounds"], 2, "{consensus}");
    // As stored, the sum leaves out m4's last sketch, which its round-2 commitment holds
    // (10 4 7 3): what remains is its round-1 sketch, and `audit verdict 2` (above) restores
    // -90 -37 -62 -27 from the two.
    assert!(
        m4_sum["sum"].as_array().is_none_or(Vec::is_empty),
        "{m4_sum}"
    );
    assert_eq!(
        m4_sum["earlier_sum"],
        serde_json::json!([-100, -41, -69, -30]),
        "{m4_sum}"
    );
}

/// A consortium that samples 64 coordinates per commitment: `bcfl commit` refuses a commitment
/// without them, or with another count, before it reaches the ledger, and the processor's
/// modified z-score on `coordinate-sign-balance` excludes the one member whose values lie below
/// the coordinate-wise median everywhere (the shape of an ALIE, min-max or min-sum update),
/// though its norm and sketch are as honest as anyone's. (With 4 coordinates it could not: the
/// balance's scale floor `2/√K` is then 1, half the balance's whole range.)
#[test]
fn the_coordinate_sign_balance_excludes_a_member_below_the_centre_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    let mut setup = bcfl_testkit::ConsortiumSetup::new()
        .with_admin("admin")
        .with_base_model(&"33".repeat(32))
        .with_init_args(&[
            "--min-participants",
            "5",
            "--quorum",
            "5",
            "--sketch-length",
            "4",
            "--coordinate-samples",
            "64",
            "--anomaly",
            "zscore",
            "--zscore-features",
            "coordinate-sign-balance",
        ]);
    let names = ["m0", "m1", "m2", "m3", "m4"];
    for name in names {
        setup = setup.with_member(name, "http://127.0.0.1:9");
    }
    setup.run(&cli);
    let consortium = cli.json("admin", &["audit", "consortium"]);
    assert_eq!(
        consortium["params"]["coordinate_samples"], 64,
        "{consortium}"
    );
    cli.ok("admin", &["round", "open", "--aggregator", "m0"]);
    let files = dir.path();
    let commit = |name: &str, coordinates: Option<&str>| {
        let blob = files.join(format!("{name}.blob"));
        let sketch = files.join(format!("{name}.sketch"));
        std::fs::write(&blob, format!("update of {name}")).unwrap();
        std::fs::write(&sketch, "10 4 7 3").unwrap();
        let mut args = vec![
            "commit".to_owned(),
            "--blob".into(),
            blob.to_str().unwrap().into(),
            "--samples".into(),
            "100".into(),
            "--loss".into(),
            "0.5".into(),
            "--norm".into(),
            "1.5".into(),
            "--sketch".into(),
            sketch.to_str().unwrap().into(),
        ];
        if let Some(values) = coordinates {
            let path = files.join(format!("{name}.coordinates"));
            std::fs::write(&path, values).unwrap();
            args.extend(["--coordinates".into(), path.to_str().unwrap().into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.run(name, &args)
    };
    let refused = commit("m1", None);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "the commitment has 0 sampled coordinates; the consortium requires exactly 64"
        ),
        "{stderr}"
    );
    let refused = commit("m1", Some("1 2 3"));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has 3 sampled coordinates"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let refused = commit("m1", Some("1 2 x 4"));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("coordinates value #3 (\"x\") is not a 64-bit integer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Honest members straddle the centre (a Latin square of ranks, repeated 16 times: each lies
    // above it in two coordinates of four, on it in one and below it in one, balance 1.25); m4
    // lies below it everywhere (balance 0, modified z-score -3.99: the mean-absolute-deviation
    // scale 0.313 is above the floor 2/√64 = 0.25).
    let values = [
        "-2 -1 1 2",
        "-1 1 2 -2",
        "1 2 -2 -1",
        "2 -2 -1 1",
        "-900000000 -900000000 -900000000 -900000000",
    ]
    .map(|block| vec![block; 16].join(" "));
    for (name, v) in names.iter().zip(&values) {
        let out = commit(name, Some(v));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cli.ok("m0", &["round", "evaluate"]);
    let round = cli.json("admin", &["audit", "round", "1"]);
    let m4 = cli.public_key("m4");
    assert_eq!(
        round["verdict"]["excluded"],
        serde_json::json!([m4]),
        "{round}"
    );
    let stored = round["commitments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["member"] == m4.as_str())
        .unwrap()
        .clone();
    // Stored in steps of the largest magnitude over 127: -900000000 is -127 steps of 7086615.
    assert_eq!(stored["coordinate_step_nano"], 7_086_615, "{stored}");
    let steps = stored["coordinate_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 64, "{stored}");
    assert!(steps.iter().all(|s| s == -127), "{stored}");
    let audit = cli.json("admin", &["audit", "verdict", "1"]);
    assert_eq!(audit["matches"], true, "{audit}");
}
