//! End to end: `bcfl demo --tiny` on a real `bcfl-devnet` with the real `bcfl-tp`: four
//! member processes and a coordinator process, two rounds, one sign-flipping attacker among four. Checked from the ledger and the members'
//! stores, not from the demo's own account: the attacker is excluded on chain in every round;
//! each round's aggregate hash on chain is the FedAvg of the accepted members' committed
//! updates, recomputed here from their verified blobs; every member holds the final global
//! model under its on-chain hash; the accuracies are finite.
#![cfg(feature = "train")]

use std::path::Path;
use std::process::Command;

use bcfl_client::round::schedule::staleness_weight_ppm;
use bcfl_fed::aggregate::{aggregate, Contribution};
use bcfl_fed::rule::Rule;
use bcfl_fed::update::{sha256_hex, Encoding};
use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::{BcflReader, FamilyState};
use bcfl_testkit::{Binary, Ledger};
use serde_json::Value;

const CLASSES: [&[&str]; 3] = [
    &["tumor", "carcinoma", "oncology", "metastasis", "lymphoma"],
    &["liver", "bowel", "gastric", "colon", "hepatic"],
    &["neuron", "brain", "seizure", "cortex", "spinal"],
];
const FILLER: [&str; 7] = ["the", "patient", "study", "with", "and", "results", "of"];

/// A labelled CSV whose classes are told apart by topic words among shared filler words.
pub(crate) fn write_corpus(path: &Path, per_class: usize) {
    let names = ["neoplasms", "digestive", "nervous"];
    let mut text = String::from("label,text\n");
    for i in 0..per_class {
        for (label, words) in CLASSES.iter().enumerate() {
            text.push_str(&format!(
                "{},{} {} {} {} {} case {i}\n",
                names[label],
                FILLER[i % FILLER.len()],
                words[i % words.len()],
                FILLER[(i + 3) % FILLER.len()],
                words[(i + 2) % words.len()],
                FILLER[(i + 5) % FILLER.len()],
            ));
        }
    }
    std::fs::write(path, text).unwrap();
}

/// `bcfl --url URL demo --tiny` on a corpus of `per_class` examples a class written into
/// `dir/data.csv`, with its work folder `dir/work` (returned); the caller adds the run's flags.
pub(crate) fn tiny_demo(url: &str, dir: &Path, per_class: usize) -> (Command, std::path::PathBuf) {
    let data = dir.join("data.csv");
    write_corpus(&data, per_class);
    let work = dir.join("work");
    // `bcfl demo` runs in bcfl-train.
    Binary::BcflTrain.path();
    let mut command = Command::new(Binary::Bcfl.path());
    command
        .env("OMP_NUM_THREADS", "1")
        .args(["--url", url, "demo", "--tiny"])
        .args(["--data", data.to_str().unwrap()])
        .args(["--work-dir", work.to_str().unwrap()]);
    (command, work)
}

/// Runs a [`tiny_demo`] command with `--json`, `args`, z-score detection only, no committee and
/// small batches, sequences and probes; fails with its output unless it succeeds, and returns
/// its report.
fn run_small(command: &mut Command, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--anomaly", "zscore", "--committee", "0"]);
    run_demo(command, &all)
}

/// [`run_small`] without its anomaly and committee settings.
fn run_demo(command: &mut Command, args: &[&str]) -> Value {
    let out = command
        .arg("--json")
        .args(args)
        .args([
            "--batch-size",
            "8",
            "--max-len",
            "16",
            "--probe-bytes",
            "65536",
        ])
        .output()
        .expect("running bcfl demo");
    assert!(
        out.status.success(),
        "bcfl demo failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// The key of the member called `name` in a demo report.
fn member_key(report: &Value, name: &str) -> String {
    report["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `bcfl audit verdict ROUND` against the ledger at `url` recomputes the stored verdict.
fn assert_verdict_replays(url: &str, round: u64) {
    let out = Command::new(Binary::Bcfl.path())
        .args([
            "--url",
            url,
            "--json",
            "audit",
            "verdict",
            &round.to_string(),
        ])
        .output()
        .expect("running bcfl audit verdict");
    let audit: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(audit["matches"], true, "{audit}");
}

fn family_state(url: &str) -> FamilyState {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(BcflReader::new(RestClient::new(url).unwrap()).family_state(None))
        .unwrap()
}

/// The tiny demo with its default anomaly methods and verifier committee on `url`: four
/// members, two rounds, member-4 flipping signs (excluded on chain under these settings); its
/// report and work folder.
pub(crate) fn attacked_demo(url: &str, dir: &Path) -> (Value, std::path::PathBuf) {
    let (mut command, work) = tiny_demo(url, dir, 100);
    let out = command
        .arg("--json")
        .args(["--members", "4", "--rounds", "2", "--local-epochs", "3"])
        .args(["--lr", "3e-2", "--batch-size", "8", "--max-len", "16"])
        .args(["--attack", "sign-flip:1", "--probe-bytes", "65536"])
        .output()
        .expect("running bcfl demo");
    assert!(
        out.status.success(),
        "bcfl demo failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&out.stdout).expect("one JSON document");
    (report, work)
}

#[test]
fn a_tiny_federated_run_excludes_the_attacker_and_aggregates_verified_updates() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (report, work) = attacked_demo(ledger.url(), dir.path());
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    let key_of = |name: &str| {
        members.iter().find(|m| m["name"] == name).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let attacker = key_of("member-4");
    assert_eq!(members[3]["attack"], "sign-flip");

    let state = family_state(ledger.url());
    assert_eq!(state.consortium.as_ref().unwrap().current_round, 2);
    let mut final_model = String::new();
    for round in 1..=2u64 {
        let verdict = &state.verdicts[&round];
        assert_eq!(
            verdict.excluded.to_vec(),
            vec![attacker.clone()],
            "round {round}"
        );
        let on_chain = &state.aggregates[&round];
        assert!(!verdict.accepted.contains(&attacker));
        // Recompute the aggregate from the accepted members' own blobs, each checked against
        // its commitment.
        let contributions: Vec<Contribution> = verdict
            .accepted
            .iter()
            .map(|key| {
                let commitment = &state.commitments[&(round, key.clone())];
                let name = members.iter().find(|m| m["key"] == key.as_str()).unwrap()["name"]
                    .as_str()
                    .unwrap();
                let path = work
                    .join("stores")
                    .join(name)
                    .join(&commitment.update_sha256);
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(sha256_hex(&bytes), commitment.update_sha256);
                Contribution {
                    member: key.clone(),
                    path,
                    // The node's documented weight: samples x the staleness factor in ppm.
                    samples: commitment.num_samples * staleness_weight_ppm(commitment.staleness),
                }
            })
            .collect();
        let recomputed = aggregate(contributions, Rule::FedAvg).unwrap();
        assert_eq!(
            sha256_hex(&recomputed.update.to_bytes(Encoding::F32)),
            on_chain.model_sha256,
            "round {round}"
        );
        assert_eq!(
            state.rounds[&round].phase,
            bcfl_protos::bcfl::RoundPhase::CLOSED
        );
        final_model = on_chain.model_sha256.clone();
    }
    // Every member, the attacker included, holds the final global model under its hash.
    for m in members {
        let path = work
            .join("stores")
            .join(m["name"].as_str().unwrap())
            .join(&final_model);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(sha256_hex(&bytes), final_model);
    }
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for r in rounds {
        assert!(r["aggregate_sha256"].is_string(), "{r}");
        assert!(r["accuracy"].as_f64().unwrap().is_finite());
        assert!(r["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["holds_global"] == true));
    }
    assert!(report["initial_accuracy"].as_f64().unwrap().is_finite());
    // The report and its figures are in the work folder.
    for file in [
        "report.json",
        "report.md",
        "accuracy.svg",
        "phases.svg",
        "bytes.svg",
        "graph.svg",
    ] {
        assert!(work.join(file).is_file(), "{file} missing");
    }
    // Each member served on the socket the demo bound for it when it drew its port.
    for m in members {
        let log = work
            .join("logs")
            .join(format!("{}.log", m["name"].as_str().unwrap()));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("serving on the socket passed in"), "{text}");
    }
}

/// `scripts/demo.sh --tls` in small: the throwaway certificates first (`--tls-prepare`), the
/// ledger on https with its own, then `bcfl demo --tls`: members register https endpoints, serve
/// blobs over TLS and trust the demo's CA, and the round completes.
#[test]
fn a_tiny_run_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let data = dir.path().join("data.csv");
    write_corpus(&data, 60);
    Binary::BcflTrain.path();
    let bcfl = |args: &[&str]| {
        Command::new(Binary::Bcfl.path())
            .env("OMP_NUM_THREADS", "1")
            .env_remove("BCFL_CA_CERT")
            .args(args)
            .output()
            .expect("running bcfl")
    };
    let work_arg = work.to_str().unwrap();
    let prepared = bcfl(&[
        "demo",
        "--work-dir",
        work_arg,
        "--members",
        "2",
        "--tls-prepare",
    ]);
    assert!(prepared.status.success(), "{prepared:?}");
    let tls = work.join("tls");
    let (cert, key) = (tls.join("ledger.crt"), tls.join("ledger.key"));
    let ledger = Ledger::start_with(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(ledger.url().starts_with("https://"));
    let ca = tls.join("ca.crt");
    let out = bcfl(&[
        "--json",
        "--ca-cert",
        ca.to_str().unwrap(),
        "--url",
        ledger.url(),
        "demo",
        "--tiny",
        "--tls",
        "--data",
        data.to_str().unwrap(),
        "--work-dir",
        work_arg,
        "--members",
        "2",
        "--anomaly",
        "zscore",
        "--rounds",
        "1",
        "--local-epochs",
        "1",
        "--batch-size",
        "8",
        "--max-len",
        "16",
        "--probe-bytes",
        "65536",
    ]);
    assert!(
        out.status.success(),
        "bcfl demo --tls failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    for member in report["members"].as_array().unwrap() {
        let endpoint = member["endpoint"].as_str().unwrap();
        assert!(endpoint.starts_with("https://127.0.0.1:"), "{member}");
    }
}

/// `bcfl demo --prepare-only` sets a federation up and starts nothing; the nodes then run as
/// separate processes from the configurations it wrote (as the compose files' member containers
/// do), each member with its own REST URL list, and close the round on the ledger.
#[test]
fn a_prepared_federation_runs_as_separate_node_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (mut command, work) = tiny_demo(ledger.url(), dir.path(), 40);
    let out = command
        .args(["--json", "--prepare-only"])
        .args(["--members", "3", "--rounds", "1", "--committee", "0"])
        .args([
            "--batch-size",
            "8",
            "--max-len",
            "16",
            "--probe-bytes",
            "65536",
        ])
        .args(["--ledger", ledger.url(), "--ledger", ledger.url()])
        .output()
        .expect("running bcfl demo --prepare-only");
    assert!(
        out.status.success(),
        "bcfl demo --prepare-only failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prepared: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let configs: Vec<String> = prepared["node_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(configs.len(), 4, "three members and the coordinator");
    // Set up on chain, nothing started: no round yet, no log of a node.
    let state = family_state(ledger.url());
    assert_eq!(state.members.len(), 3);
    assert_eq!(state.consortium.as_ref().unwrap().current_round, 0);
    assert!(!work.join("logs").exists());

    let mut nodes: Vec<bcfl_testkit::Spawned> = configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let mut command = Command::new(Binary::Bcfl.path());
            command
                .env("OMP_NUM_THREADS", "1")
                .args(["-v", "node", "run", "--config", config]);
            if i < 3 {
                command.args(["--until-round", "1"]);
            }
            bcfl_testkit::Spawned::start(&format!("node-{i}"), command, dir.path())
        })
        .collect();
    for node in &mut nodes {
        let status = node.wait(std::time::Duration::from_secs(240));
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not finish ({status:?}):\n{}",
            node.name(),
            node.log_text()
        );
    }
    let state = family_state(ledger.url());
    assert_eq!(state.consortium.as_ref().unwrap().current_round, 1);
    assert!(state.aggregates.contains_key(&1));
    assert_eq!(state.verdicts[&1].accepted.len(), 3);
}

/// `bcfl demo --model smollm2`: three member processes fine-tune SmolLM2's top layer on
/// PubMedQA shards (JSON files of the dataset's format) through the ledger for two rounds.
/// Both rounds aggregate; the demo writes the last global adapters as a folder; and `bcfl llm
/// eval --adapter` on the held-out questions (a full forward pass per question) scores
/// exactly what the first member reported for the last global model (from its cached
/// prefix). Skipped without `BCFL_LLM_GGUF`.
#[test]
fn the_decoder_fine_tunes_through_member_processes_and_its_adapters_evaluate_alike() {
    let gguf = match std::env::var_os(bcfl_client::llm::GGUF_ENV) {
        Some(p) if Path::new(&p).is_file() => p,
        _ => {
            eprintln!("skipped: BCFL_LLM_GGUF names no file (source scripts/env.sh)");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let work = dir.path().join("work");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    Binary::BcflTrain.path();
    let out = Command::new(Binary::Bcfl.path())
        .env("OMP_NUM_THREADS", "1")
        .args([
            "--url",
            ledger.url(),
            "--json",
            "demo",
            "--model",
            "smollm2",
        ])
        .arg("--gguf")
        .arg(&gguf)
        .arg("--data-dir")
        .arg(&data)
        .arg("--work-dir")
        .arg(&work)
        .args(["--members", "3", "--rounds", "2", "--committee", "0"])
        .args(["--max-train-examples", "9", "--max-test-examples", "5"])
        .args([
            "--lora-top-layers",
            "1",
            "--local-steps",
            "2",
            "--batch-size",
            "2",
        ])
        .args([
            "--max-prompt-tokens",
            "96",
            "--lr",
            "1e-3",
            "--probe-bytes",
            "65536",
        ])
        .output()
        .expect("running bcfl demo");
    assert!(
        out.status.success(),
        "bcfl demo failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for r in rounds {
        assert!(
            r["aggregate_sha256"].is_string(),
            "round without a global model: {r}"
        );
    }
    let state = family_state(ledger.url());
    let last = rounds[1]["aggregate_sha256"].as_str().unwrap();
    assert_eq!(state.aggregates[&2].model_sha256, last);
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("model/package.json")).unwrap())
            .unwrap();
    assert_eq!(package["labels"], serde_json::json!(["yes", "no", "maybe"]));
    assert_eq!(package["decoder"]["lora"]["from_layer"], 29);

    // The held-out questions' ids, and the adapters the demo wrote.
    let held: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(work.join("shards/test.json")).unwrap())
            .unwrap();
    assert_eq!(held.len(), 5);
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, held.keys().cloned().collect::<Vec<_>>().join("\n")).unwrap();
    let adapter = work.join("adapter");
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["base_sha256"], package["base_sha256"]);
    let blob = std::fs::read(adapter.join("adapter_model.safetensors")).unwrap();
    assert_eq!(
        sha256_hex(&blob),
        last,
        "the adapters are the last global model"
    );

    let predictions = dir.path().join("predictions.jsonl");
    let eval = Command::new(Binary::Bcfl.path())
        .env("OMP_NUM_THREADS", "1")
        .args(["--json", "llm", "eval", "--task", "pubmedqa"])
        .arg("--gguf")
        .arg(&gguf)
        .arg("--data-dir")
        .arg(&data)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--ids")
        .arg(&ids)
        .arg("--predictions")
        .arg(&predictions)
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let scores: Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(scores["questions"], 5);
    let reported = rounds[1]["accuracy"].as_f64().unwrap();
    assert!(
        (scores["accuracy"].as_f64().unwrap() - reported).abs() < 1e-9,
        "llm eval {} against the member's {reported}",
        scores["accuracy"]
    );

    // Adapters refuse another base model.
    let other = dir.path().join("other.gguf");
    let mut bytes = std::fs::read(&gguf).unwrap();
    bytes.push(0);
    std::fs::write(&other, bytes).unwrap();
    let refused = Command::new(Binary::Bcfl.path())
        .args(["llm", "eval", "--task", "pubmedqa"])
        .arg("--gguf")
        .arg(&other)
        .arg("--data-dir")
        .arg(&data)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--ids")
        .arg(&ids)
        .arg("--predictions")
        .arg(&predictions)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("trained on the base model"), "{err}");
}

/// `bcfl demo --sample-fraction 0.4` with five member processes: each round the ledger draws
/// three (ceil(2), raised to the quorum of three), only they commit, the others sit the round
/// out (`drawn: false` in the report) and still receive the global model.
#[test]
fn a_sampling_consortium_of_member_processes_trains_only_the_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (mut command, _work) = tiny_demo(ledger.url(), dir.path(), 40);
    let report = run_small(
        &mut command,
        &[
            "--members",
            "5",
            "--rounds",
            "2",
            "--sample-fraction",
            "0.4",
        ],
    );
    let state = family_state(ledger.url());
    assert_eq!(
        state.consortium.as_ref().unwrap().get_params().sample_ppm,
        400_000
    );
    for (i, round) in report["rounds"].as_array().unwrap().iter().enumerate() {
        let number = i as u64 + 1;
        let drawn = state.rounds[&number].participants.to_vec();
        assert_eq!(drawn.len(), 3, "round {number}");
        assert_eq!(state.rounds[&number].committers.to_vec(), drawn);
        let members = round["members"].as_array().unwrap();
        assert_eq!(members.iter().filter(|m| m["drawn"] == true).count(), 3);
        for m in members {
            assert_eq!(m["drawn"], m["committed"], "round {number}: {m}");
            assert_eq!(m["holds_global"], true, "round {number}: {m}");
        }
    }
}

/// Colluding member processes (`--attack min-max:2`): the demo tells each attacker the other's
/// key; both wait for the three honest members to commit, fetch their updates from their blob
/// servers and commit the one update crafted from them (the same blob, so the same hash, which
/// no honest member sends). Every commitment carries 64 sampled coordinates, which the
/// aggregator finds true to every blob (no dispute); the crafted update lies below the
/// coordinate-wise median at every coordinate (sign balance 0, the honest three 1.6-1.7 as the
/// median leans towards the pair; z about -9.9), so the z-score at threshold 5 excludes both
/// colluders on chain, and the round aggregates the honest three.
#[test]
fn colluding_member_processes_commit_one_update_crafted_from_the_honest_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (mut command, work) = tiny_demo(ledger.url(), dir.path(), 40);
    let report = run_small(
        &mut command,
        &[
            "--members",
            "5",
            "--rounds",
            "1",
            "--attack",
            "min-max:2",
            "--coordinate-samples",
            "64",
            "--zscore-threshold",
            "5",
        ],
    );
    let state = family_state(ledger.url());
    let key_of = |name: &str| member_key(&report, name);
    let sha = |name: &str| state.commitments[&(1, key_of(name))].update_sha256.clone();
    assert_eq!(sha("member-4"), sha("member-5"));
    for honest in ["member-1", "member-2", "member-3"] {
        assert_ne!(sha(honest), sha("member-4"), "{honest}");
    }
    // Each attacker's configuration names both attackers, and no honest member's does.
    let config = |name: &str| {
        std::fs::read_to_string(work.join("nodes").join(format!("{name}.toml"))).unwrap()
    };
    for attacker in ["member-4", "member-5"] {
        let text = config(attacker);
        assert!(text.contains(&key_of("member-4")) && text.contains(&key_of("member-5")));
    }
    assert!(!config("member-1").contains("colluders"));
    for name in ["member-1", "member-4"] {
        assert_eq!(
            state.commitments[&(1, key_of(name))].coordinate_steps.len(),
            64
        );
    }
    assert!(state.rounds[&1].disputes.is_empty());
    let mut colluders = vec![key_of("member-4"), key_of("member-5")];
    colluders.sort();
    assert_eq!(state.verdicts[&1].excluded.to_vec(), colluders);
    assert!(state.aggregates.contains_key(&1));
    assert_eq!(state.verdicts[&1].accepted.len(), 3);
}

/// Where some member of the demo in `work` holds blob `sha` in its store.
fn held_blob(work: &Path, sha: &str) -> std::path::PathBuf {
    std::fs::read_dir(work.join("stores"))
        .unwrap()
        .map(|e| e.unwrap().path().join(sha))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no member holds {sha}"))
}

/// A consortium sampling its coordinates in the head (`--coordinate-scope head`): every member
/// process commits its change's values at 64 positions among the `classifier.*` tensors, which
/// the ledger records as the consortium's scope; the aggregator, recomputing each blob's
/// statistics in that scope, disputes none; and each commitment's coordinates are those of the
/// change in the member's blob at the head's positions, not those of every value's scope.
#[test]
fn member_processes_sample_their_coordinates_in_the_head() {
    use bcfl_fed::sketch::{coordinates, scope_range, CoordinateScope, COORDINATE_SEED};
    use bcfl_fed::update::Update;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (mut command, work) = tiny_demo(ledger.url(), dir.path(), 40);
    let report = run_small(
        &mut command,
        &[
            "--members",
            "3",
            "--rounds",
            "1",
            "--coordinate-samples",
            "64",
            "--coordinate-scope",
            "head",
            "--anomaly",
            "zscore",
        ],
    );
    let state = family_state(ledger.url());
    let params = state.consortium.as_ref().unwrap().get_params();
    assert_eq!(params.coordinate_scope, CoordinateScope::CLASSIFIER_HEAD);
    assert!(state.rounds[&1].disputes.is_empty());
    assert!(state.aggregates.contains_key(&1));
    let held =
        |sha: &str| Update::from_bytes(&std::fs::read(held_blob(&work, sha)).unwrap()).unwrap();
    let parent = held(&state.rounds[&1].parent_model_sha256);
    let head = scope_range(&parent, CoordinateScope::CLASSIFIER_HEAD).unwrap();
    assert!(head.len() < parent.parameters() / 4, "{head:?}");
    for name in ["member-1", "member-2", "member-3"] {
        let c = &state.commitments[&(1, member_key(&report, name))];
        let change = held(&c.update_sha256).minus(&parent).unwrap();
        let at = |scope| coordinates(&change, 64, scope, COORDINATE_SEED);
        let in_head = at(CoordinateScope::CLASSIFIER_HEAD);
        assert_eq!(
            (c.coordinate_step_nano, c.coordinate_steps.clone()),
            (in_head.step_nano(), in_head.packed_steps()),
            "{name}"
        );
        assert_ne!(in_head, at(CoordinateScope::EVERY_TENSOR), "{name}");
    }
}

/// Five member processes of the tiny model under `--anomaly-preset every-attack` (and `extra`),
/// without a verifier committee, for `rounds` rounds, attacked as `attack` says: the demo's
/// report and the family's state afterwards.
fn every_attack_demo(
    ledger: &Ledger,
    dir: &Path,
    rounds: &str,
    attack: &str,
    extra: &[&str],
) -> (Value, FamilyState) {
    let (mut command, _work) = tiny_demo(ledger.url(), dir, 40);
    let mut args = vec![
        "--members",
        "5",
        "--rounds",
        rounds,
        "--attack",
        attack,
        "--anomaly-preset",
        "every-attack",
        "--committee",
        "0",
    ];
    args.extend_from_slice(extra);
    let report = run_demo(&mut command, &args);
    (report, family_state(ledger.url()))
}

/// `--anomaly-preset every-attack` through member processes: a stale rider sends nothing in
/// round 1 and resends the global model's change in round 2, where it lands on the previous
/// change the ledger kept from round 1's accepted commitments (sampled at the same 256
/// positions by every member process); DBSCAN and the z-score both flag it in both rounds, and
/// nobody else. Round 1's zero change is a free rider's: the unchanged-update method flags it
/// there (norm 0), on its own, and nobody in round 2; round 2's resent change the
/// resent-change method flags, on its own, and nobody in round 1 (no previous change yet).
#[test]
fn the_every_attack_preset_excludes_a_stale_rider_in_both_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (report, state) = every_attack_demo(&ledger, dir.path(), "2", "stale-rider:1", &[]);
    let params = state.consortium.as_ref().unwrap().get_params();
    assert_eq!(
        params.get_anomaly(),
        &bcfl_processor::anomaly::every_attack_config()
    );
    assert_eq!(params.coordinate_samples, 256);
    let rider = member_key(&report, "member-5");
    for round in [1, 2] {
        let verdict = &state.verdicts[&round];
        assert_eq!(
            verdict.excluded.as_slice(),
            std::slice::from_ref(&rider),
            "round {round}"
        );
        assert!(state.aggregates.contains_key(&round));
        assert_eq!(state.verdicts[&round].accepted.len(), 4, "round {round}");
        let flagged_by = |method: bcfl_protos::bcfl::AnomalyMethod| -> Vec<String> {
            let verdict_of = verdict
                .methods
                .iter()
                .find(|m| m.method == method)
                .expect("the preset runs the method");
            bcfl_processor::anomaly::member_scores(&verdict.scored(), verdict_of)
                .filter(|s| s.flagged)
                .map(|s| s.member.to_owned())
                .collect()
        };
        let (unchanged, resent) = if round == 1 {
            (vec![rider.clone()], vec![])
        } else {
            (vec![], vec![rider.clone()])
        };
        use bcfl_protos::bcfl::AnomalyMethod::{RESENT, UNCHANGED};
        assert_eq!(flagged_by(UNCHANGED), unchanged, "round {round}");
        assert_eq!(flagged_by(RESENT), resent, "round {round}");
    }
    // The ledger keeps the accepted members' weighted mean change at the sampled positions.
    use bcfl_processor::anomaly::features::{previous_change_distances, weighted_mean_coordinates};
    let accepted = |round: u64| -> Vec<bcfl_protos::bcfl::Commitment> {
        let verdict = &state.verdicts[&round];
        state
            .commitments
            .range((round, String::new())..(round + 1, String::new()))
            .map(|(_, c)| c.clone())
            .filter(|c| !verdict.excluded.contains(&c.member))
            .collect()
    };
    let mean = |round: u64| weighted_mean_coordinates(&accepted(round).iter().collect::<Vec<_>>());
    let kept = state.sketch_history.get_consensus();
    assert_eq!(kept.previous_change_round, 2);
    assert_eq!(Some(kept.previous_change.to_vec()), mean(2));
    // Round 2's evidence: the rider's sampled change is round 1's kept change, up to the
    // update's encoding, where every honest member's is about its own size away.
    let after_round_1 = bcfl_protos::bcfl::ConsensusSketch {
        previous_change: mean(1).unwrap(),
        previous_change_round: 1,
        ..Default::default()
    };
    let round_2: Vec<_> = state
        .commitments
        .range((2, String::new())..(3, String::new()))
        .map(|(_, c)| c.clone())
        .collect();
    // An auditor replaying round 2 from the ledger's records reaches the same verdict.
    assert_verdict_replays(ledger.url(), 2);
    let distances = previous_change_distances(&round_2, &after_round_1);
    for (c, d) in round_2.iter().zip(&distances) {
        if c.member == rider {
            assert!(*d < 0.05, "the rider is {d} from the previous change");
        } else {
            assert!(*d > 0.3, "an honest member is {d} from the previous change");
        }
    }
}

/// A member process sending Gaussian noise under the every-attack preset with the
/// inconsistent-change method added: a fresh random change every round, of an honest norm. In
/// round 2 its change has a cosine near 0 with its own round-1 change, which `EvaluateRound`
/// reads from state, and the method excludes it on that alone, where every honest member of the
/// tiny model keeps its direction; an auditor replaying round 2 agrees.
#[test]
fn the_every_attack_preset_excludes_a_noise_sender_turning_from_its_own_previous_change() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (report, state) = every_attack_demo(
        &ledger,
        dir.path(),
        "2",
        "gaussian-noise:1",
        &["--inconsistent-cosine", "0.25"],
    );
    let noisy = member_key(&report, "member-5");
    let verdict = &state.verdicts[&2];
    assert!(verdict.excluded.contains(&noisy), "{:?}", verdict.excluded);
    let inconsistent = verdict
        .methods
        .iter()
        .find(|m| m.method == bcfl_protos::bcfl::AnomalyMethod::INCONSISTENT)
        .expect("the preset runs the inconsistent-change method");
    let scores: Vec<(String, i64, bool)> =
        bcfl_processor::anomaly::member_scores(&verdict.scored(), inconsistent)
            .map(|s| (s.member.to_owned(), s.score_micro, s.flagged))
            .collect();
    for (member, score, flagged) in &scores {
        if *member == noisy {
            assert!(*flagged && score.abs() < 300_000, "{scores:?}");
        } else {
            assert!(!flagged && *score > 400_000, "{scores:?}");
        }
    }
    // The scores are the cosines of each member's committed coordinates with its round-1 ones.
    let round = |r: u64| -> Vec<bcfl_protos::bcfl::Commitment> {
        state
            .commitments
            .range((r, String::new())..(r + 1, String::new()))
            .map(|(_, c)| c.clone())
            .filter(|c| verdict.scored().contains(&c.member) || r == 1)
            .collect()
    };
    let cosines = bcfl_processor::anomaly::features::own_change_cosines(&round(2), &round(1));
    let expected: Vec<i64> = cosines
        .iter()
        .map(|&c| bcfl_processor::fixed::saturating_micro(c))
        .collect();
    assert_eq!(scores.iter().map(|s| s.1).collect::<Vec<_>>(), expected);
    assert_verdict_replays(ledger.url(), 2);
}

/// Member processes under the every-attack preset with the ascent method added, three rounds:
/// `EvaluateRound` reads each committer's previous commitment, extends its response sums in
/// state, and scores each member by its move response. Recomputed here from the raw records
/// (each member's committed coordinates of consecutive rounds, against the sample-weighted mean
/// of the coordinates each previous verdict accepted), the scores of round 3 are the on-chain
/// ones, the sums are stored, and an auditor replaying rounds 2 and 3 agrees. (Whether the
/// sign flipper is caught is the benchmark's question: the tiny model is a LoRA adapter, whose
/// loss is not convex in its weights.)
#[test]
fn the_ascent_method_scores_move_responses_through_member_processes() {
    ascent_scores_through_member_processes(false);
}

/// The same with `--ascent-leave-one-out`: each accepted member's response is against the
/// others' move, the weighted mean of the coordinates the previous verdict accepted without its
/// own, and the stored sums record whom each verdict accepted.
#[test]
fn leave_one_out_move_responses_through_member_processes() {
    ascent_scores_through_member_processes(true);
}

fn ascent_scores_through_member_processes(leave_one_out: bool) {
    use bcfl_processor::anomaly::features::weighted_mean_coordinates;
    use bcfl_processor::statistics::Coordinates;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let mut args = vec!["--ascent-response", "0"];
    if leave_one_out {
        args.push("--ascent-leave-one-out");
    }
    let (_report, state) = every_attack_demo(&ledger, dir.path(), "3", "sign-flip:1", &args);
    let anomaly = state
        .consortium
        .as_ref()
        .unwrap()
        .get_params()
        .get_anomaly();
    assert_eq!(anomaly.get_ascent().max_response_ppm, 0);
    assert_eq!(anomaly.get_ascent().leave_one_out, leave_one_out);
    let committed = |round: u64| -> Vec<bcfl_protos::bcfl::Commitment> {
        state
            .commitments
            .range((round, String::new())..(round + 1, String::new()))
            .map(|(_, c)| c.clone())
            .collect()
    };
    let nano = |c: &bcfl_protos::bcfl::Commitment| -> Vec<f64> {
        Coordinates::of_commitment(c)
            .nano()
            .into_iter()
            .map(|v| v as f64)
            .collect()
    };
    // Each member's (dot, weight) sums over rounds 2 and 3, in nano-units squared.
    let mut sums: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for round in [2u64, 3] {
        let before = committed(round - 1);
        let accepted: Vec<&bcfl_protos::bcfl::Commitment> = before
            .iter()
            .filter(|c| state.verdicts[&(round - 1)].accepted.contains(&c.member))
            .collect();
        let total: f64 = accepted.iter().map(|c| c.num_samples as f64).sum();
        let moved: Vec<f64> = weighted_mean_coordinates(&accepted)
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect();
        for c in committed(round) {
            let p = before.iter().find(|p| p.member == c.member).unwrap();
            let own = p.num_samples as f64;
            let others: Vec<f64> = if leave_one_out && accepted.contains(&p) {
                if own >= total {
                    // It was the whole move: no term.
                    continue;
                }
                moved
                    .iter()
                    .zip(nano(p))
                    .map(|(m, c)| (total * m - own * c) / (total - own))
                    .collect()
            } else {
                moved.clone()
            };
            let response: Vec<f64> = nano(&c).iter().zip(nano(p)).map(|(a, b)| a - b).collect();
            let dot: f64 = response.iter().zip(&others).map(|(r, m)| r * m).sum();
            let length = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let entry = sums.entry(c.member.clone()).or_default();
            entry.0 += dot;
            entry.1 += length(&response) * length(&others);
        }
    }
    let verdict = &state.verdicts[&3];
    let ascent = verdict
        .methods
        .iter()
        .find(|m| m.method == bcfl_protos::bcfl::AnomalyMethod::ASCENT)
        .expect("the verdict runs the ascent method");
    let ratio = |member: &str| {
        let (dot, weight) = sums.get(member).copied().unwrap_or_default();
        if weight > 0.0 {
            dot / weight
        } else {
            0.0
        }
    };
    for score in bcfl_processor::anomaly::member_scores(&verdict.scored(), ascent) {
        let expected = ratio(score.member);
        let on_chain = score.score_micro as f64 / 1e6;
        assert!(
            (on_chain - expected).abs() < 1e-3,
            "{}: {on_chain} on chain, {expected} recomputed",
            score.member
        );
        assert_eq!(score.flagged, on_chain > 0.0);
    }
    // The stored sums hold rounds 2 and 3, and, with leave-one-out, whom round 3 accepted.
    for entry in &state.sketch_history.entries {
        let stored = if entry.response_weight > 0 {
            entry.response_dot as f64 / entry.response_weight as f64
        } else {
            0.0
        };
        assert!((stored - ratio(&entry.member)).abs() < 1e-3, "{entry:?}");
        let kept = leave_one_out && verdict.accepted.contains(&entry.member);
        assert_eq!(entry.last_kept, kept, "{entry:?}");
    }
    for round in [2, 3] {
        assert_verdict_replays(ledger.url(), round);
    }
}

/// `bench/move_response.py`, which reads a demo's commitments and verdicts back and recomputes
/// every member's move response in floating point, agrees with the ascent method's on-chain
/// scores in a leave-one-out run whose verdicts withdraw: it must keep the model's move as the
/// processor does, withdrawn commitments taken back out (its first version took the accepted
/// changes' mean alone, and misread every round after a withdrawal).
#[test]
fn the_move_response_script_recomputes_the_on_chain_scores() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let args = [
        "--ascent-response",
        "0",
        "--ascent-leave-one-out",
        "--withdraw",
    ];
    let (_report, state) = every_attack_demo(&ledger, dir.path(), "3", "sign-flip:1", &args);
    assert!(
        state.verdicts.values().any(|v| !v.withdrawn.is_empty()),
        "the run withdraws, so the script's move is checked after a withdrawal"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/move_response.py");
    let bins = Binary::Bcfl.path().parent().unwrap().to_path_buf();
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path().join("work"))
        .arg(&bins)
        .env("BCFL_URL", ledger.url())
        .output()
        .expect("running python3 bench/move_response.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let mut compared = 0;
    for member in found["members"].as_array().unwrap() {
        for round in member["rounds"].as_array().unwrap() {
            let on_chain = round["on_chain"]
                .as_f64()
                .expect("the ascent method's score");
            let recomputed = round["leave_one_out"].as_f64().unwrap();
            assert!(
                (on_chain - recomputed).abs() < 1e-3,
                "{}, round {}: {on_chain} on chain, {recomputed} recomputed",
                member["name"],
                round["round"]
            );
            compared += 1;
        }
    }
    assert!(compared >= 8, "{found}");
}

/// Two member processes collude under the every-attack preset: each fetches the honest members'
/// committed updates and commits the one min-max update crafted from them. Their sketches are
/// copies, so the duplicate method flags both, and the verdict excludes them on that alone,
/// whatever DBSCAN and the z-score vote; an auditor replaying the round agrees.
#[test]
fn the_every_attack_preset_excludes_colluders_sending_one_update() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (report, state) = every_attack_demo(&ledger, dir.path(), "1", "min-max:2", &[]);
    let mut colluders = vec![
        member_key(&report, "member-4"),
        member_key(&report, "member-5"),
    ];
    colluders.sort();
    let verdict = &state.verdicts[&1];
    assert_eq!(verdict.excluded.as_slice(), colluders.as_slice());
    let duplicate = verdict
        .methods
        .iter()
        .find(|m| m.method == bcfl_protos::bcfl::AnomalyMethod::DUPLICATE)
        .expect("the preset runs the duplicate method");
    let flagged: Vec<String> = bcfl_processor::anomaly::member_scores(&verdict.scored(), duplicate)
        .filter(|s| s.flagged)
        .map(|s| s.member.to_owned())
        .collect();
    assert_eq!(flagged, colluders);
    assert!(state.aggregates.contains_key(&1));
    assert_eq!(state.verdicts[&1].accepted.len(), 3);
    assert_verdict_replays(ledger.url(), 1);
}

/// A lone member process crafting IPM under the every-attack preset: it fetches the honest
/// members' committed updates and commits their mean reversed and shortened. There is no copy
/// for the duplicate method to find; its sketch sum points against the consensus in both
/// rounds, and the opposed-change method excludes it on that alone, where every honest member
/// adds to the consensus; an auditor replaying round 2 agrees.
#[test]
fn the_every_attack_preset_excludes_a_lone_member_undoing_the_consensus() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (report, state) = every_attack_demo(&ledger, dir.path(), "2", "ipm:1", &[]);
    let attacker = member_key(&report, "member-5");
    let limit = i64::from(bcfl_processor::anomaly::EVERY_ATTACK_OPPOSED_DISTANCE_PPM);
    for round in [1, 2] {
        let verdict = &state.verdicts[&round];
        assert_eq!(
            verdict.excluded.as_slice(),
            std::slice::from_ref(&attacker),
            "round {round}"
        );
        let opposed = verdict
            .methods
            .iter()
            .find(|m| m.method == bcfl_protos::bcfl::AnomalyMethod::OPPOSED)
            .expect("the preset runs the opposed-change method");
        for s in bcfl_processor::anomaly::member_scores(&verdict.scored(), opposed) {
            assert_eq!(s.flagged, s.member == attacker, "round {round}: {s:?}");
            assert_eq!(s.flagged, s.score_micro >= limit, "round {round}: {s:?}");
        }
        assert!(state.aggregates.contains_key(&round));
    }
    assert_verdict_replays(ledger.url(), 2);
}

/// Sketches after the commitments through member processes: every round is sealed with a seed
/// drawn from its commitments, every member reveals its sketch (the adaptive attacker too, the
/// sketch of what it sent), the aggregator's check of every revealed sketch against its blob
/// disputes none, nobody is left unrevealed, and the auditor's replay of each verdict (the
/// block's `RevealSketch` transactions included) agrees.
#[test]
fn sketches_after_commit_are_sealed_revealed_and_checked_through_member_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (_, state) = every_attack_demo(
        &ledger,
        dir.path(),
        "2",
        "hidden-reversal:1",
        &["--sketch-after-commit"],
    );
    let params = state.consortium.as_ref().unwrap().get_params();
    assert!(params.sketch_after_commit);
    for round in [1, 2] {
        let r = &state.rounds[&round];
        assert_ne!(r.sketch_seed, 0, "round {round}");
        assert!(r.disputes.is_empty(), "round {round}: {:?}", r.disputes);
        let commitments: Vec<_> = state.round_commitments(round).cloned().collect();
        assert_eq!(commitments.len(), 5, "round {round}");
        assert_eq!(
            r.sketch_seed,
            bcfl_processor::rules::rounds::sketch_seed(round, &commitments)
        );
        for c in &commitments {
            assert_eq!(
                c.sketch.len(),
                params.sketch_length as usize,
                "round {round}"
            );
        }
        assert!(state.verdicts[&round].unrevealed.is_empty());
        assert!(state.aggregates.contains_key(&round));
    }
    assert_verdict_replays(ledger.url(), 2);
}

/// Withdrawal through member processes (`bcfl demo --withdraw`): a member sending Gaussian
/// noise is accepted in round 1 (the z-score's threshold leaves everyone in) and excluded in
/// round 2 by the inconsistent-change method, whose flag withdraws its round-1 update. The
/// aggregator member fetches that update again and commits round 2's aggregate with its
/// contribution taken back out; the verifier committee recomputes the same (the aggregate is
/// FINAL), and so does the aggregate plan from the members' stores, where the plain FedAvg of
/// the accepted updates differs; an auditor replaying the verdict agrees.
#[test]
fn a_noise_senders_first_update_is_withdrawn_through_member_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (mut command, work) = tiny_demo(ledger.url(), dir.path(), 40);
    let report = run_demo(
        &mut command,
        &[
            "--members",
            "5",
            "--rounds",
            "2",
            "--attack",
            "gaussian-noise:1",
            "--anomaly",
            "zscore",
            "--zscore-threshold",
            "100",
            "--coordinate-samples",
            "256",
            "--inconsistent-cosine",
            "0.25",
            "--withdraw",
            "--committee",
            "1",
        ],
    );
    let state = family_state(ledger.url());
    let noisy = member_key(&report, "member-5");
    assert!(state.verdicts[&1].excluded.is_empty());
    let verdict = &state.verdicts[&2];
    assert_eq!(verdict.excluded.as_slice(), std::slice::from_ref(&noisy));
    assert_eq!(verdict.withdrawn_members(), std::slice::from_ref(&noisy));
    let aggregate = &state.aggregates[&2];
    assert_eq!(
        aggregate.finality,
        bcfl_protos::bcfl::Finality::FINAL,
        "{aggregate:?}"
    );
    let held = |sha: &str| held_blob(&work, sha);
    let recompute = |plan: &bcfl_client::round::replay::AggregatePlan| {
        plan.compute(
            |u| Ok(held(&u.sha256)),
            |sha| Ok(std::fs::read(held(sha)).unwrap()),
            &dir.path().join("scratch"),
        )
        .unwrap()
        .sha256
    };
    let plan = bcfl_client::round::replay::AggregatePlan::of(&state, 2).unwrap();
    assert_eq!(plan.withdrawn.len(), 1);
    assert_eq!(recompute(&plan), aggregate.model_sha256);
    let plain = bcfl_client::round::replay::AggregatePlan {
        withdrawn: Vec::new(),
        ..plan
    };
    assert_ne!(recompute(&plain), aggregate.model_sha256);
    assert_verdict_replays(ledger.url(), 2);
}

/// A member claiming a hundred times its samples (`--attack inflated-samples:1`, three members,
/// one round): the demo registers each member with its shard's size as its sample cap, so the
/// processor refuses the attacker's commitment and the round aggregates the two honest members
/// alone; registered without caps (`--no-sample-caps`), the same claim is recorded, and FedAvg
/// would weigh it a hundred times.
#[test]
fn a_member_claiming_more_samples_than_its_cap_is_refused_through_member_processes() {
    for caps in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::start(dir.path());
        let (mut command, _work) = tiny_demo(ledger.url(), dir.path(), 40);
        let mut args = vec![
            "--members",
            "3",
            "--rounds",
            "1",
            "--attack",
            "inflated-samples:1",
            "--commit-timeout",
            "5",
        ];
        if !caps {
            args.push("--no-sample-caps");
        }
        let report = run_small(&mut command, &args);
        let state = family_state(ledger.url());
        let attacker = member_key(&report, "member-3");
        for m in report["members"].as_array().unwrap() {
            let key = m["key"].as_str().unwrap();
            let shard = m["shard"].as_u64().unwrap();
            let cap = if caps { shard } else { 0 };
            assert_eq!(state.members[key].max_samples, cap, "{m}");
            if key != attacker {
                assert_eq!(state.commitments[&(1, key.to_owned())].num_samples, shard);
            }
        }
        let round = &report["rounds"][0];
        let attacked = round["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["member"] == "member-3")
            .unwrap();
        let shard = report["members"][2]["shard"].as_u64().unwrap();
        if caps {
            assert!(!state.commitments.contains_key(&(1, attacker.clone())));
            assert_eq!(attacked["committed"], false, "{attacked}");
            assert_eq!(state.rounds[&1].committers.len(), 2);
        } else {
            let claimed = state.commitments[&(1, attacker.clone())].num_samples;
            assert_eq!(claimed, 100 * shard);
            assert_eq!(attacked["committed"], true, "{attacked}");
        }
    }
}
