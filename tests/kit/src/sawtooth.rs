//! A real Sawtooth 1.2.6 network on loopback: [`SawtoothNetwork`] runs
//! `scripts/sawtooth-net.py` (validators, settings processors, consensus engines, REST APIs and
//! `bcfl-tp`, built from source by `scripts/sawtooth-build.sh`), and [`AnyLedger`] lets one test
//! run against devnet or the real node.
//!
//! The real components need the release archives beside the repository
//! (`../shared/sawtooth-src`, or `BCFL_SAWTOOTH_SRC`) and a Python 3.8 with a shared libpython;
//! where they are absent, [`SawtoothNetwork::available`] says why and the tests skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Binary, Ledger};

/// The consensus of a [`SawtoothNetwork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consensus {
    /// One validator with the devmode engine.
    Devmode,
    /// Several validators (4 or more) with PBFT.
    Pbft,
}

impl Consensus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Devmode => "devmode",
            Self::Pbft => "pbft",
        }
    }
}

/// A component of a node, as `scripts/sawtooth-net.py` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `sawtooth-validator`.
    Validator,
    /// The consensus engine (`devmode-engine-rust` or `pbft-engine`).
    Consensus,
    /// `sawtooth-rest-api`.
    RestApi,
    /// `bcfl-tp`.
    BcflTp,
}

impl Component {
    fn as_str(self) -> &'static str {
        match self {
            Self::Validator => "validator",
            Self::Consensus => "consensus",
            Self::RestApi => "rest-api",
            Self::BcflTp => "bcfl-tp",
        }
    }
}

fn script() -> PathBuf {
    crate::binary::workspace_root().join("scripts/sawtooth-net.py")
}

/// A real Sawtooth network started by `scripts/sawtooth-net.py up` in a folder of the test;
/// `down` stops exactly its processes when it is dropped.
#[derive(Debug)]
pub struct SawtoothNetwork {
    dir: PathBuf,
    rest_urls: Vec<String>,
    components: Vec<String>,
}

impl SawtoothNetwork {
    /// Whether the real components are built or can be: runs `scripts/sawtooth-build.sh` once
    /// per process (a second when it has built before, minutes the first time). `Err` holds why
    /// they are unavailable here (no sources, no Python 3.8); a failed build panics.
    pub fn available() -> Result<(), String> {
        static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
        AVAILABLE
            .get_or_init(|| {
                let out = Command::new("bash")
                    .arg(crate::binary::workspace_root().join("scripts/sawtooth-build.sh"))
                    .output()
                    .expect("bash runs");
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                match out.status.code() {
                    Some(0) => Ok(()),
                    Some(3) => Err(stderr.trim().to_owned()),
                    _ => panic!("scripts/sawtooth-build.sh failed:\n{stderr}"),
                }
            })
            .clone()
    }

    /// Starts a network of `nodes` validators in `dir/sawtooth` on free ports below 32768, with
    /// the debug `bcfl-tp` of this target directory, and waits until every REST API shows the
    /// genesis block and every `bcfl-tp` has registered. Panics when it cannot (call
    /// [`available`](Self::available) first).
    pub fn start(dir: &Path, consensus: Consensus, nodes: usize) -> Self {
        // One start at a time: each picks a free block of ports, and genesis is CPU-heavy.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        let dir = dir.join("sawtooth");
        let mut last = String::new();
        for _attempt in 0..3 {
            let out = Command::new("python3")
                .arg(script())
                .args(["up", "--json", "--base-port", "auto"])
                .args(["--consensus", consensus.as_str()])
                .args(["--nodes", &nodes.to_string()])
                .arg("--dir")
                .arg(&dir)
                .arg("--bcfl-tp")
                .arg(Binary::BcflTp.path())
                .output()
                .expect("python3 runs");
            if out.status.success() {
                let description: Value =
                    serde_json::from_slice(&out.stdout).expect("`up --json` prints JSON");
                let strings = |key: &str| -> Vec<String> {
                    description[key]
                        .as_array()
                        .expect("a list")
                        .iter()
                        .map(|v| v.as_str().expect("a string").to_owned())
                        .collect()
                };
                return Self {
                    rest_urls: strings("rest_urls"),
                    components: strings("components"),
                    dir,
                };
            }
            // A port taken between the check and the bind: try another block.
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("scripts/sawtooth-net.py up failed three times:\n{last}");
    }

    /// Node `i`'s REST API, `http://127.0.0.1:PORT`.
    pub fn url(&self, node: usize) -> &str {
        &self.rest_urls[node]
    }

    /// Every node's REST API, in node order.
    pub fn urls(&self) -> &[String] {
        &self.rest_urls
    }

    /// Node `i`'s component endpoint, `tcp://127.0.0.1:PORT`.
    pub fn component(&self, node: usize) -> &str {
        &self.components[node]
    }

    /// The network's folder (`network.json`, one `node-I` folder per node with its logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(script())
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "sawtooth-net.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills node `i`'s component with SIGKILL.
    pub fn kill(&self, node: usize, component: Component) {
        self.run(&[
            "kill",
            "--node",
            &node.to_string(),
            "--component",
            component.as_str(),
            "--signal",
            "KILL",
        ]);
    }

    /// Starts every component of node `i` that is not running, the validator first, with the
    /// same command lines (a consensus engine exits when its validator dies).
    pub fn restart_node(&self, node: usize) {
        self.run(&["start", "--node", &node.to_string()]);
    }

    /// Starts node `i`'s component again, with the same command line.
    pub fn restart(&self, node: usize, component: Component) {
        self.run(&[
            "start",
            "--node",
            &node.to_string(),
            "--component",
            component.as_str(),
        ]);
    }

    /// `status --json`: each node's processes and chain head.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.run(&["status", "--json"])).expect("`status --json` is JSON")
    }

    /// Each node's chain head as `(block_num, block_id)`, `None` where its REST API does not
    /// answer.
    pub fn heads(&self) -> Vec<Option<(u64, String)>> {
        self.status()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| {
                let head = &node["head"];
                Some((
                    head["block_num"].as_u64()?,
                    head["block_id"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    /// Waits until every node reports the same head at or above `min_block`; returns it.
    pub fn wait_converged(&self, min_block: u64, timeout: Duration) -> (u64, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let heads = self.heads();
            if let Some(Some(first)) = heads.first() {
                if first.0 >= min_block && heads.iter().all(|h| h.as_ref() == Some(first)) {
                    return first.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the nodes did not converge within {timeout:?}: {heads:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The last `bytes` of node `i`'s component log, for failure messages.
    pub fn log_tail(&self, node: usize, component: Component, bytes: usize) -> String {
        let path = self
            .dir
            .join(format!("node-{node}/logs/{}.log", component.as_str()));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text[text.len().saturating_sub(bytes)..].to_owned()
    }
}

impl Drop for SawtoothNetwork {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(script())
            .arg("down")
            .arg("--dir")
            .arg(&self.dir)
            .status();
    }
}

/// Which ledger a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// `bcfl-devnet` with `bcfl-tp` ([`Ledger`]).
    Devnet,
    /// A real Sawtooth 1.2.6 validator with devmode consensus ([`SawtoothNetwork`]).
    Sawtooth,
}

/// A ledger of either kind, with `bcfl-tp` registered; stopped when dropped.
#[derive(Debug)]
pub enum AnyLedger {
    /// Devnet (boxed: it is the larger of the two).
    Devnet(Box<Ledger>),
    /// A real node.
    Sawtooth(SawtoothNetwork),
}

impl AnyLedger {
    /// Starts a ledger of `kind` in `dir`; `None` (with the reason printed) when the real node
    /// is unavailable here, so the test can return early.
    pub fn start(kind: LedgerKind, dir: &Path) -> Option<Self> {
        match kind {
            LedgerKind::Devnet => Some(Self::Devnet(Box::new(Ledger::start(dir)))),
            LedgerKind::Sawtooth => match SawtoothNetwork::available() {
                Ok(()) => Some(Self::Sawtooth(SawtoothNetwork::start(
                    dir,
                    Consensus::Devmode,
                    1,
                ))),
                Err(why) => {
                    eprintln!("skipped: the real Sawtooth node is unavailable here: {why}");
                    None
                }
            },
        }
    }

    /// The REST API's base URL.
    pub fn url(&self) -> &str {
        match self {
            Self::Devnet(ledger) => ledger.url(),
            Self::Sawtooth(network) => network.url(0),
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> LedgerKind {
        match self {
            Self::Devnet(_) => LedgerKind::Devnet,
            Self::Sawtooth(_) => LedgerKind::Sawtooth,
        }
    }
}

/// Runs each named test function (`fn name(kind: LedgerKind)`) against both ledgers: writes the
/// test `name::on_devnet` and `name::on_sawtooth` for each.
///
/// ```text
/// fn a_round_end_to_end(kind: LedgerKind) {
///     let dir = tempfile::tempdir().unwrap();
///     let Some(ledger) = AnyLedger::start(kind, dir.path()) else { return };
///     ...
/// }
/// bcfl_testkit::on_each_ledger!(a_round_end_to_end);
/// ```
#[macro_export]
macro_rules! on_each_ledger {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn on_devnet() {
                    super::$name($crate::LedgerKind::Devnet);
                }

                #[test]
                fn on_sawtooth() {
                    super::$name($crate::LedgerKind::Sawtooth);
                }
            }
        )+
    };
}
