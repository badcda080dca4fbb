//! Known-answer tests of `net plan` on a hand-computed graph.

use bcfl_processor::graph::{GraphError, Routing};

use super::edges::graph_from_csv;
use super::exclusion::RoundExclusion;
use super::plan::{
    plan, plan_file, plan_for_round, plan_with, render, render_table, PlanReport, PlanRequest,
    DEFAULT_SHARING,
};
use bcfl_processor::graph::{Sharing, Uplink};

/// ```text
///   1 --100--> 2 --100--> 3 --50--> 4        M = 6000 B, chunk 600 B, D_G = 1 s
///   1 ---60-------------> 3                  5 --10--> 1 (5 cannot be reached from 1)
/// ```
/// Latencies M/B: 1-2 60 s, 2-3 60 s, 1-3 100 s, 3-4 120 s, 5-1 600 s.
const CSV: &str = "from,to,bytes_per_sec\n1,2,100\n2,3,100\n1,3,60\n3,4,50\n5,1,10\n";

fn request(routing: Routing, removed: &[&str]) -> PlanRequest {
    PlanRequest {
        source: "1".into(),
        size_bytes: 6000.0,
        removed: removed.iter().map(|r| r.to_string()).collect(),
        delay_s: 1.0,
        routing,
        chunk_bytes: 600.0,
    }
}

fn times(report: &PlanReport) -> Vec<(&str, &str, f64, f64)> {
    report
        .destinations
        .iter()
        .map(|d| {
            let path = d.path.last().map(String::as_str).unwrap_or_default();
            (
                path,
                d.predecessor.as_str(),
                d.store_and_forward_s,
                d.pipelined_s,
            )
        })
        .collect()
}

/// Shortest: 2 at 60 s; 3 direct at 100 s (< 60 + 60 = 120? no: 100 < 120, direct);
/// 4 via 3 at 100 + 120 = 220 s. Pipelined 1->3->4: 600/60 + 600/50 + 5400/50 = 130 s.
/// Store-and-forward totals: sync 1 + 60 + 100 + 220 = 381, async 1 + 220 = 221.
/// Pipelined totals: sync 1 + 60 + 100 + 130 = 291, async 1 + 130 = 131.
/// MST: {1,2} 60, {2,3} 60, ({1,3} closes a cycle), {3,4} 120, {1,5} 600: 840 s.
#[test]
fn shortest_plan_known_answer() {
    let graph = graph_from_csv(CSV).unwrap();
    let report = plan(&graph, &request(Routing::Shortest, &[])).unwrap();
    assert_eq!(
        times(&report),
        [
            ("2", "1", 60.0, 60.0),
            ("3", "1", 100.0, 100.0),
            ("4", "3", 220.0, 130.0)
        ]
    );
    assert_eq!(report.destinations[2].path, ["1", "3", "4"]);
    assert_eq!(report.destinations[2].hops, 2);
    assert_eq!(report.destinations[2].bottleneck_bytes_per_sec, 50.0);
    assert_eq!(report.unreachable, ["5"]);
    let t = report.totals;
    assert_eq!(
        (
            t.store_and_forward.synchronous_s,
            t.store_and_forward.asynchronous_s
        ),
        (381.0, 221.0)
    );
    assert_eq!(
        (t.pipelined.synchronous_s, t.pipelined.asynchronous_s),
        (291.0, 131.0)
    );
    assert_eq!((report.mst.weight_s, report.mst.components), (840.0, 1));
    let edges: Vec<_> = report
        .mst
        .edges
        .iter()
        .map(|e| (e.a.as_str(), e.b.as_str()))
        .collect();
    assert_eq!(edges, [("1", "2"), ("1", "5"), ("2", "3"), ("3", "4")]);
    assert_eq!((report.nodes, report.links), (5, 5));
}

/// Widest: 3 via 2 (width 100 > 60): store-and-forward 120 s, pipelined
/// 600/100 + 600/100 + 5400/100 = 66 s. 4 via 3: width 50, 240 s, pipelined
/// 6 + 6 + 12 + 5400/50 = 132 s. Pipelined totals: sync 1 + 60 + 66 + 132 = 259, async 133.
#[test]
fn widest_plan_known_answer() {
    let graph = graph_from_csv(CSV).unwrap();
    let report = plan(&graph, &request(Routing::Widest, &[])).unwrap();
    assert_eq!(report.routing, "widest");
    assert_eq!(
        times(&report),
        [
            ("2", "1", 60.0, 60.0),
            ("3", "2", 120.0, 66.0),
            ("4", "3", 240.0, 132.0)
        ]
    );
    let p = report.totals.pipelined;
    assert_eq!((p.synchronous_s, p.asynchronous_s), (259.0, 133.0));
}

/// Without 2: 3 direct (100 s), 4 at 220 s; MST {1,3} 100 + {3,4} 120 + {1,5} 600 = 820 s.
#[test]
fn removal_recomputes_routes_and_tree() {
    let graph = graph_from_csv(CSV).unwrap();
    let report = plan(&graph, &request(Routing::Widest, &["2"])).unwrap();
    assert_eq!(report.removed, ["2"]);
    assert_eq!(
        times(&report),
        [("3", "1", 100.0, 100.0), ("4", "3", 220.0, 130.0)]
    );
    assert_eq!(report.mst.weight_s, 820.0);
    // Removing 3 cuts 4 off.
    let report = plan(&graph, &request(Routing::Shortest, &["3"])).unwrap();
    assert_eq!(report.unreachable, ["4", "5"]);
    assert_eq!(report.mst.components, 2);
}

#[test]
fn bad_requests_are_errors() {
    let graph = graph_from_csv(CSV).unwrap();
    assert_eq!(
        plan(&graph, &request(Routing::Shortest, &["1"])).unwrap_err(),
        GraphError::SourceRemoved("1".into())
    );
    assert_eq!(
        plan(&graph, &request(Routing::Shortest, &["9"])).unwrap_err(),
        GraphError::UnknownNode("9".into())
    );
    let mut bad = request(Routing::Shortest, &[]);
    bad.source = "7".into();
    assert_eq!(
        plan(&graph, &bad).unwrap_err(),
        GraphError::UnknownNode("7".into())
    );
    bad = request(Routing::Shortest, &[]);
    bad.delay_s = -1.0;
    assert_eq!(
        plan(&graph, &bad).unwrap_err(),
        GraphError::InvalidDelay(-1.0)
    );
    bad = request(Routing::Shortest, &[]);
    bad.size_bytes = 0.0;
    assert_eq!(
        plan(&graph, &bad).unwrap_err(),
        GraphError::InvalidSize(0.0)
    );
}

#[test]
fn output_from_a_file_as_json_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bw.csv");
    std::fs::write(&path, CSV).unwrap();
    let plan_output = |json: bool| {
        plan_file(&path, &request(Routing::Shortest, &[]), &DEFAULT_SHARING)
            .and_then(|report| render(&report, json))
    };
    let json = plan_output(true).unwrap();
    let report: PlanReport = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report,
        plan(
            &graph_from_csv(CSV).unwrap(),
            &request(Routing::Shortest, &[])
        )
        .unwrap()
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["totals"]["store_and_forward"]["synchronous_s"], 381.0);
    assert_eq!(
        value["destinations"][2]["path"],
        serde_json::json!(["1", "3", "4"])
    );

    let table = plan_output(false).unwrap();
    assert_eq!(table, render_table(&report));
    assert!(table.contains("unreachable: 5"), "{table}");
    assert!(table.contains("1>3>4"), "{table}");
    assert!(table.contains("synchronous 381.000000 s"), "{table}");
    assert!(
        table.contains("contended (uplink fastest-link, total unlimited): one after another 281.000000 s  all at once 133.000000 s"),
        "{table}"
    );

    std::fs::write(&path, "from,to,bytes_per_sec\n1,2,100\n1,2,5\n").unwrap();
    let err = plan_output(false).unwrap_err();
    assert_eq!(err.to_string(), format!("parsing {}", path.display()));
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.contains("line 3: link 1 -> 2 duplicates line 2")),
        "{cause:?}"
    );
}

/// The shortest-path tree is 1 -> 2 (100 B/s), 1 -> 3 (60 B/s), 3 -> 4 (50 B/s); 10 chunks of
/// 600 B. Node 1's uplink is its fastest link, 100 B/s, shared by its edges to 2 and 3: 50 B/s
/// each, a chunk every 12 s, both done at 120 s. 3 -> 4 (50 B/s, 12 s a chunk) sends chunk k
/// as soon as 3 has it: 4 is done at 132 s. One after another from each predecessor:
/// 6000/100 + 6000/60 + 6000/50 = 280 s. D_G = 1 s is added to both totals.
#[test]
fn contended_plan_known_answer() {
    let graph = graph_from_csv(CSV).unwrap();
    let report = plan(&graph, &request(Routing::Shortest, &[])).unwrap();
    let contended: Vec<(&str, f64)> = report
        .destinations
        .iter()
        .map(|d| (d.node.as_str(), d.contended_s))
        .collect();
    assert_eq!(contended, [("2", 120.0), ("3", 120.0), ("4", 132.0)]);
    let c = &report.contended;
    assert_eq!((c.asynchronous_s, c.sequential_s), (133.0, 281.0));
    assert_eq!(c.uplink, "fastest-link");
    // Independent links: the contended arrivals are the pipelined predictions (60, 100, 130).
    let free = Sharing {
        uplink: Uplink::Independent,
        total_bytes_per_sec: None,
    };
    let report = plan_with(&graph, &request(Routing::Shortest, &[]), &free).unwrap();
    let pairs: Vec<(f64, f64)> = report
        .destinations
        .iter()
        .map(|d| (d.contended_s, d.pipelined_s))
        .collect();
    assert_eq!(pairs, [(60.0, 60.0), (100.0, 100.0), (130.0, 130.0)]);
    assert_eq!(
        report.contended.asynchronous_s,
        report.totals.pipelined.asynchronous_s
    );
}

/// Round 4's verdict excluded 2 (and a member without links): 2 is removed, 3 is reached
/// directly, and the report names the round and its members.
#[test]
fn a_verdict_removes_its_members() {
    let graph = graph_from_csv(CSV).unwrap();
    let exclusion = RoundExclusion {
        round: 4,
        excluded: vec!["2".into(), "ff".into()],
    };
    let report = plan_for_round(
        &graph,
        &request(Routing::Widest, &[]),
        &super::plan::DEFAULT_SHARING,
        Some(&exclusion),
    )
    .unwrap();
    assert_eq!(report.removed, ["2"]);
    assert_eq!(report.excluded_by_verdict.as_ref(), Some(&exclusion));
    assert_eq!(
        times(&report),
        [("3", "1", 100.0, 100.0), ("4", "3", 220.0, 130.0)]
    );
    assert!(
        render_table(&report).contains("round 4 verdict: excluded 2, ff (removed from routing)")
    );
    let source_excluded = RoundExclusion {
        round: 4,
        excluded: vec!["1".into()],
    };
    let err = plan_for_round(
        &graph,
        &request(Routing::Shortest, &[]),
        &super::plan::DEFAULT_SHARING,
        Some(&source_excluded),
    )
    .unwrap_err();
    assert!(err.to_string().contains("source 1 is excluded"), "{err}");
}
