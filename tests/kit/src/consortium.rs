//! [`ConsortiumSetup`]: the set-up most ledger tests start from, through the `bcfl` CLI.

use crate::Cli;

/// Keys for an admin and the members, a consortium initialised by the admin, and the members
/// registered, each step through `bcfl` and waited for until COMMITTED.
///
/// Defaults: admin key `admin`, base model SHA-256 `11` x 32, no other `consortium init`
/// options, no members.
///
/// ```no_run
/// use bcfl_testkit::{Cli, ConsortiumSetup};
///
/// let cli = Cli::with_temp_key_dir("http://127.0.0.1:8008");
/// ConsortiumSetup::new()
///     .with_init_args(&["--min-participants", "2", "--anomaly", "zscore"])
///     .with_member("alice", "http://127.0.0.1:9001")
///     .with_member("bob", "http://127.0.0.1:9002")
///     .run(&cli);
/// let alice = cli.public_key("alice");
/// # let _ = alice;
/// ```
#[derive(Debug, Clone)]
pub struct ConsortiumSetup {
    admin: String,
    base_model_sha256: String,
    init_args: Vec<String>,
    /// Name and blob endpoint of each member, in registration order.
    members: Vec<(String, String)>,
}

impl Default for ConsortiumSetup {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsortiumSetup {
    /// The defaults above.
    pub fn new() -> Self {
        Self {
            admin: "admin".to_owned(),
            base_model_sha256: "11".repeat(32),
            init_args: Vec::new(),
            members: Vec::new(),
        }
    }

    /// Names the admin's key (default `admin`).
    pub fn with_admin(mut self, name: &str) -> Self {
        name.clone_into(&mut self.admin);
        self
    }

    /// The base model's SHA-256, 64 hex (default `11` x 32).
    pub fn with_base_model(mut self, sha256: &str) -> Self {
        sha256.clone_into(&mut self.base_model_sha256);
        self
    }

    /// More `bcfl consortium init` options (`--min-participants 2`, `--anomaly zscore`, ...),
    /// added to those given before.
    pub fn with_init_args(mut self, args: &[&str]) -> Self {
        self.init_args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// A member: key `name`, registered under display name `name` with blob endpoint
    /// `endpoint`.
    pub fn with_member(mut self, name: &str, endpoint: &str) -> Self {
        self.members.push((name.to_owned(), endpoint.to_owned()));
        self
    }

    /// Creates the admin's and the members' keys in `cli`'s key directory, initialises the
    /// consortium signed by the admin, then registers the members in order. Panics when a step
    /// fails.
    pub fn run(self, cli: &Cli) {
        cli.keygen(&self.admin);
        for (name, _) in &self.members {
            cli.keygen(name);
        }
        let mut init = vec![
            "consortium",
            "init",
            "--base-model-sha256",
            &self.base_model_sha256,
        ];
        init.extend(self.init_args.iter().map(String::as_str));
        cli.ok(&self.admin, &init);
        for (name, endpoint) in &self.members {
            cli.register_member(&self.admin, name, endpoint);
        }
    }
}
