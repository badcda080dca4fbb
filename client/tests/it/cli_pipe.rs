//! `bcfl` writing into a pipe whose reader is gone ends quietly (SIGPIPE), without a panic.

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};

#[test]
fn a_closed_output_pipe_ends_the_program_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("links.csv");
    let mut file = std::fs::File::create(&csv).unwrap();
    writeln!(file, "from,to,bytes_per_sec").unwrap();
    for i in 0..200 {
        writeln!(file, "{i},{},1000000", (i + 1) % 200).unwrap();
    }
    drop(file);
    let mut child = Command::new(bcfl_testkit::Binary::Bcfl.path())
        .args(["--json", "net", "plan", "--bandwidth"])
        .arg(&csv)
        .args(["--source", "0", "--size", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the program writes its (large) answer.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "bcfl panicked: {stderr}");
    assert!(
        output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
        "unexpected end: {:?}, stderr: {stderr}",
        output.status
    );
}
