//! What a node records about its work: one [`NodeEvent`] per step (phase, round, seconds,
//! bytes moved, the process's peak memory, and for a global model its test scores), appended
//! as JSON lines to the node's report file and kept in memory. `bcfl demo` reads every node's
//! file to build its report and figures.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One step of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// The node's display name.
    pub node: String,
    /// Its public key.
    pub key: String,
    /// The round.
    pub round: u64,
    /// `probe`, `train`, `commit`, `evaluate`, `fetch`, `aggregate`, `distribute` or `global`
    /// (the global model fetched, checked and loaded).
    pub phase: String,
    /// Seconds the step took.
    pub seconds: f64,
    /// Bytes the step moved over the network (received or sent for others).
    pub bytes: u64,
    /// The process's peak resident memory so far, bytes (0 where unknown).
    pub peak_rss_bytes: u64,
    /// When the step ended, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `global`: the model's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `global`: test accuracy, when the node has a held-out file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// `global`: test macro-F1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    /// Anything worth knowing (a dropped update, a stale base round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl NodeEvent {
    /// A step of `phase` in `round` that started at `started` and moved `bytes`.
    pub fn new(
        node: &str,
        key: &str,
        round: u64,
        phase: &str,
        started: Instant,
        bytes: u64,
    ) -> Self {
        Self {
            node: node.to_owned(),
            key: key.to_owned(),
            round,
            phase: phase.to_owned(),
            seconds: started.elapsed().as_secs_f64(),
            bytes,
            peak_rss_bytes: peak_rss_bytes(),
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            sha256: None,
            accuracy: None,
            macro_f1: None,
            detail: None,
        }
    }
}

/// The peak resident set size of this process (`VmHWM` in `/proc/self/status`), bytes; 0 where
/// the kernel does not say.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kib = line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kib| kib * 1024)
}

/// A node's events: in memory, and appended to a JSON-lines file when one is given.
#[derive(Debug, Clone, Default)]
pub struct Report {
    path: Option<PathBuf>,
    events: Arc<Mutex<Vec<NodeEvent>>>,
}

impl Report {
    /// A report appended to `path` (created with its folder), or kept in memory only.
    pub fn new(path: Option<&Path>) -> std::io::Result<Self> {
        if let Some(dir) = path.and_then(Path::parent) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            events: Arc::default(),
        })
    }

    /// Records `event`.
    pub fn record(&self, event: NodeEvent) -> std::io::Result<()> {
        if let Some(path) = &self.path {
            let mut file = OpenOptions::new().create(true).append(true).open(path)?;
            let line = serde_json::to_string(&event).map_err(std::io::Error::other)?;
            writeln!(file, "{line}")?;
        }
        self.events
            .lock()
            .expect("the report lock is not poisoned")
            .push(event);
        Ok(())
    }

    /// The events so far.
    pub fn events(&self) -> Vec<NodeEvent> {
        self.events
            .lock()
            .expect("the report lock is not poisoned")
            .clone()
    }

    /// Reads a report file back (lines that do not parse are skipped with a warning: a node
    /// killed mid-write leaves a partial last line).
    pub fn read(path: &Path) -> std::io::Result<Vec<NodeEvent>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| match serde_json::from_str(l) {
                Ok(event) => Some(event),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a report line");
                    None
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_file_and_partial_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes/n1.jsonl");
        let report = Report::new(Some(&path)).unwrap();
        let mut event = NodeEvent::new("n1", "02ab", 3, "global", Instant::now(), 42);
        event.accuracy = Some(0.5);
        report.record(event.clone()).unwrap();
        report
            .record(NodeEvent::new("n1", "02ab", 3, "train", Instant::now(), 0))
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"node\":\"n1\",\"ro")
            .unwrap();
        let read = Report::read(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], event);
        assert_eq!(report.events().len(), 2);
    }

    #[test]
    fn peak_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes() > 1 << 20);
        }
    }
}
