//! `bcfl audit replay N` against devnet + `bcfl-tp`: two members commit real update blobs and
//! serve them with `bcfl node serve`; round 1's aggregator commits the FedAvg of both (the replay
//! fetches the updates from the members' servers and matches, exit 0), round 2's aggregator
//! commits a doctored model (exit 1), and a replay without any copy of an update fails with a
//! clear error.

use std::path::Path;

use bcfl_fed::digest::sha256_hex;
use bcfl_fed::update::{Encoding, Update};
use bcfl_testkit::{Cli, Ledger};
use serde_json::Value;

use crate::net_plan_cli::serve;

fn update(values: &[f32]) -> Vec<u8> {
    let mut u = Update::default();
    u.tensors
        .insert("head.weight".into(), (vec![values.len()], values.to_vec()));
    u.to_bytes(Encoding::F32)
}

/// `name` commits the update in `blob` (100 samples) to the open round.
fn commit(cli: &Cli, name: &str, blob: &Path, sketch: &Path) {
    cli.ok(
        name,
        &[
            "commit",
            "--blob",
            blob.to_str().unwrap(),
            "--samples",
            "100",
            "--loss",
            "0.5",
            "--norm",
            "1",
            "--sketch",
            sketch.to_str().unwrap(),
        ],
    );
}

#[test]
fn replay_matches_the_rules_result_and_catches_a_doctored_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    let ledger = Ledger::start(files);
    let cli = Cli::new(ledger.url(), files.join("keys"));
    for name in ["admin", "alice", "bob"] {
        cli.keygen(name);
    }
    let initial = update(&[1.0, 1.0]);
    cli.ok(
        "admin",
        &[
            "consortium",
            "init",
            "--base-model-sha256",
            &sha256_hex(&initial),
            "--min-participants",
            "2",
            "--quorum",
            "2",
            "--sketch-length",
            "4",
            "--no-anomaly",
        ],
    );
    // Round 1's updates, each served by its member.
    let sketch = files.join("sketch");
    std::fs::write(&sketch, "1 0 0 1").unwrap();
    let blobs = [("alice", update(&[3.0, 1.0])), ("bob", update(&[1.0, 5.0]))];
    let mut servers = Vec::new();
    for (name, bytes) in &blobs {
        let path = files.join(format!("{name}-1.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        let (server, url) = serve(&cli, name, &files.join(format!("{name}-store")), &[&path]);
        servers.push(server);
        cli.register_member("admin", name, &url);
    }
    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    for (name, _) in &blobs {
        commit(
            &cli,
            name,
            &files.join(format!("{name}-1.safetensors")),
            &sketch,
        );
    }
    cli.ok("alice", &["round", "evaluate"]);
    // FedAvg with equal samples: the mean.
    let honest = files.join("global-1.safetensors");
    std::fs::write(&honest, update(&[2.0, 3.0])).unwrap();
    cli.ok(
        "alice",
        &["aggregate", "commit", "--model", honest.to_str().unwrap()],
    );

    let replay = cli.run("admin", &["--json", "audit", "replay", "1"]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["matches"], true);
    assert_eq!(
        report["recomputed_model_sha256"],
        sha256_hex(&std::fs::read(&honest).unwrap())
    );
    // Both updates came over HTTP from the members' own servers.
    assert_eq!(report["fetched"].as_array().unwrap().len(), 2, "{report}");
    cli.ok("alice", &["round", "close"]);

    // Round 2: the aggregator leaves bob's update out of the average it commits.
    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    for (name, values) in [("alice", [2.0f32, 1.0]), ("bob", [4.0, 3.0])] {
        let path = files.join(format!("{name}-2.safetensors"));
        std::fs::write(&path, update(&values)).unwrap();
        commit(&cli, name, &path, &sketch);
    }
    cli.ok("alice", &["round", "evaluate"]);
    let doctored = files.join("global-2.safetensors");
    std::fs::write(&doctored, update(&[2.0, 1.0])).unwrap();
    cli.ok(
        "alice",
        &["aggregate", "commit", "--model", doctored.to_str().unwrap()],
    );
    // The servers do not hold round 2's updates: without a copy the replay cannot run.
    let missing = cli.run("admin", &["audit", "replay", "2"]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("could not be fetched") && stderr.contains("--blobs"),
        "{stderr}"
    );
    // With the auditor's copies it runs, and finds the aggregate is not FedAvg's result.
    let replay = cli.run(
        "admin",
        &["audit", "replay", "2", "--blobs", files.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("model_sha256: DIFFERS"), "{stdout}");
    assert!(stdout.contains("size_bytes: matches"), "{stdout}");
    drop(servers);
}
