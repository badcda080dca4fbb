//! The federated demo on a real network: four Sawtooth 1.2.6 validators with PBFT on loopback
//! (`scripts/sawtooth-net.py`), `bcfl-tp` beside each, and the demo's member processes each
//! talking to a different validator's REST API. One validator is killed with SIGKILL after the
//! first round and started again; the run must finish, every validator must end on the same
//! head and serve the same family state, and the restarted node's `bcfl-tp` must have
//! reconnected. Skipped where the Sawtooth sources are absent (`scripts/sawtooth-build.sh`).
#![cfg(feature = "train")]

use std::time::Duration;

use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::BcflReader;
use bcfl_testkit::{Component, Consensus, SawtoothNetwork, Spawned};

use crate::demo_devnet::tiny_demo;

#[test]
fn the_demo_runs_across_pbft_validators_and_a_killed_validator_catches_up() {
    if let Err(why) = SawtoothNetwork::available() {
        eprintln!("skipped: the real Sawtooth components are unavailable here: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let network = SawtoothNetwork::start(dir.path(), Consensus::Pbft, 4);
    let (mut command, work) = tiny_demo(network.url(0), dir.path(), 60);
    command
        .args(["--members", "4", "--rounds", "3", "--local-epochs", "2"])
        .args(["--lr", "3e-2", "--batch-size", "8", "--max-len", "16"])
        .args(["--probe-bytes", "65536"])
        // A batch may wait out a view change or two on two loaded cores (PBFT's idle timeout
        // is 5 s here): 200 s instead of 120 before a transaction counts as lost.
        .args(["--wait-timeout", "200"]);
    for url in network.urls() {
        command.args(["--ledger", url]);
    }
    let mut demo = Spawned::start("demo", command, dir.path());

    // After the first round, node 3's validator dies (its PBFT engine exits with it). If the
    // demo never gets there, every node's consensus engine and validator say why.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !demo.output().contains("round 1 (") {
        if !demo.is_running() || std::time::Instant::now() >= deadline {
            let logs: String = (0..4)
                .flat_map(|node| {
                    [Component::Consensus, Component::Validator].map(|component| {
                        format!(
                            "--- node {node}'s {component:?}:\n{}\n",
                            network.log_tail(node, component, 2000)
                        )
                    })
                })
                .collect();
            panic!(
                "the demo did not reach round 1:\n{}\n{logs}",
                demo.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    network.kill(3, Component::Validator);
    std::thread::sleep(Duration::from_secs(3));
    network.restart_node(3);

    let status = demo.wait(Duration::from_secs(300));
    assert!(
        status.is_some_and(|s| s.success()),
        "bcfl demo did not finish ({status:?}):\n{}\nnode 3's validator:\n{}",
        demo.log_text(),
        network.log_tail(3, Component::Validator, 3000)
    );
    assert!(demo.output().contains("round 3 ("), "{}", demo.output());

    // Each member's node started with its own validator, the others as fallbacks.
    for i in 1..=4usize {
        let config = std::fs::read_to_string(work.join(format!("nodes/member-{i}.toml"))).unwrap();
        let first = config
            .lines()
            .find(|l| l.starts_with("ledger"))
            .expect("a ledger line");
        assert!(
            first.contains(&format!("[\"{}\"", network.url((i - 1) % 4))),
            "member-{i}: {first}"
        );
    }

    // Every validator on the same head, the restarted one included, with the same state.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (height, head) = network.wait_converged(10, Duration::from_secs(120));
    let states: Vec<_> = network
        .urls()
        .iter()
        .map(|url| {
            let client = RestClient::new(url).unwrap();
            runtime
                .block_on(client.state_list(bcfl_processor::NAMESPACE, Some(&head)))
                .unwrap()
        })
        .collect();
    assert!(!states[0].entries.is_empty());
    for (i, state) in states.iter().enumerate() {
        assert_eq!(
            state.entries, states[0].entries,
            "node {i}'s family state at block {height}"
        );
    }
    let family = runtime
        .block_on(BcflReader::new(RestClient::new(network.url(3)).unwrap()).family_state(None))
        .unwrap();
    assert_eq!(family.consortium.unwrap().current_round, 3);
    assert_eq!(family.aggregates.len(), 3);

    // Node 3's bcfl-tp lived through its validator's death and registered again (its log may
    // trail the chain by a moment: read it until it says so, for up to 30 s).
    let reregistered =
        |log: &str| log.contains("reconnecting") && log.matches("registered").count() >= 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut tp_log = network.log_tail(3, Component::BcflTp, 1 << 20);
    while !reregistered(&tp_log) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        tp_log = network.log_tail(3, Component::BcflTp, 1 << 20);
    }
    assert!(tp_log.contains("reconnecting"), "{tp_log}");
    assert!(tp_log.matches("registered").count() >= 2, "{tp_log}");
}
