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
    // The stored sums cover both rounds: m4's is its two sketches added up.
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
    assert_eq!(
        m4_sum["sum"],
        serde_json::json!([-90, -37, -62, -27]),
        "{m4_sum}"
    );
}
