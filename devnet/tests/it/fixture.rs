//! What devnet's integration tests share: signed batches of the fixture family, the fixture
//! processor, the embedded ledger and a tiny HTTP client. Everything runs on loopback with free
//! ports; the `bcfl-devnet` binary itself is `bcfl_testkit::Devnet`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bcfl_devnet::ledger::{Devnet, DevnetConfig};
use bcfl_devnet::view::{BatchStatus, BatchStatusKind, LedgerView};
use bcfl_testkit::ChildGuard;
use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::batch::{Batch, BatchHeader};
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use sawtooth_sdk::signing::secp256k1::Secp256k1PrivateKey;
use sawtooth_sdk::signing::{create_context, CryptoFactory};
use sha2::{Digest, Sha512};

/// The fixture processor's namespace used by tests.
pub const NS: &str = "f1f1f1";

/// A 70-hex address in the test namespace.
pub fn addr(n: u32) -> String {
    format!("{NS}{n:064x}")
}

/// Signs transactions and batches with one key.
pub struct Signer {
    private_hex: String,
    public_hex: String,
}

impl Default for Signer {
    fn default() -> Self {
        Self::new()
    }
}

impl Signer {
    /// A fresh random key.
    pub fn new() -> Self {
        let ctx = create_context("secp256k1").unwrap();
        let key = ctx.new_random_private_key().unwrap();
        let public_hex = ctx.get_public_key(&*key).unwrap().as_hex();
        Self {
            private_hex: key.as_hex(),
            public_hex,
        }
    }

    fn sign(&self, bytes: &[u8]) -> String {
        let ctx = create_context("secp256k1").unwrap();
        let key = Secp256k1PrivateKey::from_hex(&self.private_hex).unwrap();
        CryptoFactory::new(&*ctx)
            .new_signer(&key)
            .sign(bytes)
            .unwrap()
    }

    /// A fixture-family transaction running `script`, with the whole namespace as inputs and
    /// outputs unless given.
    pub fn txn(
        &self,
        script: &str,
        io: Option<(&[&str], &[&str])>,
        deps: &[String],
    ) -> Transaction {
        self.family_txn("fixture", "1.0", script, io, deps)
    }

    /// Like [`Signer::txn`], of another family or version.
    pub fn family_txn(
        &self,
        family: &str,
        version: &str,
        script: &str,
        io: Option<(&[&str], &[&str])>,
        deps: &[String],
    ) -> Transaction {
        let mut h = TransactionHeader::new();
        h.set_family_name(family.into());
        h.set_family_version(version.into());
        h.set_batcher_public_key(self.public_hex.clone());
        h.set_signer_public_key(self.public_hex.clone());
        h.set_payload_sha512(hex::encode(Sha512::digest(script.as_bytes())));
        h.set_nonce(format!("{:x}", rand::random::<u64>()));
        let (inputs, outputs) = io.unwrap_or((&[NS], &[NS]));
        h.set_inputs(inputs.iter().map(|s| s.to_string()).collect());
        h.set_outputs(outputs.iter().map(|s| s.to_string()).collect());
        h.set_dependencies(RepeatedField::from_vec(deps.to_vec()));
        let hb = h.write_to_bytes().unwrap();
        let mut t = Transaction::new();
        t.set_header_signature(self.sign(&hb));
        t.set_header(hb);
        t.set_payload(script.as_bytes().to_vec());
        t
    }

    /// A batch of these transactions.
    pub fn batch(&self, txns: Vec<Transaction>) -> Batch {
        let mut bh = BatchHeader::new();
        bh.set_signer_public_key(self.public_hex.clone());
        bh.set_transaction_ids(
            txns.iter()
                .map(|t| t.get_header_signature().to_string())
                .collect(),
        );
        let hb = bh.write_to_bytes().unwrap();
        let mut b = Batch::new();
        b.set_header_signature(self.sign(&hb));
        b.set_header(hb);
        b.set_transactions(RepeatedField::from_vec(txns));
        b
    }

    /// A one-transaction batch running `script`.
    pub fn script(&self, script: &str) -> Batch {
        self.batch(vec![self.txn(script, None, &[])])
    }
}

/// Starts the fixture processor in `mode` against `endpoint`; its stdout is piped.
pub fn fixture_tp(endpoint: &str, mode: &str) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_bcfl-devnet-fixture-tp"))
        .args(["-C", endpoint, "--mode", mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the fixture processor");
    ChildGuard::new(child)
}

/// An embedded devnet on a free component port.
pub fn embedded(dir: &Path, tweak: impl FnOnce(&mut DevnetConfig)) -> Devnet {
    let mut config = DevnetConfig {
        data_dir: dir.to_path_buf(),
        component_endpoint: "tcp://127.0.0.1:0".into(),
        block_interval: Duration::from_millis(10),
        ..DevnetConfig::default()
    };
    tweak(&mut config);
    if std::env::var_os("DEVNET_TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
    Devnet::start(config).expect("starting devnet")
}

/// Polls until `id` has status `want` (panics after `timeout`).
pub fn wait_status(
    ledger: &Arc<dyn LedgerView>,
    id: &str,
    want: BatchStatusKind,
    timeout: Duration,
) -> BatchStatus {
    let start = Instant::now();
    loop {
        let status = ledger.batch_statuses(&[id.to_string()]).remove(0);
        if status.status == want {
            return status;
        }
        assert!(
            start.elapsed() < timeout,
            "batch {id} is {:?}, wanted {want:?}",
            status
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A minimal HTTP/1.1 request; returns the status code and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    Ok((code, raw[split + 4..].to_vec()))
}
