//! Third-party Sawtooth code against bcfl, unchanged: the official Sawtooth Python SDK.
//!
//! The kit in `tests/python/` holds an intkey transaction processor written with
//! `sawtooth_sdk.processor` (`intkey_tp.py`) and a client that builds and signs intkey batches with
//! `sawtooth_signing` and the SDK's protobuf messages (`submit.py`). They run in a Python 3.8 venv
//! that `tests/python/setup-venv.sh` creates; on a machine without Python 3.8 these tests print why
//! and pass without checking anything (CI has it: `scripts/test.sh` creates the venv first).
//!
//! - `python_batches_verify_with_bcfl_signing`: batches signed in Python decode and verify with
//!   `bcfl-client`'s protocol code, and our signer reproduces Python's keys and signatures byte for
//!   byte (both use RFC 6979 deterministic ECDSA).
//! - `python_intkey_processor_on_devnet`: `bcfl-devnet` serves the Python processor like a
//!   Sawtooth 1.2 validator: registration, state get/set over ZMQ, COMMITTED batches whose state is
//!   readable over REST, and an INVALID batch carrying the processor's own message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_ledger::protocol::BatchList;
use bcfl_testkit::{Devnet, Spawned};
use serde_json::Value;
use sha2::{Digest, Sha512};

/// The exit status of `setup-venv.sh` when this machine has no Python 3.8.
const PY38_UNAVAILABLE: i32 = 3;
const PRIVATE_KEY: &str = "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088";

fn kit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The Python 3.8 interpreter of the kit's venv, creating the venv if needed (once per test
/// binary); `None` (after printing why) when this machine cannot have one.
fn kit_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON.get_or_init(create_kit_venv).clone()
}

fn create_kit_venv() -> Option<PathBuf> {
    let script = kit_dir().join("setup-venv.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {
            let python = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            assert!(python.is_file(), "setup-venv.sh named {}", python.display());
            Some(python)
        }
        Some(PY38_UNAVAILABLE) => {
            eprintln!("SKIPPED: the Sawtooth Python kit cannot run here: {stderr}");
            None
        }
        _ => panic!("{} failed ({}):\n{stderr}", script.display(), output.status),
    }
}

/// Runs `submit.py` with `args` and returns its JSON report.
fn submit(python: &Path, args: &[&str]) -> Value {
    let output = Command::new(python)
        .arg(kit_dir().join("submit.py"))
        .args(args)
        .output()
        .expect("running submit.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "submit.py {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("submit.py printed {stdout:?}: {e}"))
}

/// intkey's address for `name` (spec section 3), computed independently of the Python code.
fn intkey_address(name: &str) -> String {
    let namespace = hex::encode(Sha512::digest(b"intkey"));
    let name_hash = hex::encode(Sha512::digest(name.as_bytes()));
    format!("{}{}", &namespace[..6], &name_hash[64..])
}

/// The CBOR encoding of the intkey state map `{name: value}` (one text key, one unsigned value).
fn intkey_state(name: &str, value: u32) -> Vec<u8> {
    fn head(major: u8, n: u64, out: &mut Vec<u8>) {
        let major = major << 5;
        match n {
            0..=23 => out.push(major | n as u8),
            24..=0xff => out.extend([major | 24, n as u8]),
            0x100..=0xffff => {
                out.push(major | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(major | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }
    let mut out = Vec::new();
    head(5, 1, &mut out);
    head(3, name.len() as u64, &mut out);
    out.extend(name.as_bytes());
    head(0, u64::from(value), &mut out);
    out
}

#[test]
fn intkey_state_encoding_matches_known_cbor() {
    // {"foo": 10} and {"counter": 300} as Python's cbor2 encodes them.
    assert_eq!(hex::encode(intkey_state("foo", 10)), "a163666f6f0a");
    assert_eq!(
        hex::encode(intkey_state("counter", 300)),
        "a167636f756e74657219012c"
    );
    assert_eq!(
        intkey_address("foo"),
        "1cf1266e282c41be5e4254d8820772c5518a2c5a8c0c7f7eda19594a7eb539453e1ed7"
    );
}

#[test]
fn python_batches_verify_with_bcfl_signing() {
    let Some(python) = kit_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("batches.bin");
    let report = submit(
        &python,
        &[
            "--out",
            out.to_str().unwrap(),
            "--private-key",
            PRIVATE_KEY,
            "--separate",
            "set:alpha:1",
            "inc:alpha:2",
        ],
    );

    let list = BatchList::from_bytes(&std::fs::read(&out).unwrap()).expect("a BatchList");
    let signer = Signer::new(PrivateKey::from_hex(PRIVATE_KEY).unwrap());
    assert_eq!(report["signer_public_key"], signer.public_key().as_hex());
    let batch_ids: Vec<&str> = list.batches().iter().map(|b| b.id()).collect();
    assert_eq!(report["batch_ids"], serde_json::json!(batch_ids));
    assert_eq!(list.batches().len(), 2);
    for (batch, expected) in list
        .batches()
        .iter()
        .zip(report["transactions"].as_array().unwrap())
    {
        assert!(batch.verify(), "batch {} does not verify", batch.id());
        assert_eq!(batch.id(), signer.sign(batch.header_bytes()));
        let [txn] = batch.transactions() else {
            panic!("one transaction per batch")
        };
        assert_eq!(txn.id(), expected["id"].as_str().unwrap());
        assert_eq!(txn.id(), signer.sign(txn.header_bytes()));
        let address = intkey_address(expected["name"].as_str().unwrap());
        assert_eq!(expected["address"], address.as_str());
        assert_eq!(txn.header().inputs(), std::slice::from_ref(&address));
        assert_eq!(txn.header().outputs(), std::slice::from_ref(&address));
        assert_eq!(txn.header().family_name(), "intkey");
        assert_eq!(txn.header().family_version(), "1.0");
    }

    // One flipped bit in a signed header must fail verification.
    let mut tampered = std::fs::read(&out).unwrap();
    let header_start = tampered
        .windows(6)
        .position(|w| w == b"intkey")
        .expect("the family name inside a header");
    tampered[header_start] ^= 0x01;
    let list = BatchList::from_bytes(&tampered).expect("still a decodable BatchList");
    assert!(!list.batches().iter().all(|b| b.verify()));
}

#[tokio::test]
async fn python_intkey_processor_on_devnet() {
    let Some(python) = kit_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // On free ports, its REST API listening.
    let mut devnet = Devnet::start(dir.path(), &[]);
    let rest = devnet.rest_url().to_owned();

    let mut tp_cmd = Command::new(&python);
    tp_cmd
        .arg(kit_dir().join("intkey_tp.py"))
        .args(["--connect", devnet.component()]);
    let mut tp = Spawned::start("intkey_tp.py", tp_cmd, dir.path());

    let logs = |devnet: &Devnet, tp: &Spawned| format!("{}\n{}", devnet.log_text(), tp.log_text());
    let name = "compat";
    let (set, inc, dec) = (
        format!("set:{name}:10"),
        format!("inc:{name}:5"),
        format!("dec:{name}:100"),
    );
    let committed = submit(&python, &["--url", &rest, &set, &inc]);
    tp.assert_running();
    assert_eq!(
        committed["statuses"][0]["status"],
        "COMMITTED",
        "{committed:#}\n{}",
        logs(&devnet, &tp)
    );
    assert_eq!(
        committed["statuses"][0]["invalid_transactions"],
        serde_json::json!([])
    );

    let client = reqwest::Client::new();
    let address = intkey_address(name);
    let read_state = || async {
        let body: Value = client
            .get(format!("{rest}/state/{address}"))
            .send()
            .await
            .expect("GET /state/{address}")
            .error_for_status()
            .expect("state at the intkey address")
            .json()
            .await
            .expect("a JSON body");
        base64::engine::general_purpose::STANDARD
            .decode(body["data"].as_str().expect("base64 data"))
            .expect("valid base64")
    };
    assert_eq!(read_state().await, intkey_state(name, 15));

    let invalid = submit(&python, &["--url", &rest, &dec]);
    let status = &invalid["statuses"][0];
    assert_eq!(
        status["status"],
        "INVALID",
        "{invalid:#}\n{}",
        logs(&devnet, &tp)
    );
    assert_eq!(
        status["invalid_transactions"][0]["id"],
        invalid["transactions"][0]["id"]
    );
    assert_eq!(
        status["invalid_transactions"][0]["message"],
        "Verb is \"dec\", but result would be less than 0"
    );
    assert_eq!(
        read_state().await,
        intkey_state(name, 15),
        "an invalid batch changed state"
    );
    tp.assert_running();
    devnet.process().assert_running();
}
