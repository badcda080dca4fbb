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
    commit_stats(cli, name, blob, 100, "1", sketch, None);
}

/// `name` commits the update in `blob` to the open round with these statistics (loss 0.5).
fn commit_stats(
    cli: &Cli,
    name: &str,
    blob: &Path,
    samples: u64,
    norm: &str,
    sketch: &Path,
    coordinates: Option<&Path>,
) {
    let samples = samples.to_string();
    let mut args = vec![
        "commit",
        "--blob",
        blob.to_str().unwrap(),
        "--samples",
        &samples,
        "--loss",
        "0.5",
        "--norm",
        norm,
        "--sketch",
        sketch.to_str().unwrap(),
    ];
    if let Some(path) = coordinates {
        args.extend(["--coordinates", path.to_str().unwrap()]);
    }
    cli.ok(name, &args);
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

/// `name` commits its round-`round` update (`samples`) with its true statistics as a member
/// computes them (norm, sketch and sampled coordinates of its change from `base`), so that an
/// auditor rechecking them finds nothing to dispute.
fn commit_honestly(cli: &Cli, files: &Path, name: &str, round: u64, samples: u64, base: &[f32]) {
    let blob = files.join(format!("{name}-{round}.safetensors"));
    let base = Update::from_bytes(&update(base)).unwrap();
    let shape = bcfl_fed::sketch::StatsShape {
        sketch_length: 4,
        coordinate_samples: 4,
        ..Default::default()
    };
    // Without sketches after the commitments, a round's sketch seed is its number.
    let stats =
        bcfl_fed::verify::recompute(&std::fs::read(&blob).unwrap(), &base, shape, round).unwrap();
    let write = |what: &str, values: Vec<String>| {
        let path = files.join(format!("{name}-{round}.{what}"));
        std::fs::write(&path, values.join(" ")).unwrap();
        path
    };
    let sketch = write(
        "sketch",
        stats.sketch.iter().map(|v| v.to_string()).collect(),
    );
    let coordinates = write(
        "coordinates",
        stats
            .coordinates
            .nano()
            .iter()
            .map(|v| v.to_string())
            .collect(),
    );
    let norm = format!(
        "{}.{:06}",
        stats.norm_micro / 1_000_000,
        stats.norm_micro % 1_000_000
    );
    commit_stats(
        cli,
        name,
        &blob,
        samples,
        &norm,
        &sketch,
        Some(&coordinates),
    );
}

/// Withdrawal through the CLI and the real processor (`consortium init --withdraw`): round 1
/// accepts alice, bob and carol (200 samples) and is aggregated by FedAvg; in round 2 carol's
/// sampled change turns away from her own previous one (each member commits its true
/// statistics), the inconsistent-change method
/// excludes her, and the verdict withdraws her round-1 commitment. Round 2's aggregate must
/// then be FedAvg of alice and bob plus `200 / (400 - 200) (P - U_carol)`: the auditor's
/// replay fetches carol's round-1 update from her server and matches, the plain FedAvg would
/// not, and the verdict replays with its withdrawal.
#[test]
fn a_withdrawn_update_is_taken_back_out_of_the_next_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    let ledger = Ledger::start(files);
    let cli = Cli::new(ledger.url(), files.join("keys"));
    for name in ["admin", "alice", "bob", "carol"] {
        cli.keygen(name);
    }
    let initial = update(&[1.0, 1.0, 1.0, 1.0]);
    cli.ok(
        "admin",
        &[
            "consortium",
            "init",
            "--base-model-sha256",
            &sha256_hex(&initial),
            "--min-participants",
            "3",
            "--quorum",
            "3",
            "--sketch-length",
            "4",
            "--coordinate-samples",
            "4",
            "--anomaly",
            "inconsistent",
            "--inconsistent-cosine",
            "0.25",
            "--withdraw",
        ],
    );
    // FedAvg of round 1 (100, 100, 200 samples): exactly [2, 3, 1, 3].
    let models = [
        ("alice-1", [3.0, 1.0, 1.0, 1.0]),
        ("bob-1", [1.0, 5.0, 1.0, 1.0]),
        ("carol-1", [2.0, 3.0, 1.0, 5.0]),
        ("global-1", [2.0, 3.0, 1.0, 3.0]),
        ("alice-2", [4.0, 2.0, 2.0, 2.0]),
        ("bob-2", [2.0, 4.0, 2.0, 2.0]),
        ("carol-2", [2.0, 3.0, 1.0, 1.0]),
        // FedAvg of alice and bob, [3, 3, 2, 2], plus (P - U_carol) = [0, 0, 0, -2].
        ("global-2", [3.0, 3.0, 2.0, 0.0]),
        ("plain-2", [3.0, 3.0, 2.0, 2.0]),
    ];
    for (name, values) in &models {
        std::fs::write(files.join(format!("{name}.safetensors")), update(values)).unwrap();
    }
    let mut servers = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut held: Vec<std::path::PathBuf> = [1, 2]
            .map(|r| files.join(format!("{name}-{r}.safetensors")))
            .to_vec();
        if name == "alice" {
            held.push(files.join("global-1.safetensors"));
        }
        let held: Vec<&Path> = held.iter().map(|p| p.as_path()).collect();
        let (server, url) = serve(&cli, name, &files.join(format!("{name}-store")), &held);
        servers.push(server);
        cli.register_member("admin", name, &url);
    }
    let samples = |name: &str| if name == "carol" { 200 } else { 100 };
    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    for name in ["alice", "bob", "carol"] {
        commit_honestly(&cli, files, name, 1, samples(name), &[1.0; 4]);
    }
    cli.ok("alice", &["round", "evaluate"]);
    let global = |round: u64| files.join(format!("global-{round}.safetensors"));
    cli.ok(
        "alice",
        &[
            "aggregate",
            "commit",
            "--model",
            global(1).to_str().unwrap(),
        ],
    );
    cli.ok("alice", &["round", "close"]);

    cli.ok("admin", &["round", "open", "--aggregator", "alice"]);
    // Changes from the parent: alice [2, -1, 1, -1] and bob [0, 1, 1, -1] keep to their
    // first ones ([2, 0, 0, 0] and [0, 4, 0, 0]); carol's [0, 0, 0, -2] turns from her [1, 2,
    // 0, 4].
    for name in ["alice", "bob", "carol"] {
        commit_honestly(&cli, files, name, 2, samples(name), &[2.0, 3.0, 1.0, 3.0]);
    }
    cli.ok("alice", &["round", "evaluate"]);
    let verdict: Value = serde_json::from_slice(
        &cli.run("admin", &["--json", "audit", "verdict", "2"])
            .stdout,
    )
    .unwrap();
    assert_eq!(verdict["matches"], true, "{verdict}");
    let carol = cli.public_key("carol");
    assert_eq!(
        verdict["stored"]["excluded"],
        serde_json::json!([carol]),
        "{verdict}"
    );
    assert_eq!(
        verdict["stored"]["withdrawn_members"],
        serde_json::json!([carol]),
        "{verdict}"
    );
    cli.ok(
        "alice",
        &[
            "aggregate",
            "commit",
            "--model",
            global(2).to_str().unwrap(),
        ],
    );
    let replay = cli.run("admin", &["--json", "audit", "replay", "2"]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["matches"], true, "{report}");
    let carol_1 = sha256_hex(&std::fs::read(files.join("carol-1.safetensors")).unwrap());
    assert!(
        report["fetched"].to_string().contains(&carol_1),
        "the withdrawn update was fetched: {report}"
    );
    let plain = sha256_hex(&std::fs::read(files.join("plain-2.safetensors")).unwrap());
    assert_ne!(report["recomputed_model_sha256"], plain.as_str());
}
