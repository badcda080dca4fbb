//! `bcfl net plan` end to end: the real binary on a CSV file, JSON and table output, errors.

use std::process::Command;

/// The graph of `bcfl_client::net`'s unit tests; from 1 with M = 6000 B, chunk 600 B,
/// D_G = 1 s: 2 at 60 s, 3 direct at 100 s, 4 via 3 at 220 s (pipelined 130 s), 5 unreachable.
const CSV: &str = "from,to,bytes_per_sec\n1,2,100\n2,3,100\n1,3,60\n3,4,50\n5,1,10\n";

fn bcfl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bcfl"))
        .args(args)
        .env_remove("BCFL_URL")
        .env_remove("BCFL_KEY")
        .output()
        .expect("run bcfl")
}

#[test]
fn net_plan_prints_json_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bandwidth.csv");
    std::fs::write(&csv, CSV).unwrap();
    let csv = csv.to_str().unwrap();
    let common = [
        "net",
        "plan",
        "--bandwidth",
        csv,
        "--source",
        "1",
        "--size",
        "6000",
        "--chunk",
        "600",
        "--delay",
        "1",
    ];

    let out = bcfl(&[&common[..], &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["totals"]["store_and_forward"]["synchronous_s"],
        381.0
    );
    assert_eq!(report["totals"]["pipelined"]["asynchronous_s"], 131.0);
    assert_eq!(report["unreachable"], serde_json::json!(["5"]));
    assert_eq!(report["mst"]["weight_s"], 840.0);

    // Widest routing with 2 removed: 3 direct, 4 via 3.
    let out = bcfl(
        &[
            &common[..],
            &["--routing", "widest", "--remove", "2", "--json"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["routing"], "widest");
    assert_eq!(report["removed"], serde_json::json!(["2"]));
    assert_eq!(
        report["destinations"][1]["path"],
        serde_json::json!(["1", "3", "4"])
    );

    let out = bcfl(&common);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("1>3>4"), "{table}");
    assert!(table.contains("unreachable: 5"), "{table}");
}

#[test]
fn net_plan_reports_bad_rows_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bandwidth.csv");
    std::fs::write(&csv, "from,to,bytes_per_sec\n1,2,100\n2,1,-3\n").unwrap();
    let csv = csv.to_str().unwrap();
    let out = bcfl(&[
        "net",
        "plan",
        "--bandwidth",
        csv,
        "--source",
        "1",
        "--size",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3: bandwidth -3 B/s must be positive"),
        "{stderr}"
    );

    std::fs::write(csv, CSV).unwrap();
    let out = bcfl(&[
        "net",
        "plan",
        "--bandwidth",
        csv,
        "--source",
        "9",
        "--size",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node 9 is not in the graph"), "{stderr}");
}
