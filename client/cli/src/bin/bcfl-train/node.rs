//! `bcfl node run`: a member node and/or the coordinator that follows the ledger
//! ([`bcfl_client::round::node`]), configured by a TOML file with flags and environment
//! variables overriding it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use bcfl_client::round::coordinator::CoordinatorConfig;
use bcfl_client::round::node::{CoordinatorSection, NodeConfig};
use clap::Args;

/// `bcfl node run` arguments: the file, and overrides.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct NodeRunArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "BCFL_NODE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Ledger REST API URL (repeatable; replaces the file's list).
    #[arg(
        long = "ledger",
        env = "BCFL_NODE_LEDGER",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub(crate) ledger: Vec<String>,
    /// Member: private key file.
    #[arg(long, env = "BCFL_NODE_KEY", value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Member: blob server address.
    #[arg(long, env = "BCFL_NODE_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// Member: blob store folder.
    #[arg(long, env = "BCFL_NODE_STORE", value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    /// Member: private training data.
    #[arg(long, env = "BCFL_NODE_DATA", value_name = "FILE")]
    pub(crate) data: Option<PathBuf>,
    /// Member: report file.
    #[arg(long, env = "BCFL_NODE_REPORT", value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Run the coordinator role (the file's `[coordinator]` section; `--rounds` and
    /// `--admin-key` can stand in for it).
    #[arg(long)]
    pub(crate) coordinator: bool,
    /// Coordinator: rounds to run in all.
    #[arg(long)]
    pub(crate) rounds: Option<u64>,
    /// Coordinator: an admin's private key file.
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_key: Option<PathBuf>,
    /// Member: stop once the global model of round N is held and checked (default: run
    /// until stopped).
    #[arg(long, value_name = "N")]
    pub(crate) until_round: Option<u64>,
}

impl NodeRunArgs {
    /// The configuration: the file (paths made absolute), then the overrides; `default_ledger`
    /// when neither names a ledger.
    pub(crate) fn config(&self, default_ledger: &str) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::read(path)?,
            None => NodeConfig::empty(),
        };
        if !self.ledger.is_empty() {
            config.ledger = self.ledger.clone();
        }
        if let Some(m) = &mut config.member {
            if let Some(key) = &self.key {
                m.key = key.clone();
            }
            if let Some(listen) = self.listen {
                m.listen = listen;
            }
            if let Some(store) = &self.store {
                m.store = store.clone();
            }
            if let Some(data) = &self.data {
                m.data = data.clone();
            }
            if let Some(report) = &self.report {
                m.report = Some(report.clone());
            }
        }
        if self.coordinator && config.coordinator.is_none() {
            let (Some(rounds), Some(key)) = (self.rounds, &self.admin_key) else {
                bail!("--coordinator needs a [coordinator] section, or --rounds and --admin-key");
            };
            config.coordinator = Some(CoordinatorSection {
                key: key.clone(),
                schedule: CoordinatorConfig::new(rounds),
            });
        }
        if let (Some(c), Some(rounds)) = (&mut config.coordinator, self.rounds) {
            c.schedule.rounds = rounds;
        }
        if config.ledger.is_empty() {
            config.ledger.push(default_ledger.to_owned());
        }
        config.check()?;
        Ok(config)
    }
}

/// Runs the node until its roles finish or SIGINT/SIGTERM.
pub(crate) async fn run(args: &NodeRunArgs, default_ledger: &str) -> anyhow::Result<()> {
    let config = args.config(default_ledger)?;
    bcfl_client::round::node::run(&config, args.until_round).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const EXAMPLE: &str = r#"
ledger = ["http://127.0.0.1:8008"]
[member]
name = "m1"
key = "keys/m1.priv"
package = "model"
data = "shards/member-1.csv"
store = "m1/store"
listen = "127.0.0.1:7001"
[member.train]
epochs = 1
[coordinator]
key = "/abs/admin.priv"
rounds = 3
synchrony = "buffered-async"
buffer = 2
commit_timeout = 30
"#;

    #[test]
    fn the_file_parses_paths_resolve_and_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, EXAMPLE).unwrap();
        let args = NodeRunArgs {
            config: Some(file),
            ledger: vec!["http://a:1".into(), "http://b:2".into()],
            key: None,
            listen: Some("127.0.0.1:7002".parse().unwrap()),
            store: None,
            data: None,
            report: None,
            coordinator: false,
            rounds: Some(5),
            admin_key: None,
            until_round: None,
        };
        let config = args.config("http://x").unwrap();
        assert_eq!(config.ledger, ["http://a:1", "http://b:2"]);
        let m = config.member.unwrap();
        assert_eq!(m.key, dir.path().join("keys/m1.priv"));
        assert_eq!(m.listen.port(), 7002);
        assert_eq!(m.train.epochs, 1);
        assert_eq!(m.train.batch_size, 16);
        let c = config.coordinator.unwrap();
        assert_eq!(c.key, PathBuf::from("/abs/admin.priv"));
        assert_eq!(c.schedule.rounds, 5);
        assert_eq!(c.schedule.buffer, 2);
        assert_eq!(c.schedule.commit_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "ledger = []\n[member]\nname = 1\n").unwrap();
        let args = NodeRunArgs {
            config: Some(file.clone()),
            ledger: vec![],
            key: None,
            listen: None,
            store: None,
            data: None,
            report: None,
            coordinator: false,
            rounds: None,
            admin_key: None,
            until_round: None,
        };
        let err = format!("{:#}", args.config("http://x").unwrap_err());
        assert!(err.contains("parsing"), "{err}");
        std::fs::write(&file, "poll_seconds = 1.0\n").unwrap();
        let err = format!("{:#}", args.config("http://x").unwrap_err());
        assert!(err.contains("nothing to run"), "{err}");
        std::fs::write(
            &file,
            "[coordinator]\nkey = \"a\"\nrounds = 1\ntopology = \"server\"\n",
        )
        .unwrap();
        let err = format!("{:#}", args.config("http://x").unwrap_err());
        assert!(err.contains("server topology"), "{err}");
    }
}
