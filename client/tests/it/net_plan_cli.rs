//! `bcfl net plan` end to end: the real binary on a CSV file, JSON and table output, errors;
//! and exclusion-aware routing on a real `bcfl-devnet` with `bcfl-tp`: round 1's verdict
//! excludes a poisoned member, which `net plan --ledger --round 1` and `node distribute
//! --round 1` (real `bcfl node serve` processes on loopback) then leave out of the routes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bcfl_testkit::{Binary, ChildGuard, Cli, Ledger};
use serde_json::{json, Value};

use crate::poisoned_round::{commit_with_poisoned_m4, init_poison_consortium, POISON_NAMES};

/// The graph of `bcfl_net`'s unit tests; from 1 with M = 6000 B, chunk 600 B,
/// D_G = 1 s: 2 at 60 s, 3 direct at 100 s, 4 via 3 at 220 s (pipelined 130 s), 5 unreachable.
const CSV: &str = "from,to,bytes_per_sec\n1,2,100\n2,3,100\n1,3,60\n3,4,50\n5,1,10\n";

fn bcfl(args: &[&str]) -> std::process::Output {
    Command::new(Binary::Bcfl.path())
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

#[test]
fn round_without_ledger_is_a_usage_error() {
    let out = bcfl(&[
        "net",
        "plan",
        "--bandwidth",
        "x.csv",
        "--round",
        "1",
        "--source",
        "1",
        "--size",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'--bandwidth <FILE>' cannot be used with '--round <N>'"),
        "{stderr}"
    );
}

/// `bcfl node serve` of member `name` (its key, made if missing) on a free loopback port with
/// the files `add` in its store, following the member registry of `cli`'s ledger: read every
/// minute, and again when a request names a key it does not know (so a member registered
/// after the node started is served at once); returns the process and its base URL.
pub(crate) fn serve(
    cli: &Cli,
    name: &str,
    store: &std::path::Path,
    add: &[&std::path::Path],
) -> (ChildGuard, String) {
    cli.keygen(name);
    let mut command = cli.command(name);
    command
        .args(["node", "serve", "--registry-refresh", "60"])
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for file in add {
        command.arg("--add").arg(file);
    }
    let mut child = command.spawn().expect("starting bcfl node serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child = ChildGuard::new(child);
    let listening: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let url = format!("http://{}", listening["listening"].as_str().unwrap());
    (child, url)
}

fn paths(report: &Value, list: &str) -> Vec<(String, Vec<String>)> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let path = d["path"].as_array().unwrap();
            (
                d["node"].as_str().unwrap().to_owned(),
                path.iter()
                    .map(|n| n.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn the_verdict_of_a_round_removes_excluded_members_from_routing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let cli = Cli::new(ledger.url(), dir.path().join("keys"));
    let names = POISON_NAMES;
    let global = dir.path().join("global.bin");
    std::fs::write(&global, vec![7u8; 300_000]).unwrap();
    let mut nodes = Vec::new();
    for (i, name) in names[1..].iter().enumerate() {
        let add: Vec<&std::path::Path> = (i == 0).then_some(global.as_path()).into_iter().collect();
        let (node, url) = serve(&cli, name, &dir.path().join(format!("store-{name}")), &add);
        nodes.push((name, node, url));
    }
    // The members register at their nodes' URLs.
    init_poison_consortium(&cli, |member| {
        let (_, _, url) = nodes.iter().find(|(name, _, _)| **name == member).unwrap();
        url.clone()
    });
    // m4 is the fastest relay: 100 MB/s to and from everyone, while the direct links are
    // 1 MB/s.
    for name in &names[1..] {
        let links: Vec<String> = names[1..]
            .iter()
            .filter(|to| *to != name)
            .map(|to| {
                let fast = *name == "m4" || *to == "m4";
                format!("{to}:{}:500", if fast { 100_000_000 } else { 1_000_000 })
            })
            .collect();
        let mut args = vec!["bandwidth", "report"];
        for link in &links {
            args.extend(["--link", link.as_str()]);
        }
        cli.ok(name, &args);
    }
    cli.ok("admin", &["round", "open", "--aggregator", "m0"]);
    // m4 scales its update x10 and flips its sign: the processor excludes it.
    commit_with_poisoned_m4(&cli, dir.path(), &names[1..]);
    cli.ok("m0", &["round", "evaluate"]);
    let key = |name: &str| cli.public_key(name);
    let (m0, m4) = (key("m0"), key("m4"));

    // Before the verdict is applied, every route goes through m4.
    let plan = [
        "net", "plan", "--ledger", "--source", &m0, "--size", "300000",
    ];
    let all = cli.json("admin", &plan);
    assert_eq!(all["excluded_by_verdict"], Value::Null);
    for (node, path) in paths(&all, "destinations") {
        if node != m4 {
            assert_eq!(path, [m0.clone(), m4.clone(), node.clone()], "{all}");
        }
    }
    // For round 1, m4 is out and every member is reached directly.
    let round = cli.json("admin", &[&plan[..], &["--round", "1"]].concat());
    assert_eq!(
        round["excluded_by_verdict"],
        json!({ "round": 1, "excluded": [m4] })
    );
    assert_eq!(round["removed"], json!([m4]));
    let routed = paths(&round, "destinations");
    assert_eq!(routed.len(), 3, "{round}");
    for (node, path) in routed {
        assert_eq!(path, [m0.clone(), node], "{round}");
    }
    let table = cli.ok("admin", &[&plan[..], &["--round", "1"]].concat());
    assert!(
        table.contains(&format!(
            "round 1 verdict: excluded {m4} (removed from routing)"
        )),
        "{table}"
    );
    // A round without a verdict is an error, not an empty exclusion.
    let out = cli.run("admin", &[&plan[..], &["--round", "2"]].concat());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("round 2 has no anomaly verdict"),
        "{stderr}"
    );

    // The real distribution for round 1, one member after another: m4 gets nothing. The nodes
    // started before anyone was registered and refresh their registry once a minute: each
    // re-reads the ledger when a request comes from a key it does not know.
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&global).unwrap()))
    };
    let out = cli.run(
        "admin",
        &[
            "--json",
            "node",
            "distribute",
            "--sha256",
            &sha,
            "--source",
            &m0,
            "--round",
            "1",
            "--mode",
            "sync",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("round 1 verdict: excluded"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["mode"], "synchronous");
    assert_eq!(report["excluded_by_verdict"]["excluded"], json!([m4]));
    let delivered = paths(&report["measured"], "deliveries");
    assert_eq!(delivered.len(), 3, "{report}");
    for (node, path) in delivered {
        assert_ne!(node, m4);
        assert_eq!(path, [m0.clone(), node], "{report}");
    }
    assert!(
        report["predicted_totals"]["contended"]["sequential_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let m4_store = dir.path().join("store-m4");
    let held: Vec<_> = walk(&m4_store);
    assert!(!held.iter().any(|p| p.contains(&sha)), "{held:?}");
    let m1_store = dir.path().join("store-m1");
    assert!(walk(&m1_store).iter().any(|p| p.contains(&sha)));
    drop(nodes);
}

/// Every file path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// `bcfl node serve` with a listening socket passed in (`LISTEN_FDS=1`, fd 3, as systemd's
/// socket activation and `bcfl demo` pass it): it serves on that socket when it listens on
/// `--listen`, and exits with an error that names both addresses when it listens elsewhere.
#[test]
fn node_serve_takes_the_socket_passed_in() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new("http://127.0.0.1:1", dir.path().join("keys"));
    cli.keygen("m1");
    let start = |listen: &str, listener: &std::net::TcpListener| {
        let mut command = cli.command("m1");
        command
            .args(["node", "serve", "--peer", "p=http://127.0.0.1:1"])
            .args(["--listen", listen, "--store"])
            .arg(dir.path().join("store"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        bcfl_net::activation::pass_listener(&mut command, listener);
        command.spawn().expect("starting bcfl node serve")
    };

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = start(&addr.to_string(), &listener);
    drop(listener);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child = ChildGuard::new(child);
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(ready["listening"], addr.to_string());
    // The server answers on it (an unsigned request is refused, by the server).
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /v1/blobs HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 401"), "{answer}");
    drop(child);

    // A socket on another address than --listen is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.local_addr().unwrap();
    let out = start("127.0.0.1:9", &listener).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "listens on {other}, not on the configured 127.0.0.1:9"
        )),
        "{stderr}"
    );
}
