//! End to end: the `bcfl` CLI against a real `bcfl-devnet` ledger with the real `bcfl-tp`
//! processor, both started as child processes on free loopback ports.
//!
//! `bcfl-devnet` and `bcfl-tp` are binaries of other workspace packages, which `cargo test -p
//! bcfl-client` does not build: when they are missing from the target directory this test
//! builds them with the same cargo first.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn target_profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_bcfl"))
        .parent()
        .expect("bcfl lives in <target>/<profile>")
        .to_path_buf()
}

/// The path of a workspace binary, built on demand.
fn workspace_bin(name: &str, package: &str) -> PathBuf {
    let dir = target_profile_dir();
    let path = dir.join(name);
    if !path.is_file() {
        let target = dir.parent().expect("<target>/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--bin", name])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building {name} failed");
    }
    path
}

/// Starts the devnet on port 0 for both endpoints and reads the chosen ones from its stdout.
fn start_devnet(data_dir: &Path) -> (Killed, String, String) {
    let mut child = Command::new(workspace_bin("bcfl-devnet", "bcfl-devnet"))
        .args(["--data-dir"])
        .arg(data_dir)
        .args([
            "--bind-component",
            "tcp://127.0.0.1:0",
            "--bind-rest",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting bcfl-devnet");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Killed(child);
    // Keep draining stdout for the devnet's whole life: a closed pipe would fail its later
    // writes.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let (mut component, mut rest) = (None, None);
    while component.is_none() || rest.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            break;
        };
        if let Some(c) = line.strip_prefix("component: ") {
            component = Some(c.to_owned());
        } else if let Some(r) = line.strip_prefix("rest: ") {
            rest = Some(r.to_owned());
        }
    }
    let component = component.expect("devnet printed its component endpoint");
    let rest = rest.expect("devnet printed its REST address");
    (child, component, rest)
}

struct Cli {
    url: String,
    key_dir: PathBuf,
}

impl Cli {
    fn run(&self, key: &str, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_bcfl"))
            .env("BCFL_URL", &self.url)
            .env_remove("BCFL_KEY")
            .arg("--key-dir")
            .arg(&self.key_dir)
            .args(["--key", key])
            .args(args)
            .output()
            .expect("running bcfl");
        output
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, key: &str, args: &[&str]) -> String {
        let out = self.run(key, args);
        assert!(
            out.status.success(),
            "bcfl {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn json(&self, key: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(key, &all).trim()).expect("one JSON document")
    }

    fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.key_dir.join(format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }
}

fn wait_for_rest(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = url.trim_start_matches("http://");
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "REST API at {url} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_round_end_to_end_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (_devnet, component, url) = start_devnet(&dir.path().join("ledger"));
    let _tp = Killed(
        Command::new(workspace_bin("bcfl-tp", "bcfl-processor"))
            .args(["--connect", &component])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting bcfl-tp"),
    );
    wait_for_rest(&url);
    let cli = Cli {
        url,
        key_dir: dir.path().join("keys"),
    };

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
    for (name, blob, sketch, loss) in [
        ("alice", b"update-a".as_slice(), "10, -3 7\n0", "0.25"),
        ("bob", b"update-b".as_slice(), "9 -2 8 1", "-0.5"),
    ] {
        let blob_path = files.join(format!("{name}.blob"));
        let sketch_path = files.join(format!("{name}.sketch"));
        std::fs::write(&blob_path, blob).unwrap();
        std::fs::write(&sketch_path, sketch).unwrap();
        let short = cli.run(
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
                files.join("bad-sketch").to_str().unwrap(),
            ],
        );
        assert_eq!(short.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&short.stderr).contains("exactly 4"));
        cli.ok(
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
                sketch_path.to_str().unwrap(),
            ],
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
    let out = Command::new(env!("CARGO_BIN_EXE_bcfl"))
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
