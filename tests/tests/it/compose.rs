//! Static checks of the docker-compose files in `sawtooth-compose/` (no Docker engine runs here).
//!
//! Each file must parse as YAML, run `bcfl-tp` beside every validator pointed at that validator's
//! component endpoint, keep the Sawtooth services the network needs, and `pbft.yaml` must be what
//! `gen-pbft.py` generates.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn compose_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sawtooth-compose")
}

fn load(name: &str) -> Value {
    let path = compose_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

fn services(doc: &Value) -> &serde_yaml::Mapping {
    doc.get("services")
        .and_then(Value::as_mapping)
        .expect("a services map")
}

fn text(service: &Value, key: &str) -> String {
    service
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn devmode_network_has_validator_rest_consensus_settings_and_bcfl_tp() {
    let doc = load("devmode.yaml");
    let services = services(&doc);
    for name in [
        "validator",
        "rest-api",
        "settings-tp",
        "devmode-engine",
        "bcfl-tp",
    ] {
        assert!(
            services.contains_key(name),
            "devmode.yaml lacks service {name}"
        );
    }
    let tp = &services["bcfl-tp"];
    assert_eq!(text(tp, "image"), "bcfl:latest");
    assert!(text(tp, "entrypoint").contains("bcfl-tp -v -C tcp://validator:4004"));
    let validator = text(&services["validator"], "entrypoint");
    for needle in [
        "sawtooth.consensus.algorithm.name=Devmode",
        "--bind component:tcp://eth0:4004",
        "--bind consensus:tcp://eth0:5050",
        "sawadm genesis",
    ] {
        assert!(
            validator.contains(needle),
            "validator entrypoint lacks {needle}"
        );
    }
    assert!(text(&services["rest-api"], "entrypoint").contains("-C tcp://validator:4004"));
}

#[test]
fn pbft_network_runs_bcfl_tp_beside_every_validator() {
    let doc = load("pbft.yaml");
    let services = services(&doc);
    let validators: Vec<_> = services
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| k.starts_with("validator-"))
        .collect();
    assert_eq!(validators.len(), 5, "five validators");
    for i in 0..validators.len() {
        for prefix in ["rest-api", "settings-tp", "bcfl-tp", "pbft"] {
            let name = format!("{prefix}-{i}");
            let service = services
                .get(name.as_str())
                .unwrap_or_else(|| panic!("no {name}"));
            let depends = service
                .get("depends_on")
                .and_then(Value::as_sequence)
                .expect("depends_on");
            assert_eq!(depends[0].as_str(), Some(format!("validator-{i}").as_str()));
        }
        let tp = &services[format!("bcfl-tp-{i}").as_str()];
        assert!(text(tp, "entrypoint").ends_with(&format!("-C tcp://validator-{i}:4004")));
        let validator = text(&services[format!("validator-{i}").as_str()], "command");
        assert!(validator.contains(&format!("--endpoint tcp://validator-{i}:8800")));
        assert_eq!(validator.contains("--peers tcp://validator-0:8800"), i > 0);
    }
    let genesis = text(&services["validator-0"], "command");
    assert!(genesis.contains("sawtooth.consensus.algorithm.name=pbft"));
    assert!(
        genesis
            .matches("/pbft-shared/validators/validator-")
            .count()
            >= 5
    );
}

#[test]
fn pbft_file_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let script = compose_dir().join("gen-pbft.py");
    std::fs::copy(&script, dir.path().join("gen-pbft.py")).unwrap();
    let status = std::process::Command::new("python3")
        .arg(dir.path().join("gen-pbft.py"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let generated = std::fs::read_to_string(dir.path().join("pbft.yaml")).unwrap();
    let committed = std::fs::read_to_string(compose_dir().join("pbft.yaml")).unwrap();
    assert!(
        generated == committed,
        "pbft.yaml is stale: run sawtooth-compose/gen-pbft.py"
    );
}

#[test]
fn dockerfile_builds_the_ledger_binaries_without_libtorch() {
    let text = std::fs::read_to_string(compose_dir().join("Dockerfile")).unwrap();
    assert!(text.contains("protobuf-compiler libzmq3-dev pkg-config"));
    assert!(text.contains("-p bcfl-tp"));
    assert!(
        !text.contains("--features"),
        "the image must not need libtorch"
    );
}
