//! [`Cli`]: the `bcfl` binary run against one ledger with one key directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use tempfile::TempDir;

use crate::Binary;

/// Runs `bcfl --url URL --key-dir DIR --key KEY ARGS...` and checks what comes back.
///
/// `BCFL_URL`, `BCFL_KEY` and `BCFL_KEY_DIR` from the test's environment are ignored. Clones
/// share the key directory.
///
/// ```no_run
/// use bcfl_testkit::Cli;
///
/// let cli = Cli::with_temp_key_dir("http://127.0.0.1:8008");
/// cli.ok("admin", &["keygen", "admin"]);
/// let rounds = cli.json("admin", &["audit", "rounds"]);
/// let denied = cli.exits_with("admin", &["audit", "verdict", "7"], 2);
/// assert!(!denied.stderr.is_empty());
/// # let _ = rounds;
/// ```
#[derive(Debug, Clone)]
pub struct Cli {
    url: String,
    key_dir: PathBuf,
    /// A CA certificate every run trusts (`--ca-cert`), for an `https://` ledger.
    ca_cert: Option<PathBuf>,
    /// Deleted with the last clone, when the key directory is a temporary one.
    _temp: Option<Arc<TempDir>>,
}

impl Cli {
    /// `bcfl` against the REST API at `url`, with the named keys in `key_dir`.
    pub fn new(url: &str, key_dir: impl Into<PathBuf>) -> Self {
        Self {
            url: url.to_owned(),
            key_dir: key_dir.into(),
            ca_cert: None,
            _temp: None,
        }
    }

    /// The same, trusting the CA certificate `ca` (`--ca-cert`) in every run.
    pub fn with_ca_cert(mut self, ca: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(ca.into());
        self
    }

    /// `bcfl` against the REST API at `url`, with the named keys in a new temporary directory
    /// that is deleted when the last clone of this `Cli` is dropped.
    pub fn with_temp_key_dir(url: &str) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("bcfl-keys-")
            .tempdir()
            .expect("a temporary key directory");
        Self {
            url: url.to_owned(),
            key_dir: temp.path().to_path_buf(),
            ca_cert: None,
            _temp: Some(Arc::new(temp)),
        }
    }

    /// The REST API's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key directory.
    pub fn key_dir(&self) -> &Path {
        &self.key_dir
    }

    /// `bcfl --url URL --key-dir DIR --key KEY`, to add arguments to and run or spawn (for
    /// example as a [`Spawned`](crate::Spawned) node).
    pub fn command(&self, key: &str) -> Command {
        let mut command = Command::new(Binary::Bcfl.path());
        command
            .env_remove("BCFL_URL")
            .env_remove("BCFL_KEY")
            .env_remove("BCFL_KEY_DIR")
            .env_remove("BCFL_CA_CERT")
            .args(["--url", &self.url])
            .arg("--key-dir")
            .arg(&self.key_dir)
            .args(["--key", key]);
        if let Some(ca) = &self.ca_cert {
            command.arg("--ca-cert").arg(ca);
        }
        command
    }

    /// Runs `bcfl` signing with `key` and returns what it did, whatever its exit status.
    pub fn run(&self, key: &str, args: &[&str]) -> Output {
        self.command(key)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running bcfl {args:?}: {e}"))
    }

    /// Runs `bcfl`, panics (with its output) unless it succeeds, and returns its stdout.
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

    /// Runs `bcfl --json`, expects success, and parses its stdout as one JSON document.
    pub fn json(&self, key: &str, args: &[&str]) -> Value {
        let stdout = self.ok(key, &json_args(args));
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("bcfl {args:?}: not one JSON document ({e}):\n{stdout}"))
    }

    /// Runs `bcfl --json`, expects success, and parses the last line of its stdout as JSON: for
    /// commands that print progress lines before their report.
    pub fn json_last_line(&self, key: &str, args: &[&str]) -> Value {
        let stdout = self.ok(key, &json_args(args));
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("bcfl {args:?}: no JSON last line ({e}):\n{stdout}"))
    }

    /// Runs `bcfl`, panics (with its output) unless it exits with status `code`, and returns what
    /// it did.
    pub fn exits_with(&self, key: &str, args: &[&str], code: i32) -> Output {
        let out = self.run(key, args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "bcfl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The public key (hex) of key `name` in the key directory.
    pub fn public_key(&self, name: &str) -> String {
        let path = self.key_dir.join(format!("{name}.pub"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// Creates key pair `name` in the key directory (`bcfl keygen`), unless it exists (a node
    /// started before its member is registered made it already).
    pub fn keygen(&self, name: &str) {
        if !self.key_dir.join(format!("{name}.priv")).exists() {
            self.ok(name, &["keygen", name]);
        }
    }

    /// Registers member `name` (its key from the key directory, also its display name) with a
    /// blob endpoint, signed by `admin`.
    pub fn register_member(&self, admin: &str, name: &str, endpoint: &str) {
        self.ok(
            admin,
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
}

fn json_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    all
}
