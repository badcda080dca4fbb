//! The demo's child processes: one `bcfl node run` per member and one coordinator, each with
//! its log file, stopped with SIGTERM (then SIGKILL) when the demo ends, fails or is
//! interrupted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Error, Result};

/// A running child process, stopped when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    /// Its name (`member-1`, `coordinator`).
    pub name: String,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

impl NodeProcess {
    /// Starts `program args` with stdout and stderr appended to `log`, and `listener`, if any,
    /// passed in as its blob server's socket ([`bcfl_net::activation::pass_listener`]; the
    /// caller may close its copy once this returns).
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        listener: Option<&std::net::TcpListener>,
        log: &Path,
    ) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::file("opening", log, e))?;
        let err = out.try_clone()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in envs {
            command.env(k, v);
        }
        if let Some(listener) = listener {
            bcfl_net::activation::pass_listener(&mut command, listener);
        }
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| Error::Spawn {
            name: name.to_owned(),
            program: program.to_owned(),
            source,
        })?;
        tracing::info!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            name: name.to_owned(),
            log: log.to_path_buf(),
            child,
            exited: None,
        })
    }

    /// Its exit status, once it exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Asks it to stop (SIGTERM), waits up to `grace`, then kills it.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().ok().flatten().is_some() {
            return;
        }
        #[allow(unsafe_code)]
        // SAFETY: `kill` with a pid this process started and has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Makes the child get SIGKILL when the demo ends without stopping it (killed itself), so no
/// node outlives the demo (Linux; elsewhere [`Drop`] is the only guard).
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

/// A listener on a free loopback port, for a member's blob server: the demo registers its
/// address on chain and hands the bound socket to the member's process
/// ([`bcfl_net::activation`]), so no other process can take the port in between. (A port
/// bound and released, and bound again by the member, once was: a member's blob server found
/// its port taken while other tests ran.) While it is held, the kernel hands its port to no
/// other listener and to no outgoing connection.
pub fn reserve_port() -> Result<std::net::TcpListener> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child started with a reserved port's listener serves on it: it accepts a connection
    /// on the port the demo drew, though the demo closed its own copy first.
    #[cfg(unix)]
    #[test]
    fn a_member_process_inherits_its_reserved_port() {
        let dir = tempfile::tempdir().unwrap();
        let listener = reserve_port().unwrap();
        let addr = listener.local_addr().unwrap();
        // The child accepts one connection on fd 3 and writes what LISTEN_FDS said.
        let script = "import socket, os; s = socket.socket(fileno=3); c, _ = s.accept(); \
                      c.sendall(os.environ['LISTEN_FDS'].encode())";
        let mut child = NodeProcess::spawn(
            "member-1",
            Path::new("python3"),
            &["-c".into(), script.into()],
            &[],
            Some(&listener),
            &dir.path().join("member-1.log"),
        )
        .unwrap();
        drop(listener);
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        assert_eq!(answer, "1", "{}", child.log_tail(20));
        child.stop(Duration::from_secs(5));
    }
}
