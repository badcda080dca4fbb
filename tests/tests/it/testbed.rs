//! A test bed of hosts on one machine: Linux network namespaces joined by veth pairs, each
//! direction of each link shaped with `tc` (rate with `tbf`, delay with `netem` where the kernel
//! has it), one `bcfl node` per host.
//!
//! Each host `i` is a namespace `bcfl<pid>t<n>h<i>` (test bed `n` of the process: tests run
//! in parallel) whose address `10.77.0.<i+1>` sits on its loopback device; a link `i <-> j` is a veth pair (`v<j>` in host `i`, `v<i>` in host `j`)
//! with a /32 route to the peer's address over it, so every host reaches every other at one
//! address, over the direct link only. Addresses exist only inside the namespaces created here.
//!
//! [`Testbed::share_uplink`] makes all of a host's links share one uplink (an `ifb` device the
//! links' egress is redirected to), as one network interface would.
//!
//! [`Testbed::available`] says why a test must be skipped (not root, no `ip`/`tc`, no network
//! namespaces). Dropping the [`Testbed`] kills its processes and deletes its namespaces, also
//! when a test panics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bcfl_testkit::{Binary, Spawned};

/// The shaping of one direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Rate in megabits (10^6 bits) per second.
    pub mbit: f64,
    /// One-way delay in milliseconds.
    pub delay_ms: f64,
}

impl Shape {
    /// The rate in bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.mbit * 125_000.0
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) -> String {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// `bcfl<pid>t<n>`: a namespace prefix no other test bed (of this process, whose tests run in
/// parallel, or of another) uses.
fn unique_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("bcfl{}t{n}", std::process::id())
}

/// Hosts in network namespaces; see the module docs.
#[derive(Debug)]
pub struct Testbed {
    names: Vec<String>,
    nodes: Vec<Option<Spawned>>,
    /// The veth devices of each host, one per link.
    devices: Vec<Vec<String>>,
    dir: tempfile::TempDir,
    netem: bool,
}

impl Testbed {
    /// `Err(reason)` when this machine cannot run the test bed.
    pub fn available() -> Result<(), String> {
        let uid = run(&["id", "-u"])?;
        if uid.trim() != "0" {
            return Err(format!("not root (uid {})", uid.trim()));
        }
        run(&["ip", "-V"]).map_err(|e| format!("no iproute2 `ip`: {e}"))?;
        run(&["tc", "-V"]).map_err(|e| format!("no iproute2 `tc`: {e}"))?;
        let probe = format!("{}probe", unique_prefix());
        run(&["ip", "netns", "add", &probe]).map_err(|e| format!("no network namespaces: {e}"))?;
        let shaping = run(&[
            "ip", "netns", "exec", &probe, "tc", "qdisc", "add", "dev", "lo", "root", "tbf",
            "rate", "1mbit", "burst", "16384", "latency", "50ms",
        ])
        .map_err(|e| format!("no tbf rate shaping: {e}"));
        let _ = run(&["ip", "netns", "del", &probe]);
        shaping.map(drop)
    }

    /// `hosts` namespaces with their loopback up and their address on it; no links yet.
    pub fn new(hosts: usize) -> Self {
        let prefix = unique_prefix();
        let mut bed = Self {
            names: Vec::new(),
            nodes: Vec::new(),
            devices: Vec::new(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            netem: false,
        };
        for i in 0..hosts {
            let name = format!("{prefix}h{i}");
            must(&["ip", "netns", "add", &name]);
            bed.names.push(name.clone());
            bed.nodes.push(None);
            bed.devices.push(Vec::new());
            must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
            let addr = format!("{}/32", bed.addr(i));
            must(&["ip", "-n", &name, "addr", "add", &addr, "dev", "lo"]);
        }
        if let Some(first) = bed.names.first() {
            // netem on the loopback device, removed at once: is the module there?
            let add = [
                "ip", "netns", "exec", first, "tc", "qdisc", "add", "dev", "lo", "root",
            ];
            bed.netem = run(&[&add[..], &["netem", "delay", "1ms"]].concat()).is_ok();
            if bed.netem {
                must(&[
                    "ip", "netns", "exec", first, "tc", "qdisc", "del", "dev", "lo", "root",
                ]);
            }
        }
        bed
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// The base URL of host `i`'s node.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}:7070", self.addr(i))
    }

    /// A scratch directory that lives as long as the test bed.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Joins hosts `i` and `j`, shaping `i -> j` with `forward` and `j -> i` with `back`.
    pub fn link(&mut self, i: usize, j: usize, forward: Shape, back: Shape) {
        let (ni, nj) = (&self.names[i], &self.names[j]);
        let (vi, vj) = (format!("v{i}"), format!("v{j}"));
        must(&[
            "ip", "link", "add", &vj, "netns", ni, "type", "veth", "peer", "name", &vi, "netns", nj,
        ]);
        for (ns, dev, peer, shape) in [(ni, &vj, j, forward), (nj, &vi, i, back)] {
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
            let src = self.addr(if peer == j { i } else { j });
            let dst = format!("{}/32", self.addr(peer));
            must(&[
                "ip", "-n", ns, "route", "add", &dst, "dev", dev, "src", &src,
            ]);
            self.shape(ns, dev, shape);
        }
        self.devices[i].push(vj);
        self.devices[j].push(vi);
    }

    /// Makes everything host `i` sends share one uplink of `mbit`: an `ifb` device shaped with
    /// `tbf`, to which every link's egress is redirected (`clsact` + `u32` + `mirred`) before
    /// the link's own shaping. Call after the host's links are made.
    pub fn share_uplink(&self, i: usize, mbit: f64) {
        let ns = &self.names[i];
        must(&["ip", "-n", ns, "link", "add", "up0", "type", "ifb"]);
        must(&["ip", "-n", ns, "link", "set", "up0", "up"]);
        let rate = format!("{}kbit", (mbit * 1000.0).round());
        let burst = format!("{}", (mbit * 125.0).max(16384.0).round());
        must(&[
            "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "up0", "root", "tbf", "rate",
            &rate, "burst", &burst, "latency", "200ms",
        ]);
        for dev in &self.devices[i] {
            must(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "clsact",
            ]);
            must(&[
                "ip", "netns", "exec", ns, "tc", "filter", "add", "dev", dev, "egress", "protocol",
                "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect",
                "dev", "up0",
            ]);
        }
    }

    /// Rate with `tbf` (burst: 1 ms of traffic, at least 16 KiB), and delay with a `netem`
    /// child where the kernel has netem (see [`Testbed::has_netem`]).
    fn shape(&self, ns: &str, dev: &str, shape: Shape) {
        let rate = format!("{}kbit", (shape.mbit * 1000.0).round());
        let burst = format!("{}", (shape.bytes_per_sec() / 1000.0).max(16384.0).round());
        must(&[
            "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:",
            "tbf", "rate", &rate, "burst", &burst, "latency", "200ms",
        ]);
        if shape.delay_ms > 0.0 && self.netem {
            let delay = format!("{}ms", shape.delay_ms);
            must(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "parent", "1:1",
                "handle", "10:", "netem", "delay", &delay, "limit", "100000",
            ]);
        }
    }

    /// True when the kernel has the `netem` qdisc, so links get their delay; without it only
    /// the rate is shaped.
    pub fn has_netem(&self) -> bool {
        self.netem
    }

    /// Joins every pair of hosts, shaping `i -> j` with `shape(i, j)`.
    pub fn full_mesh(&mut self, shape: impl Fn(usize, usize) -> Shape) {
        for i in 0..self.len() {
            for j in i + 1..self.len() {
                self.link(i, j, shape(i, j), shape(j, i));
            }
        }
    }

    /// A command run inside host `i`.
    pub fn command(&self, i: usize, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[i]]).arg(program);
        command
    }

    /// The private key every host's `bcfl` signs its requests with (written on first use):
    /// the testbed is about links, not membership, so one operator key serves all hosts, each
    /// server allowing it (`--allow-key`) and known by its host id (`--me hI`).
    fn key(&self) -> PathBuf {
        const KEY: &str = "5e7d8b2a9c4f6e1d3b5a7c9e0f2d4b6a8c1e3f5d7b9a2c4e6f8d0b1a3c5e7f9d";
        let path = self.dir.path().join("operator.priv");
        if !path.exists() {
            std::fs::write(&path, format!("{KEY}\n")).expect("writing the operator key");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod 600 the operator key");
        }
        path
    }

    /// `bcfl --key OPERATOR` in host `i`.
    fn bcfl_command(&self, i: usize) -> Command {
        let mut command = self.command(i, &Binary::Bcfl.path());
        command.arg("--key").arg(self.key());
        command
    }

    /// Starts host `i`'s node (`bcfl node serve`) with `files` in its store and waits until it
    /// listens.
    pub fn serve(&mut self, i: usize, chunk_size: u64, files: &[PathBuf]) {
        let store = self.dir.path().join(format!("store{i}"));
        let operator = bcfl_ledger::keys::Signer::from_file(&self.key())
            .expect("the operator key")
            .public_key()
            .as_hex()
            .to_owned();
        let mut command = self.bcfl_command(i);
        command
            .args(["node", "serve", "--allow-key", &operator, "--listen"])
            .arg(format!("{}:7070", self.addr(i)))
            .arg("--store")
            .arg(&store)
            .args(["--chunk-size", &chunk_size.to_string()])
            // Relays and pulls resolve the hosts' ids through these.
            .args(self.peer_args())
            .args(["--me", &format!("h{i}")]);
        for file in files {
            command.arg("--add").arg(file);
        }
        let mut process = Spawned::start(&format!("node{i}"), command, self.dir.path());
        process.wait_for_line("\"listening\"", Duration::from_secs(10));
        self.nodes[i] = Some(process);
    }

    /// Packets host `i`'s shared uplink (see [`Testbed::share_uplink`]) has dropped so far.
    pub fn uplink_drops(&self, i: usize) -> Option<u64> {
        let ns = &self.names[i];
        let stats = run(&[
            "ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", "up0",
        ])
        .ok()?;
        let after = stats.split("dropped ").nth(1)?;
        after
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// CPU seconds (user + system) each node has used so far, by host (0 for a host without a
    /// running node).
    pub fn node_cpu_seconds(&self) -> Vec<f64> {
        self.nodes
            .iter()
            .map(|n| n.as_ref().and_then(Spawned::cpu_seconds).unwrap_or(0.0))
            .collect()
    }

    /// Kills host `i`'s node.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// The blob store directory of host `i`.
    pub fn store(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("store{i}"))
    }

    /// `--peer hI=URL` arguments for every host.
    pub fn peer_args(&self) -> Vec<String> {
        (0..self.len())
            .flat_map(|i| ["--peer".to_owned(), format!("h{i}={}", self.url(i))])
            .collect()
    }

    /// Runs `bcfl ARGS --json` in host `i`; returns its exit success, stdout parsed as JSON
    /// (its last line), and stderr.
    pub fn bcfl(&self, i: usize, args: &[String]) -> (bool, serde_json::Value, String) {
        let output = self
            .bcfl_command(i)
            .args(args)
            .arg("--json")
            .output()
            .expect("running bcfl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("bcfl {args:?}: no JSON on stdout:\n{stdout}\n{stderr}"));
        (output.status.success(), value, stderr)
    }
}

impl Testbed {
    /// A federated run across hosts: `bcfl demo` with `members` member processes, member K's
    /// `bcfl node run` in host K-1 (`--member-host`, and `--launcher` with a script that enters
    /// that host), the hosts in a full mesh shaped by `shape`, and the ledger (`bcfl-devnet`
    /// and `bcfl-tp`), the demo and its coordinator in one more host with 1 Gbit links to
    /// every member. `demo_args` go to `bcfl demo` after the members, the hosts and the data
    /// directory (the repository's `data/`). With `logs`, the nodes' logs (`WORK/logs`) are
    /// copied there at the end. Returns the demo's report (`--json`), or why it failed with the
    /// end of the demo's stderr.
    pub fn federation(
        members: usize,
        shape: impl Fn(usize, usize) -> Shape,
        demo_args: &[String],
        logs: Option<&Path>,
    ) -> Result<serde_json::Value, String> {
        let ledger = members;
        let mut bed = Testbed::new(members + 1);
        let gigabit = Shape {
            mbit: 1000.0,
            delay_ms: 1.0,
        };
        bed.full_mesh(|i, j| {
            if i == ledger || j == ledger {
                gigabit
            } else {
                shape(i, j)
            }
        });
        let addr = bed.addr(ledger);
        let dir = bed.dir().to_path_buf();
        let mut devnet = bed.command(ledger, &Binary::BcflDevnet.path());
        devnet
            .arg("run")
            .arg("--data-dir")
            .arg(dir.join("ledger"))
            .args(["--bind-component", &format!("tcp://{addr}:4004")])
            .args(["--bind-rest", &format!("{addr}:8008")])
            .env("NO_COLOR", "1");
        let mut devnet = Spawned::start("bcfl-devnet", devnet, &dir);
        devnet.wait_for_line("rest: ", Duration::from_secs(60));
        let mut tp = bed.command(ledger, &Binary::BcflTp.path());
        tp.args(["--connect", &format!("tcp://{addr}:4004"), "-v"])
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        let mut tp = Spawned::start("bcfl-tp", tp, &dir);
        tp.wait_for_line("registered", Duration::from_secs(60));

        // Member K runs in host K-1, at 10.77.0.K.
        let launcher = dir.join("launch.sh");
        let prefix = bed.names[0]
            .strip_suffix('0')
            .expect("host names end in their number");
        std::fs::write(
            &launcher,
            format!(
                "#!/bin/sh\nhost=$(($1 - 1))\nshift\nexec ip netns exec {prefix}$host \"$@\"\n"
            ),
        )
        .map_err(|e| format!("writing {}: {e}", launcher.display()))?;
        std::fs::set_permissions(
            &launcher,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| format!("chmod {}: {e}", launcher.display()))?;
        Binary::BcflTrain.path();
        let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
        let output = bed
            .command(ledger, &Binary::Bcfl.path())
            .args(["--url", &format!("http://{addr}:8008"), "--json", "demo"])
            .args(["--members", &members.to_string()])
            .args(["--member-host", "10.77.0.{i}"])
            .args(["--launcher", &format!("{} {{i}}", launcher.display())])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--work-dir")
            .arg(dir.join("work"))
            .args(demo_args)
            .output()
            .map_err(|e| format!("running bcfl demo: {e}"))?;
        if let Some(logs) = logs {
            let copied = Command::new("cp")
                .arg("-r")
                .arg(dir.join("work/logs"))
                .arg(logs)
                .status();
            if !copied.is_ok_and(|s| s.success()) {
                eprintln!("the nodes' logs were not copied to {}", logs.display());
            }
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        if !output.status.success() {
            return Err(format!("bcfl demo {demo_args:?} failed:\n{tail}"));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("bcfl demo printed no report ({e}):\n{tail}"))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.nodes.clear();
        for name in &self.names {
            // Deleting a namespace removes its veth ends, and so the pairs.
            if let Err(e) = run(&["ip", "netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
