//! Helpers shared by the integration tests that run real processes on loopback.
//!
//! - [`workspace_bin`] finds a binary of the workspace (`bcfl-devnet`, `bcfl-tp`, `bcfl`) next to
//!   the test executable, in the same target directory, whatever `CARGO_TARGET_DIR` is.
//!   `cargo test` builds only the binaries of the package under test, so `scripts/test.sh` runs
//!   `cargo build --workspace --bins` first.
//! - [`free_port`] hands out a port the OS just reported free on 127.0.0.1.
//! - [`Process`] is a child whose output goes to a log file and which is killed when dropped, so a
//!   failing test never leaves a validator or processor behind; its log can be attached to a
//!   failure message.
//! - [`Process::cpu_seconds`] reads the CPU time a child has used, for benchmarks that say
//!   where the time went.
//! - [`wait_for_http`] polls a REST endpoint until it answers 200 OK.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of workspace binary `name` in the target directory this test runs from.
///
/// Panics with instructions when it has not been built.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/<profile>/deps/<test>-<hash>: binaries live in <target>/<profile>.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` with the same profile and \
         features first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// A child process that is killed (and reaped) when dropped. Stdout and stderr go to a log file.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command`, writing its output to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("cloning a log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({command:?}): {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the process has used so far, from `/proc/PID/stat`; `None`
    /// where that cannot be read (not Linux, or the process is gone).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks_per_second())
    }

    /// Panics, with the log, when the process has already exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("polling a child process") {
            panic!("{} exited with {status}\n{}", self.name, self.log_text());
        }
    }

    /// The name, followed by everything the process has written so far.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} log ({}) ---\n{text}", self.name, self.log.display())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Already exited is fine; anything else cannot be handled in a destructor.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 where it cannot be asked.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Polls `url` with GET until it answers 200 OK, for at most `timeout`, checking that `process`
/// (the server) is still running between attempts.
pub async fn wait_for_http(url: &str, process: &mut Process, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        process.assert_running();
        match client.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return,
            Ok(response) => last = format!("HTTP {}", response.status()),
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{url} did not answer 200 within {timeout:?} (last: {last})\n{}",
        process.log_text()
    );
}
