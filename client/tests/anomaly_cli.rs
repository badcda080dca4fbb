//! End to end: binding anomaly verdicts. Five members commit to a round on a real `bcfl-devnet`
//! with the real `bcfl-tp`; one sends a scaled, sign-flipped update. `bcfl round evaluate` makes
//! the processor exclude it, `bcfl audit verdict 1` recomputes the stored verdict from the chain
//! and matches it, and `bcfl anomaly` finds the same member from a features file without a ledger.
//!
//! The process helpers are the same as in `cli_devnet.rs` (each integration test is its own
//! crate).

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
fn the_processor_excludes_a_poisoned_update_and_the_audit_agrees() {
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
    let names = ["admin", "m0", "m1", "m2", "m3", "m4"];
    for name in names {
        cli.ok(name, &["keygen", name]);
    }
    cli.ok(
        "admin",
        &[
            "consortium",
            "init",
            "--base-model-sha256",
            &"22".repeat(32),
            "--min-participants",
            "5",
            "--quorum",
            "5",
            "--sketch-length",
            "4",
            "--anomaly",
            "zscore,dbscan",
        ],
    );
    for name in &names[1..] {
        cli.ok(
            "admin",
            &[
                "member",
                "register",
                name,
                "--name",
                name,
                "--endpoint",
                "http://127.0.0.1:9",
            ],
        );
    }
    cli.ok("admin", &["round", "open", "--aggregator", "m0"]);
    let files = dir.path();
    for (i, name) in names[1..].iter().enumerate() {
        // m4 scales its update x10 and flips its sign.
        let (norm, sketch) = if *name == "m4" {
            ("15", "-100 -41 -69 -30")
        } else {
            ("1.5", ["10 4 7 3", "11 4 7 3", "10 5 7 3", "10 4 6 3"][i])
        };
        let blob = files.join(format!("{name}.blob"));
        let sketch_path = files.join(format!("{name}.sketch"));
        std::fs::write(&blob, format!("update of {name}")).unwrap();
        std::fs::write(&sketch_path, sketch).unwrap();
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
                norm,
                "--sketch",
                sketch_path.to_str().unwrap(),
            ],
        );
    }
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
}
