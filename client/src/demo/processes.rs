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
    /// Starts `program args` with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
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

/// A free TCP port on 127.0.0.1 that is not in `taken`, added to it (bound and released:
/// another process may take it first, so a node that cannot bind says so and the demo fails
/// with its log). Drawn at random below Linux's ephemeral range (32768-60999): a port the kernel
/// handed out for `bind(0)` is soon handed out again as the local port of some outgoing
/// connection, which is how a member's blob server once found its port taken while other tests
/// ran; below the range only another listener can take it. `taken` holds the ports handed out
/// before, which are free again until their members bind them: a demo once drew one port for
/// two members, and the second member's server found it taken. Falls back to the kernel's
/// choice when 64 draws are all in use. The test kit (`bcfl_testkit::free_port`, which links
/// no workspace crate) draws its ports alike.
pub fn free_port(taken: &mut std::collections::BTreeSet<u16>) -> Result<u16> {
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    for _ in 0..64 {
        let port = rng.gen_range(20_000..32_768);
        if taken.contains(&port) {
            continue;
        }
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            let port = listener.local_addr()?.port();
            taken.insert(port);
            return Ok(port);
        }
    }
    loop {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        if taken.insert(port) {
            return Ok(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports drawn into one set are all different, though each is released at once.
    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let mut taken = std::collections::BTreeSet::new();
        let ports: Vec<u16> = (0..300).map(|_| free_port(&mut taken).unwrap()).collect();
        assert_eq!(taken.len(), ports.len());
        assert!(ports.iter().all(|p| taken.contains(p)));
    }
}
