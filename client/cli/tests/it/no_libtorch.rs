//! `bcfl` neither links nor loads libtorch, even when the workspace build compiled bcfl-client
//! with `train` (as `cargo test --features bcfl-client/train` does for this very binary).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bcfl_testkit::ChildGuard;

/// Libraries of libtorch: `libtorch.so`, `libtorch_cpu.so`, `libc10.so`, ...
fn is_libtorch(line: &str) -> bool {
    line.contains("libtorch") || line.contains("libc10")
}

#[test]
fn bcfl_links_no_libtorch() {
    let out = Command::new("ldd")
        .arg(super::bcfl())
        .output()
        .expect("running ldd");
    assert!(out.status.success(), "ldd failed: {out:?}");
    let needed = String::from_utf8_lossy(&out.stdout);
    let torch: Vec<&str> = needed.lines().filter(|l| is_libtorch(l)).collect();
    assert!(torch.is_empty(), "bcfl links libtorch: {torch:?}");
    // The check means something when bcfl-train, from the same build, does.
    if let Some(train) = super::bcfl_train("bcfl_links_no_libtorch (bcfl-train half)") {
        let out = Command::new("ldd").arg(train).output().unwrap();
        let needed = String::from_utf8_lossy(&out.stdout);
        assert!(
            needed.lines().any(is_libtorch),
            "bcfl-train links no libtorch?\n{needed}"
        );
        assert!(!needed.contains("not found"), "{needed}");
    }
}

#[test]
fn a_running_bcfl_maps_no_libtorch() {
    let store = tempfile::tempdir().unwrap();
    // A blob server signs and is addressed by its member key.
    let key = store.path().join("node.priv");
    std::fs::write(&key, format!("{}\n", "1f".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let child = Command::new(super::bcfl())
        .arg("--key")
        .arg(&key)
        .args(["node", "serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(store.path().join("store"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard::new(child);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"listening\""), "bcfl node serve: {line:?}");
    // Serving: every library it loads at start is mapped by now.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
    let torch: Vec<&str> = maps.lines().filter(|l| is_libtorch(l)).collect();
    assert!(torch.is_empty(), "bcfl mapped libtorch: {torch:?}");
    assert!(maps.contains("libc.so"), "unexpected /proc maps:\n{maps}");
}
