//! What every command of both binaries needs: the global flags ([`GlobalArgs`]) and what they
//! give ([`Context`]): the REST client, the signing key, the output mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use bcfl_ledger::keys::{PublicKey, Signer};
use bcfl_ledger::rest::{BatchStatus, RestClient};
use bcfl_ledger::state::BcflReader;
use clap::Args;

/// Options every command accepts, in `bcfl` and in `bcfl-train` alike.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Base URL of the ledger's REST API.
    #[arg(
        long,
        global = true,
        env = "BCFL_URL",
        default_value = "http://127.0.0.1:8008"
    )]
    pub url: String,
    /// Signing key: a path to a private key file, or a key name in the key directory
    /// (default: $USER).
    #[arg(long, global = true, env = "BCFL_KEY")]
    pub key: Option<String>,
    /// Directory of named keys (NAME.priv, NAME.pub) [default: ~/.sawtooth/keys].
    #[arg(long, global = true, env = "BCFL_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Trust this CA certificate (PEM) for https:// and wss:// ledger URLs and blob servers,
    /// besides the built-in roots.
    #[arg(long, global = true, env = "BCFL_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// Shared state of one invocation.
pub struct Context {
    global: GlobalArgs,
}

impl Context {
    /// The context of the parsed global flags.
    pub fn new(global: GlobalArgs) -> Self {
        Self { global }
    }

    /// The context of the parsed global flags, with `--ca-cert` trusted by every client the
    /// process builds from now on ([`bcfl_tls::trust_ca_file`]).
    pub fn try_new(global: GlobalArgs) -> anyhow::Result<Self> {
        if let Some(ca) = &global.ca_cert {
            bcfl_tls::trust_ca_file(ca).with_context(|| format!("--ca-cert {}", ca.display()))?;
        }
        Ok(Self::new(global))
    }

    /// Whether to print JSON.
    pub fn json(&self) -> bool {
        self.global.json
    }

    /// The key directory: `--key-dir`, or `~/.sawtooth/keys`.
    pub fn key_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.global.key_dir {
            return Ok(dir.clone());
        }
        let home =
            std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set: pass --key-dir"))?;
        Ok(Path::new(&home).join(".sawtooth").join("keys"))
    }

    /// The private key file `--key` names: a path when it contains a `/` or is an existing
    /// file, otherwise `KEY_DIR/NAME.priv`; without `--key`, `KEY_DIR/$USER.priv`.
    pub fn key_path(&self) -> anyhow::Result<PathBuf> {
        let name = match &self.global.key {
            Some(key) if key.contains('/') || Path::new(key).is_file() => {
                return Ok(PathBuf::from(key));
            }
            Some(name) => name.clone(),
            None => {
                std::env::var("USER").map_err(|_| anyhow!("no --key given and USER is not set"))?
            }
        };
        Ok(self.key_dir()?.join(format!("{name}.priv")))
    }

    /// The signer of submitted transactions.
    pub fn signer(&self) -> anyhow::Result<Signer> {
        let path = self.key_path()?;
        Signer::from_file(&path).with_context(|| {
            format!(
                "cannot load the signing key {} (create one with `bcfl keygen NAME` and pass \
                 --key NAME)",
                path.display()
            )
        })
    }

    /// A public key given as 66 hex characters or as the name of a key in the key directory.
    pub fn public_key(&self, text: &str) -> anyhow::Result<String> {
        if let Ok(key) = PublicKey::from_hex(text) {
            return Ok(key.as_hex().to_owned());
        }
        if text.len() == 66 {
            anyhow::bail!("{text:?} is not a valid compressed public key");
        }
        let path = if text.contains('/') {
            PathBuf::from(text)
        } else {
            self.key_dir()?.join(format!("{text}.pub"))
        };
        let key = PublicKey::read_file(&path).with_context(|| {
            format!(
                "{text:?} is neither a 66-hex public key nor a readable key ({})",
                path.display()
            )
        })?;
        Ok(key.as_hex().to_owned())
    }

    /// The REST client.
    pub fn client(&self) -> anyhow::Result<RestClient> {
        Ok(RestClient::new(&self.global.url)?)
    }

    /// A state reader.
    pub fn reader(&self) -> anyhow::Result<BcflReader> {
        Ok(BcflReader::new(self.client()?))
    }

    /// Prints a JSON value on stdout (one line).
    pub fn print_json(&self, value: &serde_json::Value) {
        println!("{value}");
    }

    /// Prints the outcome of a submission.
    pub fn print_statuses(&self, statuses: &[BatchStatus]) {
        for s in statuses {
            if self.json() {
                self.print_json(&serde_json::json!({
                    "batch_id": s.id,
                    "status": s.status.as_str(),
                }));
            } else {
                println!("batch {} {}", s.id, s.status);
            }
        }
    }
}

/// How a submitting command waits.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Return right after the REST API accepted the batch.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for the batch to commit.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub wait_timeout: u64,
}

impl WaitArgs {
    /// How long to wait for the batch to commit; `None` with `--no-wait`.
    pub fn wait(&self) -> Option<Duration> {
        (!self.no_wait).then(|| Duration::from_secs(self.wait_timeout))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
    }

    #[test]
    fn global_flags_make_the_context() {
        let cli = Cli::try_parse_from([
            "bcfl",
            "--json",
            "--url",
            "http://127.0.0.1:9",
            "--key-dir",
            "/keys",
            "--key",
            "alice",
        ])
        .unwrap();
        let ctx = Context::new(cli.global);
        assert!(ctx.json());
        assert_eq!(ctx.client().unwrap().base_url(), "http://127.0.0.1:9");
        assert_eq!(ctx.key_path().unwrap(), Path::new("/keys/alice.priv"));
    }
}
