//! End to end: a consortium of separate `bcfl node run` processes (3 members with a tiny
//! model, and a coordinator) on `bcfl-devnet` + `bcfl-tp`, set up the way an operator would,
//! through the `bcfl` CLI: keys, `data split`, `model init`, `consortium init`, `member
//! register`, one TOML file per node.
//!
//! - the three modes complete three rounds, the last global model's hash is on chain and every
//!   member's store holds it (checked byte for byte);
//! - a node and `bcfl-tp` killed with SIGKILL mid-round and started again catch up and the rounds
//!   complete (the auditor's replay agrees with every aggregate);
//! - a member that never comes back does not stall the consortium;
//! - the processor refuses an aggregator the previous round's verdict excluded;
//! - a label flipper trains as a node, and the mislabelled-change method, its reference made by
//!   `bcfl model reference`, scores every committer.

#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bcfl_testkit::{free_port, Binary, Cli, Ledger, Spawned};
use serde_json::Value;

/// Generous: a cold debug build of libtorch code on 2 busy cores is slow.
const RUN_TIMEOUT: Duration = Duration::from_secs(420);

fn data_dir() -> PathBuf {
    std::env::var_os("BCFL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data"))
}

struct Consortium {
    dir: PathBuf,
    ledger: Ledger,
    cli: Cli,
    names: Vec<String>,
    configs: Vec<PathBuf>,
    stores: Vec<PathBuf>,
}

/// The ledger, keys, shards, model package, consortium and members of `n` member nodes, the
/// consortium without anomaly detection and with `init`'s flags.
fn consortium(dir: &Path, n: usize, init: &[&str]) -> Consortium {
    consortium_with(dir, n, |_| {
        // These tests are about the protocol: every committer is accepted (with three tiny
        // members the detectors' verdicts are noise, and a verdict excluding all three
        // abandons the round).
        let mut args = vec!["--no-anomaly".to_owned()];
        args.extend(init.iter().map(|s| s.to_string()));
        args
    })
}

/// [`consortium`], `consortium init` given the flags `init` returns once the shards and the
/// model package are written (it is handed the CLI and the work folder).
fn consortium_with(dir: &Path, n: usize, init: impl FnOnce(&Cli) -> Vec<String>) -> Consortium {
    // `bcfl data|model|node run` run in bcfl-train.
    Binary::BcflTrain.path();
    let ledger = Ledger::start(dir);
    let cli = Cli::new(ledger.url(), dir.join("keys"));
    cli.keygen("admin");
    let shards = dir.join("shards");
    let data = data_dir();
    cli.ok(
        "admin",
        &[
            "data",
            "split",
            "--data-dir",
            data.to_str().unwrap(),
            "--members",
            &n.to_string(),
            "--max-train",
            "60",
            "--max-test",
            "40",
            "--out",
            shards.to_str().unwrap(),
        ],
    );
    let model = dir.join("model");
    cli.ok(
        "admin",
        &[
            "model",
            "init",
            "--tiny",
            "--data-dir",
            data.to_str().unwrap(),
            "--max-len",
            "32",
            "--out",
            model.to_str().unwrap(),
        ],
    );
    let mut args = vec![
        "consortium".to_owned(),
        "init".into(),
        "--base-model".into(),
        model.join("model.safetensors").display().to_string(),
        "--initial-model".into(),
        model.join("initial.safetensors").display().to_string(),
        "--min-participants".into(),
        "2".into(),
        "--quorum".into(),
        "2".into(),
    ];
    args.extend(init(&cli));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli.ok("admin", &args);
    let mut names = Vec::new();
    let mut configs = Vec::new();
    let mut stores = Vec::new();
    for i in 1..=n {
        let name = format!("member-{i}");
        cli.keygen(&name);
        let port = free_port();
        cli.register_member("admin", &name, &format!("http://127.0.0.1:{port}"));
        let store = dir.join(format!("{name}-store"));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "ledger = [\"{url}\"]\npoll_seconds = 0.5\n\n[member]\nname = \"{name}\"\nkey = \"keys/{name}.priv\"\npackage = \"model\"\ndata = \"shards/member-{i}.csv\"\nstore = \"{name}-store\"\nlisten = \"127.0.0.1:{port}\"\nreport = \"{name}.jsonl\"\ncommit_timeout_seconds = 8\n[member.train]\nepochs = 1\nbatch_size = 16\n[member.probe]\nbytes = 65536\nrtt_samples = 2\n",
                url = ledger.url()
            ),
        )
        .unwrap();
        names.push(name);
        configs.push(config);
        stores.push(store);
    }
    Consortium {
        dir: dir.to_path_buf(),
        ledger,
        cli,
        names,
        configs,
        stores,
    }
}

impl Consortium {
    fn node(&self, i: usize, until: u64) -> Spawned {
        let mut command = Command::new(Binary::Bcfl.path());
        command
            .env("OMP_NUM_THREADS", "1")
            .env("RUST_LOG", "info")
            .args(["node", "run", "--config"])
            .arg(&self.configs[i])
            .args(["--until-round", &until.to_string()]);
        Spawned::start(&self.names[i], command, &self.dir)
    }

    fn coordinator(&self, schedule: &str) -> Spawned {
        let config = self.dir.join("coordinator.toml");
        std::fs::write(
            &config,
            format!(
                "ledger = [\"{}\"]\npoll_seconds = 0.5\n\n[coordinator]\nkey = \"keys/admin.priv\"\ncommit_timeout = 8\naggregate_timeout = 20\n{schedule}\n",
                self.cli.url()
            ),
        )
        .unwrap();
        let mut command = Command::new(Binary::Bcfl.path());
        command
            .env("RUST_LOG", "info")
            .args(["node", "run", "--config"])
            .arg(&config);
        Spawned::start("coordinator", command, &self.dir)
    }

    fn round(&self, n: u64) -> Value {
        self.cli.json("admin", &["audit", "round", &n.to_string()])
    }

    fn key(&self, i: usize) -> String {
        self.cli.public_key(&self.names[i])
    }

    /// Waits for `process` to exit 0.
    fn finishes(process: &mut Spawned) {
        match process.wait(RUN_TIMEOUT) {
            Some(status) if status.success() => {}
            other => panic!(
                "{} ended with {other:?}:\n{}",
                process.name(),
                process.log_text()
            ),
        }
    }

    /// Polls until `check` holds on `audit rounds`, or panics with the logs.
    fn wait_until(&self, what: &str, nodes: &mut [Spawned], check: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let rounds = self.cli.json("admin", &["audit", "rounds"]);
            if check(&rounds) {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = nodes.iter().map(|n| n.log_text()).collect();
                panic!(
                    "timed out waiting for {what}: {rounds}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `bcfl audit replay N` over the members' blob stores recomputes every round's aggregate
    /// and finds the one on chain.
    fn replays(&self, rounds: std::ops::RangeInclusive<u64>) {
        for n in rounds {
            let mut args = vec!["audit".to_owned(), "replay".to_owned(), n.to_string()];
            for store in &self.stores {
                args.push("--blobs".to_owned());
                args.push(store.to_str().unwrap().to_owned());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.cli.run("admin", &args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {n}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The last round's aggregate is on chain and every listed member's store holds its bytes.
    fn everyone_holds(&self, round: u64, members: &[usize]) -> String {
        let r = self.round(round);
        let sha = r["aggregate"]["model_sha256"]
            .as_str()
            .unwrap_or_else(|| panic!("round {round} has no aggregate: {r}"))
            .to_owned();
        for &i in members {
            let path = self.stores[i].join(&sha);
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{} does not hold {sha}: {e}", self.names[i]));
            assert_eq!(bcfl_fed::digest::sha256_hex(&bytes), sha);
        }
        sha
    }
}

fn phase(rounds: &Value, n: u64) -> Option<String> {
    rounds
        .as_array()?
        .iter()
        .find(|r| r["number"].as_u64() == Some(n))
        .and_then(|r| r["phase"].as_str().map(str::to_owned))
}

fn run_three_rounds(schedule: &str, slow: Option<usize>) -> (tempfile::TempDir, Consortium) {
    run_three_rounds_with(schedule, slow, &[])
}

fn run_three_rounds_with(
    schedule: &str,
    slow: Option<usize>,
    init: &[&str],
) -> (tempfile::TempDir, Consortium) {
    let dir = tempfile::tempdir().unwrap();
    let c = consortium(dir.path(), 3, init);
    if let Some(i) = slow {
        let mut text = std::fs::read_to_string(&c.configs[i]).unwrap();
        text = text.replace(
            "commit_timeout_seconds = 8\n",
            "commit_timeout_seconds = 8\nslowdown = 3.0\n",
        );
        std::fs::write(&c.configs[i], text).unwrap();
    }
    let mut nodes: Vec<Spawned> = (0..3).map(|i| c.node(i, 3)).collect();
    let mut coordinator = c.coordinator(schedule);
    Consortium::finishes(&mut coordinator);
    for node in &mut nodes {
        Consortium::finishes(node);
    }
    for n in 1..=3 {
        let round = c.round(n);
        assert_eq!(round["round"]["phase"], "CLOSED", "{round}");
    }
    (dir, c)
}

#[test]
fn serverless_synchronous_rounds_complete_and_every_member_holds_the_model() {
    let (_dir, c) = run_three_rounds("rounds = 3\n", None);
    for n in 1..=3 {
        let round = c.round(n);
        assert_eq!(round["round"]["mode"], "SERVERLESS", "{round}");
        assert_eq!(round["round"]["sync"], "SYNCHRONOUS", "{round}");
        assert_eq!(round["commitments"].as_array().unwrap().len(), 3, "{round}");
    }
    c.everyone_holds(3, &[0, 1, 2]);
    c.replays(1..=3);
    // Each member's report has its phases, with the peak memory.
    let events = std::fs::read_to_string(c.dir.join("member-1.jsonl")).unwrap();
    assert!(events.contains("\"phase\":\"train\""), "{events}");
    assert!(events.contains("\"peak_rss_bytes\""), "{events}");
}

/// Evidence checked by someone other than its author: with a verifier committee of one, every
/// aggregate is recomputed and attested by a member other than its aggregator before its round
/// closes; and a member that commits the statistics of its honest update while sending ten times
/// that update is disputed by the aggregator, which recomputed them from the blob, and excluded
/// unscored.
#[test]
fn a_committee_attests_every_aggregate_and_a_disguised_update_is_disputed() {
    let dir = tempfile::tempdir().unwrap();
    let c = consortium(dir.path(), 3, &["--committee-size", "1"]);
    let attacker = 2;
    let mut text = std::fs::read_to_string(&c.configs[attacker]).unwrap();
    text = text.replace(
        "commit_timeout_seconds = 8\n",
        "commit_timeout_seconds = 8\nattack = \"disguised-scale\"\n",
    );
    std::fs::write(&c.configs[attacker], text).unwrap();
    let mut nodes: Vec<Spawned> = (0..3).map(|i| c.node(i, 2)).collect();
    // A fixed central aggregator (server mode: it does not train), so that the attacker is
    // never the one that checks the commitments.
    let server = c.key(0);
    let mut coordinator = c.coordinator(&format!(
        "rounds = 2\ntopology = \"server\"\nserver = \"{server}\"\n"
    ));
    Consortium::finishes(&mut coordinator);
    for node in &mut nodes {
        Consortium::finishes(node);
    }
    let attacker_key = c.key(attacker);
    for n in 1..=2 {
        let round = c.round(n);
        assert_eq!(round["round"]["phase"], "CLOSED", "{round}");
        assert!(
            round["round"]["closed_unverified"].as_bool() != Some(true),
            "{round}"
        );
        let aggregator = round["round"]["aggregator"].as_str().unwrap().to_owned();
        assert_eq!(aggregator, server, "{round}");
        {
            // The aggregator recomputed the attacker's norm from its blob and disputed it.
            assert_eq!(
                round["verdict"]["disputed"],
                serde_json::json!([attacker_key]),
                "{round}"
            );
            assert_eq!(round["round"]["disputes"][0]["mismatch"], "NORM", "{round}");
            // The auditor recomputes the verdict, the dispute included.
            let audit = c.cli.json("admin", &["audit", "verdict", &n.to_string()]);
            assert_eq!(audit["matches"], true, "{audit}");
        }
        let aggregate = &round["aggregate"];
        assert_eq!(aggregate["finality"], "FINAL", "{round}");
        let committee = aggregate["committee"].as_array().unwrap();
        assert_eq!(committee.len(), 1, "{round}");
        assert_ne!(committee[0].as_str(), Some(aggregator.as_str()), "{round}");
        let attestation = &aggregate["attestations"][0];
        assert_eq!(attestation["member"], committee[0], "{round}");
        assert_eq!(
            attestation["model_sha256"], aggregate["model_sha256"],
            "{round}"
        );
    }
    c.replays(1..=2);
    let events: String = (1..=3)
        .map(|i| std::fs::read_to_string(c.dir.join(format!("member-{i}.jsonl"))).unwrap())
        .collect();
    assert!(events.contains("\"phase\":\"verify\""), "{events}");
    assert!(events.contains("\"phase\":\"attest\""), "{events}");
}

#[test]
fn server_rounds_keep_their_fixed_aggregator() {
    let dir = tempfile::tempdir().unwrap();
    let c = consortium(dir.path(), 3, &[]);
    let server = c.key(2);
    let mut nodes: Vec<Spawned> = (0..3).map(|i| c.node(i, 3)).collect();
    let mut coordinator = c.coordinator(&format!(
        "rounds = 3\ntopology = \"server\"\nserver = \"{server}\"\n"
    ));
    Consortium::finishes(&mut coordinator);
    for node in &mut nodes {
        Consortium::finishes(node);
    }
    for n in 1..=3 {
        let round = c.round(n);
        assert_eq!(round["round"]["mode"], "SERVER", "{round}");
        assert_eq!(round["round"]["aggregator"], server.as_str(), "{round}");
        assert!(round["aggregate"]["model_sha256"].is_string(), "{round}");
    }
    c.everyone_holds(3, &[0, 1, 2]);
}

#[test]
fn buffered_asynchronous_rounds_aggregate_k_updates() {
    let (_dir, c) = run_three_rounds(
        "rounds = 3\nsynchrony = \"buffered-async\"\nbuffer = 2\nmax_staleness = 2\n",
        Some(2),
    );
    let mut stale = 0;
    for n in 1..=3 {
        let round = c.round(n);
        assert_eq!(round["round"]["sync"], "BUFFERED_ASYNC", "{round}");
        let commitments = round["commitments"].as_array().unwrap();
        assert!(commitments.len() >= 2, "{round}");
        stale += commitments
            .iter()
            .filter(|c| c["staleness"].as_u64().unwrap_or(0) > 0)
            .count();
        assert!(round["aggregate"]["model_sha256"].is_string(), "{round}");
    }
    eprintln!("stale updates aggregated: {stale}");
    c.everyone_holds(3, &[0, 1, 2]);
    // Every member held and checked every round's global model, in round order, the slow one
    // too (a member used to follow only the newest aggregate, so one busy while two aggregates
    // went by skipped the first; `round::schedule::globals_to_follow` has the unit test).
    for i in 0..3 {
        for n in 1..=3 {
            c.everyone_holds(n, &[i]);
        }
        let name = &c.names[i];
        let events = std::fs::read_to_string(c.dir.join(format!("{name}.jsonl"))).unwrap();
        let held: Vec<u64> = events
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["phase"] == "global")
            .map(|e| e["round"].as_u64().unwrap())
            .collect();
        assert_eq!(held, vec![1, 2, 3], "{name}: {events}");
    }
    // Stale updates are rebased onto the round's parent: the auditor's replay agrees.
    c.replays(1..=3);
}

#[test]
fn a_node_and_the_processor_killed_mid_round_restart_and_the_round_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = consortium(dir.path(), 3, &[]);
    // Slower members, so that a round lasts long enough to be caught mid-way.
    for config in &c.configs {
        let text = std::fs::read_to_string(config).unwrap();
        std::fs::write(
            config,
            text.replace(
                "commit_timeout_seconds = 8\n",
                "commit_timeout_seconds = 8\nslowdown = 10.0\n",
            ),
        )
        .unwrap();
    }
    let mut nodes: Vec<Spawned> = (0..3).map(|i| c.node(i, 3)).collect();
    let mut coordinator = c.coordinator("rounds = 3\n");
    c.wait_until("round 2 to open", &mut nodes, |r| {
        match phase(r, 2).as_deref() {
            Some("CLOSED") => panic!("round 2 closed before the test could kill a node: {r}"),
            Some(_) => true,
            None => false,
        }
    });
    // Kill round 2's aggregator, the node the round depends on most.
    let aggregator = c.round(2)["round"]["aggregator"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = (0..3).find(|&i| c.key(i) == aggregator).unwrap();
    nodes[victim].kill();
    // And the transaction processor: the ledger holds the batches meanwhile.
    c.ledger.processor().kill();
    std::thread::sleep(Duration::from_millis(500));
    c.ledger.processor().restart();
    nodes[victim].restart();
    Consortium::finishes(&mut coordinator);
    for node in &mut nodes {
        Consortium::finishes(node);
    }
    for n in 1..=3 {
        let round = c.round(n);
        assert!(
            round["aggregate"]["model_sha256"].is_string(),
            "round {n}: {round}"
        );
    }
    c.everyone_holds(3, &[0, 1, 2]);
    c.replays(1..=3);
}

#[test]
fn a_member_that_never_returns_does_not_stall_the_consortium() {
    let dir = tempfile::tempdir().unwrap();
    let c = consortium(dir.path(), 3, &[]);
    // The member with the smallest key aggregates round 1 (no link is measured yet); one of
    // the others never starts.
    let first = (0..3).min_by_key(|&i| c.key(i)).unwrap();
    let gone = (0..3).rev().find(|&i| i != first).unwrap();
    let alive: Vec<usize> = (0..3).filter(|&i| i != gone).collect();
    let mut nodes: Vec<Spawned> = alive.iter().map(|&i| c.node(i, 3)).collect();
    let mut coordinator = c.coordinator("rounds = 3\n");
    Consortium::finishes(&mut coordinator);
    for node in &mut nodes {
        Consortium::finishes(node);
    }
    for n in 1..=3 {
        let round = c.round(n);
        assert_eq!(round["commitments"].as_array().unwrap().len(), 2, "{round}");
        assert!(round["aggregate"]["model_sha256"].is_string(), "{round}");
    }
    c.everyone_holds(3, &alive);
}

/// An operator's mislabelled-change method: `bcfl model reference` makes the reference of the
/// package's head from the held-out file, `consortium init --reference` takes it, a member
/// node trains on shifted labels (`attack = "label-flip"`), and every round's verdict scores
/// each committer's margin. The limit is the lowest allowed (-0.5): with a tiny random model
/// the margins say little, so nobody is excluded on them and the rounds complete.
#[test]
fn a_label_flipper_trains_and_the_mislabelled_method_scores_every_committer() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_path_buf();
    let c = consortium_with(dir.path(), 3, |cli| {
        let reference = work.join("reference.safetensors");
        let made = cli.json(
            "admin",
            &[
                "model",
                "reference",
                "--package",
                work.join("model").to_str().unwrap(),
                "--root-set",
                work.join("shards/test.csv").to_str().unwrap(),
                "--out",
                reference.to_str().unwrap(),
                "--coordinate-samples",
                "1024",
            ],
        );
        let (head, all) = (
            made["head_values"].as_u64(),
            made["trainable_values"].as_u64(),
        );
        assert!(head.unwrap() > 0 && head < all, "{made}");
        assert_eq!(made["directions"], "class-means", "{made}");
        let compared = made["compared"].as_u64().unwrap();
        assert!(compared > 0 && compared < 1024, "{made}");
        for class in made["root_examples"].as_array().unwrap() {
            assert!(class[1].as_u64().unwrap() > 0, "{made}");
        }
        [
            "--anomaly",
            "mislabelled",
            "--coordinate-samples",
            "1024",
            "--reference",
            reference.to_str().unwrap(),
            "--mislabelled-margin",
            "-0.5",
        ]
        .map(String::from)
        .to_vec()
    });
    let text = std::fs::read_to_string(&c.configs[2]).unwrap();
    let text = text.replace("[member.train]", "attack = \"label-flip\"\n[member.train]");
    std::fs::write(&c.configs[2], text).unwrap();
    let mut nodes: Vec<Spawned> = (0..3).map(|i| c.node(i, 2)).collect();
    let mut coordinator = c.coordinator("rounds = 2\n");
    Consortium::finishes(&mut coordinator);
    for node in &mut nodes {
        Consortium::finishes(node);
    }
    assert!(
        nodes[2].log_text().contains("label-flip"),
        "{}",
        nodes[2].log_text()
    );
    for n in 1..=2 {
        let round = c.round(n);
        assert_eq!(round["round"]["phase"], "CLOSED", "{round}");
        let methods = round["verdict"]["methods"]
            .as_array()
            .unwrap_or_else(|| panic!("no verdict methods: {round}"));
        let mislabelled = methods
            .iter()
            .find(|m| m["method"] == "MISLABELLED")
            .unwrap_or_else(|| panic!("no mislabelled method: {round}"));
        assert_eq!(
            mislabelled["scores_micro"].as_array().map(Vec::len),
            Some(3),
            "{mislabelled}"
        );
    }
}
