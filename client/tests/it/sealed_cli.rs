//! End to end: a consortium whose sketches come after the commitments, through `bcfl` on a real
//! `bcfl-devnet` with the real `bcfl-tp` (`on_devnet`) and on a real Sawtooth 1.2.6 validator
//! (`on_sawtooth`, skipped where its sources are absent). Members commit without a sketch (`--sketch` is
//! refused); `bcfl round seal` closes the commitments and the round shows the seed drawn from
//! them; `bcfl round reveal` records a member's sketch; `bcfl round evaluate` excludes the
//! member that did not reveal, unscored; and `bcfl audit verdict` replays the verdict.

use bcfl_testkit::{AnyLedger, Cli, ConsortiumSetup, LedgerKind};

bcfl_testkit::on_each_ledger!(a_sealed_round_commits_seals_reveals_and_evaluates_through_the_cli);

fn a_sealed_round_commits_seals_reveals_and_evaluates_through_the_cli(kind: LedgerKind) {
    let dir = tempfile::tempdir().unwrap();
    let Some(ledger) = AnyLedger::start(kind, dir.path()) else {
        return;
    };
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    ConsortiumSetup::new()
        .with_init_args(&[
            "--min-participants",
            "2",
            "--quorum",
            "2",
            "--sketch-length",
            "4",
            "--anomaly",
            "zscore",
            "--sketch-after-commit",
        ])
        .with_member("alice", "http://127.0.0.1:9")
        .with_member("bob", "http://127.0.0.1:9")
        .run(&cli);
    let consortium = cli.ok("admin", &["audit", "consortium"]);
    assert!(consortium.contains("after the commitments"), "{consortium}");
    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    let files = dir.path();
    let sketch = files.join("sketch");
    std::fs::write(&sketch, "1 -2 3 -4").unwrap();
    let commit = |name: &str, with_sketch: bool| {
        let blob = files.join(format!("{name}.blob"));
        std::fs::write(&blob, name).unwrap();
        let mut args = vec![
            "commit",
            "--blob",
            blob.to_str().unwrap(),
            "--samples",
            "10",
            "--loss",
            "0.5",
            "--norm",
            "1",
        ];
        if with_sketch {
            args.extend(["--sketch", sketch.to_str().unwrap()]);
        }
        cli.run(name, &args)
    };
    let refused = commit("alice", true);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("leave --sketch out"), "{stderr}");
    for name in ["alice", "bob"] {
        let out = commit(name, false);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let early = cli.run(
        "alice",
        &["round", "reveal", "--sketch", sketch.to_str().unwrap()],
    );
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("not SEALED"));
    cli.ok("alice", &["round", "seal"]);
    let round = cli.json("admin", &["audit", "round", "1"]);
    assert_eq!(round["round"]["phase"], "SEALED", "{round}");
    assert!(
        round["round"]["sketch_seed"].as_u64().unwrap() > 0,
        "{round}"
    );
    cli.ok(
        "alice",
        &["round", "reveal", "--sketch", sketch.to_str().unwrap()],
    );
    cli.ok("alice", &["round", "evaluate"]);
    let verdict = &cli.json("admin", &["audit", "round", "1"])["verdict"];
    let (alice, bob) = (cli.public_key("alice"), cli.public_key("bob"));
    assert_eq!(verdict["accepted"], serde_json::json!([alice]), "{verdict}");
    assert_eq!(verdict["unrevealed"], serde_json::json!([bob]), "{verdict}");
    let audit = cli.json("admin", &["audit", "verdict", "1"]);
    assert_eq!(audit["matches"], true, "{audit}");
}
