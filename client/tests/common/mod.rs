//! Process helpers shared by the CLI end-to-end tests: a real `bcfl-devnet` and `bcfl-tp` on
//! free loopback ports, and the `bcfl` binary run against them.
//!
//! `bcfl-devnet` and `bcfl-tp` are binaries of other workspace packages, which `cargo test -p
//! bcfl-client` does not build: when they are missing from the target directory they are built
//! with the same cargo first. Each integration test is its own crate and uses a subset of these
//! helpers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn target_profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_bcfl"))
        .parent()
        .expect("bcfl lives in <target>/<profile>")
        .to_path_buf()
}

/// The path of a workspace binary, built on demand.
pub fn workspace_bin(name: &str, package: &str) -> PathBuf {
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
pub fn start_devnet(data_dir: &Path) -> (Killed, String, String) {
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

pub struct Cli {
    pub url: String,
    pub key_dir: PathBuf,
}

impl Cli {
    pub fn run(&self, key: &str, args: &[&str]) -> Output {
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
    pub fn ok(&self, key: &str, args: &[&str]) -> String {
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

    pub fn json(&self, key: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(key, &all).trim()).expect("one JSON document")
    }

    pub fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.key_dir.join(format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }
}

pub fn wait_for_rest(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = url.trim_start_matches("http://");
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "REST API at {url} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running ledger: `bcfl-devnet` with `bcfl-tp` registered, and the REST URL.
pub struct Ledger {
    /// The REST API's base URL.
    pub url: String,
    _tp: Killed,
    _devnet: Killed,
}

/// Starts `bcfl-devnet` (data in `data_dir`) and `bcfl-tp`, and waits for the REST API.
pub fn start_ledger(data_dir: &Path) -> Ledger {
    let (devnet, component, url) = start_devnet(data_dir);
    let tp = Killed(
        Command::new(workspace_bin("bcfl-tp", "bcfl-processor"))
            .args(["--connect", &component])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting bcfl-tp"),
    );
    wait_for_rest(&url);
    Ledger {
        url,
        _tp: tp,
        _devnet: devnet,
    }
}

/// The signers of the poisoned-round tests: an admin and members `m0`..`m4`.
pub const POISON_NAMES: [&str; 6] = ["admin", "m0", "m1", "m2", "m3", "m4"];

/// Creates the keys of [`POISON_NAMES`] and a consortium that needs all five members'
/// commitments and judges them with the modified z-score and DBSCAN (4-long sketches).
pub fn init_poison_consortium(cli: &Cli) {
    for name in POISON_NAMES {
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
}

/// Registers member `name` (also its display name) with a blob endpoint, signed by `admin`.
pub fn register_member(cli: &Cli, name: &str, endpoint: &str) {
    cli.ok(
        "admin",
        &[
            "member",
            "register",
            name,
            "--name",
            name,
            "--endpoint",
            endpoint,
        ],
    );
}

/// Commits an update of `members` (`m1`.. in order, at most four) to the open round, from files
/// written under `dir`: small honest updates with similar sketches, except that `m4` scales its
/// update x10 and flips its sign, so the processor's verdict excludes it.
pub fn commit_with_poisoned_m4(cli: &Cli, dir: &Path, members: &[&str]) {
    for (i, name) in members.iter().enumerate() {
        let (norm, sketch) = if *name == "m4" {
            ("15", "-100 -41 -69 -30")
        } else {
            ("1.5", ["10 4 7 3", "11 4 7 3", "10 5 7 3", "10 4 6 3"][i])
        };
        let blob = dir.join(format!("{name}.blob"));
        let sketch_path = dir.join(format!("{name}.sketch"));
        std::fs::write(&blob, format!("update of {name}")).unwrap();
        std::fs::write(&sketch_path, sketch).unwrap();
        let (blob, sketch_path) = (blob.to_str().unwrap(), sketch_path.to_str().unwrap());
        cli.ok(
            name,
            &[
                "commit",
                "--blob",
                blob,
                "--samples",
                "100",
                "--loss",
                "0.5",
                "--norm",
                norm,
                "--sketch",
                sketch_path,
            ],
        );
    }
}
