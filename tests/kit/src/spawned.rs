//! [`Spawned`]: a child process of a test, its output in a log file, killed when dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often the `wait_*` methods look again.
const POLL: Duration = Duration::from_millis(20);

/// A child process whose stdout and stderr go to `<log_dir>/<name>.log`, and which is killed
/// (SIGKILL) and reaped when dropped, also when the test panics. On Linux it also gets SIGKILL
/// when the thread that started it ends: start it on the test's own thread, not on a thread
/// pool's.
///
/// The command is kept: [`Spawned::restart`] starts it again with the same program, arguments,
/// environment and directory, appending to the same log. [`Spawned::wait_for_line`] reads the
/// output of the current run only.
///
/// ```no_run
/// use std::process::Command;
/// use std::time::Duration;
///
/// use bcfl_testkit::Spawned;
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut command = Command::new("sh");
/// command.args(["-c", "echo ready; sleep 60"]);
/// let mut process = Spawned::start("sleeper", command, dir.path());
/// assert_eq!(process.wait_for_line("ready", Duration::from_secs(5)), "ready");
/// process.kill();
/// assert!(!process.is_running());
/// ```
#[derive(Debug)]
pub struct Spawned {
    name: String,
    command: Command,
    child: Child,
    log: PathBuf,
    /// The log's length when the current run started.
    run_start: u64,
}

impl Spawned {
    /// Starts `command` with its stdout and stderr appended to `<log_dir>/<name>.log` (stdin is
    /// empty). Panics when it cannot be started.
    pub fn start(name: &str, mut command: Command, log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let (child, run_start) = spawn(name, &mut command, &log);
        Self {
            name: name.to_owned(),
            command,
            child,
            log,
            run_start,
        }
    }

    /// The name given to [`Spawned::start`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id of the current run.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file, which holds the output of every run.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The name, followed by everything every run has written so far: for failure messages.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} log ({}) ---\n{text}", self.name, self.log.display())
    }

    /// What the current run has written so far.
    pub fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            if file.seek(SeekFrom::Start(self.run_start)).is_ok() {
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }

    /// Waits until the current run has written a line that contains `pattern` (plain text, not
    /// a regular expression) and returns that line. Panics, with the log, when the process exits
    /// first or `timeout` passes.
    pub fn wait_for_line(&mut self, pattern: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the output before asking whether the process lives: a process that prints
            // and exits must not be reported as exiting first.
            let exited = self.child.try_wait().ok().flatten();
            let output = self.output();
            if let Some(line) = output.lines().find(|line| line.contains(pattern)) {
                return line.to_owned();
            }
            if let Some(status) = exited {
                panic!(
                    "{} exited ({status}) before writing a line with {pattern:?}\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} wrote no line with {pattern:?} within {timeout:?}\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the current run is still going.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics, with the log, when the current run has ended.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("polling a child process") {
            panic!("{} exited with {status}\n{}", self.name, self.log_text());
        }
    }

    /// Kills the process with SIGKILL, as `kill -9` does, and reaps it. Does nothing when it has
    /// already ended.
    pub fn kill(&mut self) {
        // An already reaped child is fine; nothing else can fail here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns its exit
    /// status. Panics, after killing it, when it does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        match self.wait(timeout) {
            Some(status) => status,
            None => {
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?} of SIGTERM\n{}",
                    self.name,
                    self.log_text()
                );
            }
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; its status, or `None` when it
    /// is still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling a child process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Kills the current run if it is still going, then starts the same command again; its
    /// output is appended to the same log.
    pub fn restart(&mut self) {
        self.kill();
        let marker = format!("--- {} restarted ---\n", self.name);
        if let Ok(mut file) = OpenOptions::new().append(true).open(&self.log) {
            let _ = file.write_all(marker.as_bytes());
        }
        let (child, run_start) = spawn(&self.name, &mut self.command, &self.log);
        self.child = child;
        self.run_start = run_start;
    }

    /// CPU seconds (user + system) the current run has used so far, from `/proc/PID/stat`;
    /// `None` where that cannot be read (not Linux, or the process is gone).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks_per_second())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `command` with its output appended to `log`; the child and the log's length before.
fn spawn(name: &str, command: &mut Command, log: &Path) -> (Child, u64) {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let run_start = out.metadata().map(|m| m.len()).unwrap_or(0);
    let err = out.try_clone().expect("cloning a log file handle");
    die_with_parent(command);
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name} ({command:?}): {e}"));
    (child, run_start)
}

/// Makes the child get SIGKILL when the thread that started it ends (Linux), so that a test
/// process killed from outside (a timeout, Ctrl-C) leaves no node running behind it; a test
/// that ends normally has killed its children already.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl,
        // which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    const SHORT: Duration = Duration::from_secs(10);

    #[test]
    fn waits_for_a_line_of_the_current_run_and_restarts_with_the_same_command() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("runs");
        let script = format!(
            "echo run >> {0}; echo \"run $(wc -l < {0})\"; exec sleep 60",
            marker.display()
        );
        let mut process = Spawned::start("counter", shell(&script), dir.path());
        assert_eq!(process.wait_for_line("run ", SHORT).trim(), "run 1");
        assert!(process.is_running());
        let first = process.pid();

        process.kill();
        assert!(!process.is_running());
        process.restart();
        assert_ne!(process.pid(), first);
        // Only the second run's output counts; the log keeps both.
        assert_eq!(process.wait_for_line("run ", SHORT).trim(), "run 2");
        assert!(!process.output().contains("run 1"));
        let log = process.log_text();
        assert!(log.contains("run 1") && log.contains("restarted") && log.contains("run 2"));
        process.assert_running();
    }

    #[test]
    fn terminate_returns_the_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let script = "trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done";
        let mut process = Spawned::start("trapper", shell(script), dir.path());
        process.wait_for_line("up", SHORT);
        assert_eq!(process.terminate(SHORT).code(), Some(3));
    }

    #[test]
    #[should_panic(expected = "exited")]
    fn a_process_that_exits_before_the_line_fails_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Spawned::start("quitter", shell("echo bye"), dir.path());
        process.wait_for_line("never", SHORT);
    }

    #[test]
    fn dropping_kills_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let process = Spawned::start("sleeper", shell("exec sleep 60"), dir.path());
        let proc_dir = PathBuf::from(format!("/proc/{}", process.pid()));
        drop(process);
        // Killed and reaped: no process, not even a zombie.
        assert!(!proc_dir.exists());
    }
}
