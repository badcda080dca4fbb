//! The docker-compose files in `sawtooth-compose/` against the network that runs natively (no
//! Docker engine runs here).
//!
//! Both come from one description, `scripts/sawtooth-net.py`: `compose` writes the files and
//! `plan` prints what `up` runs. The tests check that the committed files are what the script
//! writes, and that every container runs the native command line and genesis script with only the
//! addresses and folders changed: the same settings, flags, peers, families and processors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use serde_yaml::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn net(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(repository().join("scripts/sawtooth-net.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "sawtooth-net.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn load(name: &str) -> Value {
    let path = repository().join("sawtooth-compose").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

fn argv(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .expect("a command as a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_compose_files_are_what_the_description_writes() {
    let dir = tempfile::tempdir().unwrap();
    net(&["compose", "--out", dir.path().to_str().unwrap()]);
    for name in ["devmode.yaml", "pbft.yaml"] {
        let generated = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let committed =
            std::fs::read_to_string(repository().join("sawtooth-compose").join(name)).unwrap();
        assert!(
            generated == committed,
            "sawtooth-compose/{name} is stale: run scripts/sawtooth-net.py compose"
        );
    }
}

/// Replaces a native node's addresses and folders with the containers' names for them.
fn containerize(text: &str, plan: &Json) -> String {
    let mut text = text.to_owned();
    let dir = plan["dir"].as_str().unwrap();
    for (i, node) in plan["nodes"].as_array().unwrap().iter().enumerate() {
        let ports: Vec<u64> = node["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect();
        let [component, network, consensus, rest] = ports[..] else {
            panic!("four ports")
        };
        for (port, container) in [(component, 4004), (network, 8800), (consensus, 5050)] {
            text = text.replace(
                &format!("tcp://127.0.0.1:{port}"),
                &format!("tcp://validator-{i}:{container}"),
            );
        }
        text = text.replace(&format!("127.0.0.1:{rest}"), &format!("rest-api-{i}:8008"));
        text = text.replace(node["home"].as_str().unwrap(), "/var/sawtooth");
    }
    text.replace(&format!("{dir}/shared"), "/shared")
}

fn check_network(file: &str, consensus: &str, nodes: usize) {
    let doc = load(file);
    let services = doc["services"].as_mapping().expect("services");
    let plan: Json = serde_json::from_str(&net(&[
        "plan",
        "--consensus",
        consensus,
        "--nodes",
        &nodes.to_string(),
        "--dir",
        "/native",
        "--base-port",
        "14000",
    ]))
    .unwrap();
    let engine = if consensus == "pbft" {
        "pbft"
    } else {
        "devmode-engine"
    };
    for (i, node) in plan["nodes"].as_array().unwrap().iter().enumerate() {
        let native = |component: &str| -> Vec<String> {
            argv(&serde_yaml::to_value(&node["argv"][component]).unwrap())
                .iter()
                .map(|a| containerize(a, &plan))
                .collect()
        };
        // The validator container: the native genesis script, then the native command line
        // (the validator binds eth0, the container's interface, instead of 127.0.0.1).
        let command = argv(&services[format!("validator-{i}").as_str()]["command"]);
        assert_eq!(command[..2], ["bash", "-c"]);
        let script = command[2].replace("$$", "$");
        let genesis = containerize(node["genesis"].as_str().unwrap(), &plan);
        assert!(
            script.starts_with(&genesis),
            "validator-{i}'s genesis differs from the native one:\n{script}\n---\n{genesis}"
        );
        // Its sockets bind the container's interface; the endpoint it advertises is its name.
        let mut expected = vec!["exec".to_owned()];
        expected.extend(native("validator").into_iter().map(|a| {
            if a.contains(':') && !a.starts_with("tcp://") {
                a.replace(&format!("tcp://validator-{i}:"), "tcp://eth0:")
            } else {
                a
            }
        }));
        let exec_args: Vec<&str> = script[genesis.len()..].split_whitespace().collect();
        assert_eq!(exec_args, expected, "validator-{i}");
        for (service, component) in [
            (format!("settings-tp-{i}"), "settings-tp"),
            (format!("{engine}-{i}"), "consensus"),
            (format!("rest-api-{i}"), "rest-api"),
            (format!("bcfl-tp-{i}"), "bcfl-tp"),
        ] {
            let entry = services
                .get(service.as_str())
                .unwrap_or_else(|| panic!("{file} lacks {service}"));
            assert_eq!(argv(&entry["entrypoint"]), native(component), "{service}");
            assert_eq!(
                argv(&entry["depends_on"])[0],
                format!("validator-{i}"),
                "{service}"
            );
        }
        assert_eq!(
            services[format!("bcfl-tp-{i}").as_str()]["image"].as_str(),
            Some("bcfl:latest")
        );
    }
    // Genesis allows the settings family and bcfl, nothing else.
    let genesis = plan["nodes"][0]["genesis"].as_str().unwrap();
    let families = genesis
        .split('\'')
        .find_map(|part| part.strip_prefix("sawtooth.validator.transaction_families="))
        .expect("the transaction_families setting");
    let families: Vec<BTreeMap<String, String>> = serde_json::from_str(families).unwrap();
    let names: Vec<&str> = families.iter().map(|f| f["family"].as_str()).collect();
    assert_eq!(names, ["sawtooth_settings", "bcfl"]);
    assert!(genesis.contains(&format!(
        "sawtooth.consensus.algorithm.name={}",
        if consensus == "pbft" {
            "pbft"
        } else {
            "Devmode"
        }
    )));
}

#[test]
fn the_devmode_file_runs_what_runs_natively() {
    check_network("devmode.yaml", "devmode", 1);
}

#[test]
fn the_pbft_file_runs_what_runs_natively_in_a_full_mesh() {
    check_network("pbft.yaml", "pbft", 4);
    let plan: Json = serde_json::from_str(&net(&["plan", "--nodes", "4"])).unwrap();
    for (i, node) in plan["nodes"].as_array().unwrap().iter().enumerate() {
        let args = node["argv"]["validator"].as_array().unwrap();
        let peers: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--peers")
            .map(|w| w[1].as_str().unwrap())
            .collect();
        let others: Vec<String> = (0..4)
            .filter(|&j| j != i)
            .map(|j| format!("tcp://127.0.0.1:{}", 14001 + 10 * j))
            .collect();
        assert_eq!(peers, others, "node {i} peers with every other validator");
    }
    let genesis = plan["nodes"][0]["genesis"].as_str().unwrap();
    assert!(genesis.contains("sawtooth.consensus.pbft.members=[$members]"));
    assert!(
        genesis.contains("for i in $(seq 0 3)"),
        "waits for every key"
    );
}

#[test]
fn the_demo_profile_runs_each_member_in_its_own_container() {
    let doc = load("pbft.yaml");
    let services = doc["services"].as_mapping().expect("services");
    let prepare = argv(&services["demo-prepare"]["entrypoint"]);
    assert!(prepare.contains(&"--prepare-only".to_owned()));
    assert!(prepare.windows(2).any(|w| w == ["--rounds", "3"]));
    assert!(prepare
        .windows(2)
        .any(|w| w == ["--member-host", "member-{i}"]));
    let ledgers: Vec<&String> = prepare
        .windows(2)
        .filter(|w| w[0] == "--ledger")
        .map(|w| &w[1])
        .collect();
    assert_eq!(ledgers.len(), 4, "members spread over the four REST APIs");
    for name in [
        "member-1",
        "member-2",
        "member-3",
        "member-4",
        "coordinator",
    ] {
        let service = &services[name];
        assert_eq!(service["image"].as_str(), Some("bcfl-member:latest"));
        let mut expected = vec![
            "bcfl".to_owned(),
            "-v".into(),
            "node".into(),
            "run".into(),
            "--config".into(),
            format!("/shared/demo/nodes/{name}.toml"),
        ];
        if name != "coordinator" {
            expected.extend(["--until-round".into(), "3".into()]);
        }
        assert_eq!(argv(&service["entrypoint"]), expected, "{name}");
    }
}

#[test]
fn the_dockerfile_builds_the_ledger_image_without_libtorch_and_a_member_image_with_it() {
    let text = std::fs::read_to_string(repository().join("sawtooth-compose/Dockerfile")).unwrap();
    let ledger = &text[..text.find("AS build-member").expect("a member build stage")];
    assert!(ledger.contains("protobuf-compiler libzmq3-dev pkg-config"));
    assert!(ledger.contains("-p bcfl-tp"));
    assert!(
        !ledger.contains("--features"),
        "the ledger image must not need libtorch"
    );
    let member = &text[text.find("AS build-member").unwrap()..];
    assert!(member.contains("scripts/setup.sh"));
    assert!(member.contains("--features bcfl-client/train"));
    assert!(text.contains("AS ledger") && text.contains("AS member"));
}
