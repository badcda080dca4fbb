//! The peer network with the ledger, on loopback (no namespaces needed): two members run
//! `bcfl node serve` at their registered endpoints, each probes the other and reports the sweep
//! on chain (`bcfl node probe --submit`, one `ReportBandwidth`), and `bcfl node distribute`
//! then takes both the peers and the graph from the chain and delivers a verified blob.
//!
//! The ledger, the members' keys and their registration come from `bcfl-testkit`.

use std::path::Path;
use std::time::Duration;

use bcfl_testkit::{free_port, Cli, ConsortiumSetup, Ledger, Spawned};

/// `bcfl node serve` of member `name` on `port`, holding `files`; waits until it listens.
fn serve(cli: &Cli, name: &str, port: u16, files: &[&Path], dir: &Path) -> Spawned {
    let mut command = cli.command(name);
    command
        .args(["node", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--store")
        .arg(dir.join(format!("store-{name}")))
        .args(["--chunk-size", "65536"]);
    for file in files {
        command.arg("--add").arg(file);
    }
    let mut process = Spawned::start(&format!("node-{name}"), command, dir);
    process.wait_for_line("\"listening\"", Duration::from_secs(10));
    process
}

#[test]
fn probes_reported_on_chain_route_a_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    let ports = [free_port(), free_port()];
    let endpoint = |port: u16| format!("http://127.0.0.1:{port}");
    ConsortiumSetup::new()
        .with_init_args(&["--min-participants", "2"])
        .with_member("alice", &endpoint(ports[0]))
        .with_member("bob", &endpoint(ports[1]))
        .run(&cli);
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
        let sweep = cli.json_last_line(
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
    let report = cli.json_last_line(
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
