//! The peer network with the ledger, on loopback (no namespaces needed): two members run
//! `bcfl node serve` at their registered endpoints, each probes the other and reports the sweep
//! on chain (`bcfl node probe --submit`, one `ReportBandwidth`), and `bcfl node distribute`
//! then takes both the peers and the graph from the chain and delivers a verified blob.
//!
//! `bcfl-devnet`, `bcfl-tp` and `bcfl` must be built (`scripts/test.sh` builds them).

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{free_port, wait_for_http, workspace_bin, Process};

struct Cli {
    url: String,
    key_dir: PathBuf,
}

impl Cli {
    fn command(&self, key: &str) -> Command {
        let mut command = Command::new(workspace_bin("bcfl"));
        command
            .env("BCFL_URL", &self.url)
            .env_remove("BCFL_KEY")
            .arg("--key-dir")
            .arg(&self.key_dir)
            .args(["--key", key]);
        command
    }

    fn json(&self, key: &str, args: &[&str]) -> Value {
        let out = self
            .command(key)
            .arg("--json")
            .args(args)
            .output()
            .expect("running bcfl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "bcfl {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON output")
    }

    fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.key_dir.join(format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    }
}

fn serve(cli: &Cli, name: &str, port: u16, files: &[&Path], dir: &Path) -> Process {
    let mut command = cli.command(name);
    command
        .args(["node", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--store")
        .arg(dir.join(format!("store-{name}")))
        .args(["--chunk-size", "65536"]);
    for file in files {
        command.arg("--add").arg(file);
    }
    let mut process = Process::spawn(&format!("node-{name}"), command, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.log_text().contains("\"listening\"") {
        process.assert_running();
        assert!(Instant::now() < deadline, "{}", process.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    process
}

#[tokio::test]
async fn probes_reported_on_chain_route_a_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let (component_port, rest_port) = (free_port(), free_port());
    let component = format!("tcp://127.0.0.1:{component_port}");
    let url = format!("http://127.0.0.1:{rest_port}");
    let mut devnet_cmd = Command::new(workspace_bin("bcfl-devnet"));
    devnet_cmd
        .arg("--data-dir")
        .arg(dir.path().join("ledger"))
        .args(["--bind-component", &component])
        .args(["--bind-rest", &format!("127.0.0.1:{rest_port}")]);
    let mut devnet = Process::spawn("bcfl-devnet", devnet_cmd, dir.path());
    let mut tp_cmd = Command::new(workspace_bin("bcfl-tp"));
    tp_cmd.args(["--connect", &component]);
    let _tp = Process::spawn("bcfl-tp", tp_cmd, dir.path());
    wait_for_http(
        &format!("{url}/blocks"),
        &mut devnet,
        Duration::from_secs(30),
    )
    .await;

    let cli = Cli {
        url,
        key_dir: dir.path().join("keys"),
    };
    for name in ["admin", "alice", "bob"] {
        cli.json(name, &["keygen", name]);
    }
    let base = "11".repeat(32);
    cli.json(
        "admin",
        &[
            "consortium",
            "init",
            "--base-model-sha256",
            &base,
            "--min-participants",
            "2",
        ],
    );
    let ports = [free_port(), free_port()];
    for (name, port) in ["alice", "bob"].iter().zip(ports) {
        let endpoint = format!("http://127.0.0.1:{port}");
        cli.json(
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
    }
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 511) as u8).collect();
    let file = dir.path().join("update.bin");
    std::fs::write(&file, &data).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&data))
    };
    let _alice = serve(&cli, "alice", ports[0], &[&file], dir.path());
    let _bob = serve(&cli, "bob", ports[1], &[], dir.path());

    let (alice, bob) = (cli.public_key("alice"), cli.public_key("bob"));
    for (name, other) in [("alice", &bob), ("bob", &alice)] {
        let sweep = cli.json(
            name,
            &[
                "node",
                "probe",
                "--bytes",
                "500000",
                "--rtt-samples",
                "2",
                "--submit",
            ],
        );
        assert_eq!(sweep["links"].as_array().unwrap().len(), 1, "{sweep}");
        assert_eq!(&sweep["links"][0]["to"], other.as_str());
        assert!(sweep["links"][0]["bytes_per_sec"].as_u64().unwrap() > 0);
        assert_eq!(sweep["batches"].as_array().unwrap().len(), 1, "{sweep}");
    }

    // Peers and graph from the chain: the links the sweeps reported.
    let report = cli.json(
        "admin",
        &["node", "distribute", "--sha256", &sha, "--source", &alice],
    );
    let deliveries = report["measured"]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{report}");
    assert_eq!(deliveries[0]["node"], bob.as_str());
    assert!(deliveries[0]["error"].is_null(), "{report}");
    let copy = std::fs::read(dir.path().join("store-bob").join(&sha)).unwrap();
    assert_eq!(copy, data);
}
