//! Figures of the peer network, as JSON on stdout (ignored by default; run as root):
//!
//! ```text
//! cargo build -p bcfl-cli --bin bcfl
//! cargo test -p bcfl-tests --test it netns_bench -- --ignored --nocapture
//! ```
//!
//! 1. `throughput`: probe and blob-transfer throughput against the shaped capacity of one link
//!    (transfer: request to the last verified byte; the time to the synced commit is beside it).
//! 2. `multi_hop`: a blob relayed over a chain of equal links, measured against the
//!    store-and-forward (`hops * M / B`) and pipelined (`M / B + (hops - 1) * chunk / B`)
//!    predictions.
//! 3. `distribution`: a blob from a source to all members of a full mesh with random link
//!    rates (`BCFL_BENCH_MEMBERS`, default `5,10,20`), distributed asynchronously (all at once)
//!    and, another blob, synchronously (one member after another in tree order), each measured
//!    beside the seed paper's totals and the contention-aware predictions
//!    (`RouteTree::contended`: links alone, uplinks shared, and all transfers sharing the CPUs'
//!    throughput, calibrated as CPU seconds per delivered byte on the first run), with the CPU
//!    time the nodes used (`/proc/PID/stat`).
//! 4. `routing`: Bellman-Ford time on random graphs of 100 and 1,000 nodes (no namespaces).
//!
//! 5. `shared_uplink`: as `distribution` (asynchronous only, `BCFL_BENCH_SHARED_MEMBERS`,
//!    default `5,10`), but all of a host's links share one uplink as fast as its fastest link
//!    (`Testbed::share_uplink`), measured against the shared-uplink and independent-links
//!    predictions.
//!
//! 6. `anomalous`: the seed paper's Table 1 with measured times (`BCFL_BENCH_ANOMALOUS_MEMBERS`,
//!    default `5,10,20`): a full mesh as in `distribution` where a fifth of the members (the
//!    last ones; at least one) have slow links (2 Mbit both ways: the slow-link attack); the
//!    processor's methods judge a simulated round of those members whose link reports are the
//!    shaped rates, and for each method (none, PageRank, DBSCAN, the modified z-score, the
//!    ensemble, any) a fresh 4 MiB blob is distributed asynchronously from h0 to the members it
//!    keeps, over the links among them, measured beside the paper's pipelined total and the
//!    contention-aware prediction on that graph.
//!
//! 7. `topology`: server against serverless, federated for real (`--features
//!    bcfl-client/train`, `BCFL_MODEL_DIR` set): for `BCFL_BENCH_TOPOLOGY_MEMBERS` (default
//!    `5,10,20`) members and `BCFL_BENCH_TOPOLOGY_PARTITIONS` (default `iid,dirichlet`), a
//!    `bcfl demo` run of 3 rounds per topology in `BCFL_BENCH_TOPOLOGIES` (default
//!    `server,serverless`; server: member 1 aggregates and does not train; serverless: the
//!    centre of the measured graph aggregates): member K's `bcfl node run` in host K-1 of a
//!    full mesh with random 5-50 Mbit links (`--member-host`, `--launcher`), the ledger, the
//!    demo and its coordinator in one more host with 1 Gbit links to every member. Each run's
//!    row: per round the aggregator and its peak memory, accuracy, round latency split into
//!    training and overhead, bytes moved; the members' peak memory. With
//!    `BCFL_BENCH_KEEP=DIR`, each demo's report, its nodes' logs and the figures
//!    (`topology-accuracy-{iid,dirichlet}.svg`, `topology-latency.svg`, `topology-memory.svg`)
//!    are written to `DIR`.
//!
//! `BCFL_BENCH_SECTIONS` (comma-separated, default all) picks the sections to run. With
//! `BCFL_BENCH_KEEP=DIR` the figures are drawn into `DIR`: `distribution.svg` (the seed paper's
//! Figures 6-7: measured asynchronous and synchronous times beside the paper's and the
//! contention-aware predictions), `table1-distribution.svg` (Table 1: the time to the members
//! each method keeps) and the `topology` section's four. `BCFL_BENCH_FROM=FILE` draws them
//! again from an earlier run's output (this test's stdout) without running anything.
//!
//! Links are shaped with `tbf` (and `netem` delay where the kernel has it); see `testbed.rs`.
//!
//! Measured on the 2-core development machine (kernel without netem, so rate shaping only; dev
//! profile; 2026-11-23, the distribution rows again on 2026-12-06 on an idle machine):
//!
//! | figure | shaped / predicted | measured |
//! | --- | --- | --- |
//! | probe throughput, 20 / 100 / 400 Mbit | capacity | 95.6 / 94.6 / 95.4 % |
//! | blob transfer throughput (to last verified byte), same links | capacity | 95.8 / 95.4 / 91.3 % |
//! | 1 hop, 12.5 MB at 100 Mbit, 256 KiB chunks | 1.000 s | 1.051 s |
//! | 3 hops, same, 256 KiB chunks | pipelined 1.042 s, store-and-forward 3.0 s | 1.100 s (+5.6 %) |
//! | 3 hops, same, 1 MiB chunks | pipelined 1.168 s, store-and-forward 3.0 s | 1.255 s (+7.5 %) |
//! | 4 MiB to 5 / 10 / 20 members, asynchronous (20-200 Mbit mesh; idle machine, 2026-12-06, first of three runs) | paper pipelined 0.442 / 0.332 / 0.399 s | 0.489 / 0.444 / 1.022 s |
//! | same, nodes' CPU time (2 cores) | CPU-capped 0.418 / 0.881 s (10 / 20) | 0.37 / 0.79 / 1.64 CPU-s |
//! | same, synchronous (tree order, from each predecessor's copy) | sequential 1.161 / 1.984 / 4.837 s; paper pipelined 1.324 / 2.027 / 5.017 s | 1.255 / 2.143 / 5.226 s |
//! | 4 MiB to 5 / 10 members, asynchronous, shared uplinks | shared-uplink 0.611 / 0.887 s (independent 0.442 / 0.332 s) | 0.736 / 1.003 s |
//! | 4 MiB to the members PageRank keeps, 5 / 10 / 20 members, a fifth on 2 Mbit links (2026-12-03) | pipelined 0.289 / 0.442 / 0.425 s | 0.317 / 0.570 / 1.057 s (20: CPU shared with a training run) |
//! | same, keeping everyone (no method, or the ensemble, which cannot see links) | pipelined 16.78 s | 17.51 / 17.58 / 17.68 s |
//! | Bellman-Ford, 100 nodes / 9,900 links | | 0.27 ms |
//! | Bellman-Ford, 1,000 nodes / 20,000 and 999,000 links | | 10 ms / 26 ms |
//!
//! In this test bed every link is shaped on its own, so the contention-aware prediction with
//! independent links equals the paper's pipelined one; the gap at 10 and 20 members is CPU: the
//! nodes spend 0.021-0.023 CPU-s per delivered MiB, 1.6 CPU-s for 20 members, more than the
//! 0.4 s the links need on 2 cores. Where a host's links share one uplink, the shared-uplink
//! prediction is within 12-23 %.

use std::time::Instant;

use bcfl_processor::graph::{BandwidthGraph, DistributionTotals, Sharing, TransferModel, Uplink};
use serde_json::{json, Value};

use crate::testbed::{Shape, Testbed};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn blob(bed: &Testbed, name: &str, len: usize, seed: u32) -> (std::path::PathBuf, String) {
    let data: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect();
    let path = bed.dir().join(name);
    std::fs::write(&path, &data).unwrap();
    (path, sha256_hex(&data))
}

fn shape(mbit: f64) -> Shape {
    Shape {
        mbit,
        delay_ms: 1.0,
    }
}

/// A deterministic pseudo-random sequence (64-bit LCG), for reproducible topologies.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A `members` x `members` matrix of link rates in Mbit, whole numbers drawn uniformly from
/// `low..=high` by an [`Lcg`] seeded with `seed`, row by row (the diagonal is drawn and unused).
fn random_rates(members: usize, seed: u64, low: f64, high: f64) -> Vec<Vec<f64>> {
    let mut lcg = Lcg(seed);
    (0..members)
        .map(|_| {
            (0..members)
                .map(|_| (low + (high - low) * lcg.next()).round())
                .collect()
        })
        .collect()
}

fn csv(bed: &Testbed, rate: impl Fn(usize, usize) -> Option<f64>) -> std::path::PathBuf {
    let mut text = String::from("from,to,bytes_per_sec\n");
    for i in 0..bed.len() {
        for j in 0..bed.len() {
            if let Some(r) = rate(i, j).filter(|_| i != j) {
                text.push_str(&format!("h{i},h{j},{}\n", shape(r).bytes_per_sec()));
            }
        }
    }
    let path = bed.dir().join("capacity.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn throughput() -> Vec<Value> {
    let mut rows = Vec::new();
    for mbit in [20.0, 100.0, 400.0] {
        let mut bed = Testbed::new(2);
        bed.link(0, 1, shape(mbit), shape(mbit));
        let capacity = shape(mbit).bytes_per_sec();
        let size = (2.0 * capacity) as usize; // about two seconds of traffic
        let (file, sha) = blob(&bed, "blob.bin", size, 1);
        bed.serve(0, 256 * 1024, &[file]);
        bed.serve(1, 256 * 1024, &[]);
        let mut args = strings(&["node", "probe", "--me", "h0", "--bytes", &size.to_string()]);
        args.extend(bed.peer_args());
        let (ok, probe, stderr) = bed.bcfl(0, &args);
        assert!(ok, "{stderr}");
        let probed = probe["links"][0]["bytes_per_sec"].as_f64().unwrap();
        let capacity_csv = csv(&bed, |_, _| Some(mbit));
        let mut args = strings(&[
            "node",
            "fetch",
            "--sha256",
            &sha,
            "--to",
            "h1",
            "--holders",
            "h0",
        ]);
        args.extend(["--bandwidth".into(), capacity_csv.display().to_string()]);
        args.extend(bed.peer_args());
        let (ok, fetch, stderr) = bed.bcfl(1, &args);
        assert!(ok, "{stderr}");
        let seconds = fetch["report"]["seconds"].as_f64().unwrap();
        let receive = fetch["report"]["receive_seconds"].as_f64().unwrap();
        let transfer = size as f64 / receive;
        rows.push(json!({
            "shaped_mbit": mbit,
            "capacity_bytes_per_sec": capacity,
            "bytes": size,
            "probe_bytes_per_sec": probed,
            "probe_ratio": probed / capacity,
            "transfer_seconds_to_last_byte": receive,
            "transfer_seconds_to_commit": seconds,
            "transfer_bytes_per_sec": transfer,
            "transfer_ratio": transfer / capacity,
        }));
    }
    rows
}

fn multi_hop() -> Vec<Value> {
    let mut rows = Vec::new();
    let mbit = 100.0;
    for (hops, chunk) in [(1usize, 256 * 1024u64), (3, 256 * 1024), (3, 1 << 20)] {
        let mut bed = Testbed::new(hops + 1);
        for i in 0..hops {
            bed.link(i, i + 1, shape(mbit), shape(mbit));
        }
        if hops > 1 {
            // A control link only: the receiver's CLI reads the manifest from the source over
            // it; the data follows the chain, the only links in the bandwidth file.
            bed.link(hops, 0, shape(mbit), shape(mbit));
        }
        let b = shape(mbit).bytes_per_sec();
        let size = b as usize; // one second per link
        let (file, sha) = blob(&bed, "blob.bin", size, 2);
        bed.serve(0, chunk, &[file]);
        for i in 1..=hops {
            bed.serve(i, chunk, &[]);
        }
        let capacity_csv = csv(&bed, |i, j| (i + 1 == j).then_some(mbit));
        let to = format!("h{hops}");
        let mut args = strings(&[
            "node",
            "fetch",
            "--sha256",
            &sha,
            "--to",
            &to,
            "--holders",
            "h0",
        ]);
        args.extend(["--bandwidth".into(), capacity_csv.display().to_string()]);
        args.extend(bed.peer_args());
        let (ok, fetch, stderr) = bed.bcfl(hops, &args);
        assert!(ok, "{stderr}");
        let measured = fetch["report"]["receive_seconds"].as_f64().unwrap();
        let committed = fetch["report"]["seconds"].as_f64().unwrap();
        let model = TransferModel::new(size as f64, chunk as f64).unwrap();
        let links = vec![b; hops];
        let pipelined = model.pipelined(&links);
        let store_and_forward = model.store_and_forward(&links);
        rows.push(json!({
            "hops": hops,
            "shaped_mbit": mbit,
            "bytes": size,
            "chunk_bytes": chunk,
            "path": fetch["attempts"][0]["path"],
            "measured_s": measured,
            "measured_to_commit_s": committed,
            "pipelined_s": pipelined,
            "store_and_forward_s": store_and_forward,
            "measured_over_pipelined": measured / pipelined,
        }));
    }
    rows
}

/// One distribution run through the CLI, with the nodes' CPU time and the machine's.
struct Run {
    report: Value,
    node_cpu_s: f64,
    /// The busiest node's CPU seconds, and its host.
    busiest_node: (usize, f64),
    /// The share of all the machine's CPUs busy (anyone's work) during the run.
    machine_busy: f64,
    wall_s: f64,
}

/// (busy, total) jiffies of all CPUs from `/proc/stat`.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return (0.0, 0.0);
    };
    let values: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().sum();
    // idle and iowait are the 4th and 5th values.
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

fn distribute(bed: &Testbed, sha: &str, mode: &str, capacity_csv: &std::path::Path) -> Run {
    let mut args = strings(&[
        "node",
        "distribute",
        "--sha256",
        sha,
        "--source",
        "h0",
        "--mode",
        mode,
    ]);
    args.extend(["--bandwidth".into(), capacity_csv.display().to_string()]);
    args.extend(bed.peer_args());
    let cpu_before = bed.node_cpu_seconds();
    let (busy_before, total_before) = machine_jiffies();
    let started = Instant::now();
    let (ok, report, stderr) = bed.bcfl(0, &args);
    let wall_s = started.elapsed().as_secs_f64();
    let (busy_after, total_after) = machine_jiffies();
    assert!(ok, "{stderr}");
    let used: Vec<f64> = bed
        .node_cpu_seconds()
        .iter()
        .zip(&cpu_before)
        .map(|(after, before)| after - before)
        .collect();
    let busiest_node =
        used.iter().copied().enumerate().fold(
            (0, 0.0),
            |best, (i, c)| if c > best.1 { (i, c) } else { best },
        );
    Run {
        report,
        node_cpu_s: used.iter().sum(),
        busiest_node,
        machine_busy: (busy_after - busy_before) / (total_after - total_before).max(1.0),
        wall_s,
    }
}

/// The contention-aware predictions of `tree`: links alone, uplinks shared, and all transfers
/// sharing the CPUs' throughput (`cpu_bytes_per_sec`, when calibrated).
fn contended(
    graph: &BandwidthGraph,
    tree: &bcfl_processor::graph::RouteTree,
    cpu_bytes_per_sec: Option<f64>,
) -> Value {
    let mut out = serde_json::Map::new();
    let cases = [
        ("independent_links", Uplink::Independent, None),
        ("shared_uplink", Uplink::FastestLink, None),
        (
            "independent_links_cpu_capped",
            Uplink::Independent,
            cpu_bytes_per_sec,
        ),
    ];
    for (name, uplink, total) in cases {
        if name.ends_with("cpu_capped") && total.is_none() {
            continue;
        }
        let sharing = Sharing {
            uplink,
            total_bytes_per_sec: total,
        };
        let c = tree.contended(graph, &sharing).unwrap();
        out.insert(
            name.into(),
            json!({
                "asynchronous_s": c.asynchronous_s,
                "sequential_s": c.sequential_s,
                "total_bytes_per_sec": total,
            }),
        );
    }
    Value::Object(out)
}

/// The message and chunk sizes of the distribution figures: 4 MiB in 256 KiB chunks.
const DISTRIBUTION_BYTES: usize = 4 << 20;
const DISTRIBUTION_CHUNK: u64 = 256 * 1024;

/// A full mesh of `members` with random 20-200 Mbit links, every node serving, h0 holding two
/// 4 MiB blobs; with `shared_uplink`, all of a host's links share an uplink as fast as its
/// fastest link. Returns the bed, the rates (Mbit), the blobs' ids and the capacity edge list.
fn mesh(
    members: usize,
    shared_uplink: bool,
) -> (Testbed, Vec<Vec<f64>>, [String; 2], std::path::PathBuf) {
    let mut bed = Testbed::new(members);
    let rates = random_rates(members, members as u64, 20.0, 200.0);
    bed.full_mesh(|i, j| shape(rates[i][j]));
    if shared_uplink {
        for (i, row) in rates.iter().enumerate() {
            let fastest = row
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, r)| *r)
                .fold(0.0, f64::max);
            bed.share_uplink(i, fastest);
        }
    }
    let (file_a, sha_a) = blob(&bed, "a.bin", DISTRIBUTION_BYTES, 3);
    let (file_b, sha_b) = blob(&bed, "b.bin", DISTRIBUTION_BYTES, 4);
    bed.serve(0, DISTRIBUTION_CHUNK, &[file_a, file_b]);
    for i in 1..members {
        bed.serve(i, DISTRIBUTION_CHUNK, &[]);
    }
    let capacity_csv = csv(&bed, |i, j| Some(rates[i][j]));
    (bed, rates, [sha_a, sha_b], capacity_csv)
}

/// The graph of `rates` (Mbit) in bytes per second, and its shortest-path tree from h0.
fn mesh_tree(rates: &[Vec<f64>]) -> (BandwidthGraph, bcfl_processor::graph::RouteTree) {
    let hosts: Vec<usize> = (0..rates.len()).collect();
    hosts_tree(rates, &hosts)
}

/// The graph of `rates` (Mbit) among `hosts` only (h0 among them), and its shortest-path tree
/// from h0.
fn hosts_tree(
    rates: &[Vec<f64>],
    hosts: &[usize],
) -> (BandwidthGraph, bcfl_processor::graph::RouteTree) {
    let graph = BandwidthGraph::from_links(
        hosts
            .iter()
            .flat_map(|&i| hosts.iter().map(move |&j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| {
                (
                    format!("h{i}"),
                    format!("h{j}"),
                    shape(rates[i][j]).bytes_per_sec(),
                )
            }),
    )
    .unwrap();
    let model = TransferModel::new(DISTRIBUTION_BYTES as f64, DISTRIBUTION_CHUNK as f64).unwrap();
    let tree = graph.shortest_paths("h0", &model).unwrap();
    (graph, tree)
}

/// The slowest delivery of a run.
fn slowest(run: &Run) -> f64 {
    slowest_delivery(&run.report)
}

/// The slowest delivery in a `node distribute --json` report.
fn slowest_delivery(report: &Value) -> f64 {
    report["measured"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["seconds"].as_f64())
        .fold(0.0, f64::max)
}

/// Every host's links share one uplink (as fast as its fastest link): an asynchronous
/// distribution measured against the shared-uplink and the independent-links predictions.
fn shared_uplink(members: usize) -> Value {
    let (bed, rates, [sha, _], capacity_csv) = mesh(members, true);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let run = distribute(&bed, &sha, "async", &capacity_csv);
    let (graph, tree) = mesh_tree(&rates);
    let drops: Vec<Option<u64>> = (0..members).map(|i| bed.uplink_drops(i)).collect();
    json!({
        "uplink_drops_by_host": drops,
        "members": members,
        "loadavg_before": load_before.trim(),
        "measured_async_s": slowest(&run),
        "node_cpu_s": run.node_cpu_s,
        "machine_cpu_busy_share": run.machine_busy,
        "contended": contended(&graph, &tree, None),
    })
}

/// A full mesh of `members` with random 20-200 Mbit links; one 4 MiB blob distributed
/// asynchronously, another synchronously, each beside its predictions. `cpu_per_byte`: CPU
/// seconds per delivered byte calibrated on an earlier run, for the CPU-capped prediction.
fn distribution(members: usize, cpu_per_byte: Option<f64>) -> (Value, f64) {
    let (bed, rates, [sha_async, sha_sync], capacity_csv) = mesh(members, false);
    let (size, chunk) = (DISTRIBUTION_BYTES, DISTRIBUTION_CHUNK);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let run_async = distribute(&bed, &sha_async, "async", &capacity_csv);
    let run_sync = distribute(&bed, &sha_sync, "sync", &capacity_csv);
    let (graph, tree) = mesh_tree(&rates);
    let routes = tree.routes();
    let saf = DistributionTotals::store_and_forward(&routes, 0.0).unwrap();
    let pipe = DistributionTotals::pipelined(&routes, 0.0).unwrap();
    let deliveries = |run: &Run| -> Vec<Value> {
        run.report["measured"]["deliveries"]
            .as_array()
            .unwrap()
            .clone()
    };
    let slowest = slowest(&run_async);
    let sync_total = run_sync.report["measured"]["seconds"].as_f64().unwrap();
    let sync_transfers: f64 = deliveries(&run_sync)
        .iter()
        .filter_map(|d| d["transfer_seconds"].as_f64())
        .sum();
    let max_hops = routes.iter().map(|r| r.hops()).max().unwrap_or(0);
    let fan_out = {
        let mut children = std::collections::BTreeMap::<String, usize>::new();
        for r in &routes {
            *children.entry(r.predecessor.to_string()).or_default() += 1;
        }
        children.into_values().max().unwrap_or(0)
    };
    let delivered_bytes = (size * (members - 1)) as f64;
    let measured_cpu_per_byte = run_async.node_cpu_s / delivered_bytes;
    let cpu_bytes_per_sec = cpu_per_byte.map(|c| cores / c);
    let figures = json!({
        "members": members,
        "bytes": size,
        "chunk_bytes": chunk,
        "max_hops": max_hops,
        "max_children_of_one_node": fan_out,
        "loadavg_before": load_before.trim(),
        "asynchronous": {
            "measured_s": slowest,
            "measured_wall_s_including_cli": run_async.wall_s,
            "node_cpu_s": run_async.node_cpu_s,
            "busiest_node": { "host": run_async.busiest_node.0, "cpu_s": run_async.busiest_node.1 },
            "machine_cpu_busy_share": run_async.machine_busy,
            "cpu_bound_floor_s": run_async.node_cpu_s / cores,
            "predicted_store_and_forward_s": saf.asynchronous_s,
            "predicted_pipelined_s": pipe.asynchronous_s,
        },
        "synchronous": {
            "measured_s": sync_total,
            "measured_sum_of_transfers_s": sync_transfers,
            "measured_wall_s_including_cli": run_sync.wall_s,
            "node_cpu_s": run_sync.node_cpu_s,
            "machine_cpu_busy_share": run_sync.machine_busy,
            "per_transfer_overhead_s": (sync_total - tree.contended(&graph, &Sharing::INDEPENDENT).unwrap().sequential_s)
                / (members - 1) as f64,
            "predicted_paper_store_and_forward_s": saf.synchronous_s,
            "predicted_paper_pipelined_s": pipe.synchronous_s,
        },
        "contended": contended(&graph, &tree, cpu_bytes_per_sec),
        "cpu": {
            "cores": cores,
            "measured_cpu_s_per_delivered_mib": measured_cpu_per_byte * 1_048_576.0,
            "calibrated_cpu_s_per_delivered_mib": cpu_per_byte.map(|c| c * 1_048_576.0),
            "cpu_bytes_per_sec_used_for_cap": cpu_bytes_per_sec,
        },
    });
    (figures, measured_cpu_per_byte)
}

/// The methods of the seed paper's table, as the processor's configurations (`None`: no
/// detection).
fn table_methods() -> Vec<(&'static str, Option<bcfl_protos::bcfl::AnomalyConfig>)> {
    use bcfl_processor::anomaly::default_config;
    vec![
        ("none", None),
        ("pagerank", Some(default_config(true, false, false, 1))),
        ("dbscan", Some(default_config(false, true, false, 1))),
        ("zscore", Some(default_config(false, false, true, 1))),
        ("ensemble", Some(default_config(true, true, true, 2))),
        ("any", Some(default_config(true, true, true, 1))),
    ]
}

/// See the module docs (`anomalous`): one row per method for `members` hosts.
fn anomalous_distribution(members: usize) -> Value {
    use bcfl_processor::anomaly::attack::AttackKind;
    use bcfl_processor::anomaly::simulate::{simulate_round, Scenario};
    use bcfl_processor::anomaly::{evaluate, MemberData};
    use bcfl_protos::bcfl as pb;

    let slow_count = (members / 5).max(1);
    let slow = |i: usize| i >= members - slow_count;
    let mut rates = random_rates(members, members as u64 + 77, 20.0, 200.0);
    for (i, row) in rates.iter_mut().enumerate() {
        for (j, r) in row.iter_mut().enumerate() {
            if slow(i) || slow(j) {
                *r = 2.0;
            }
        }
    }
    let mut bed = Testbed::new(members);
    bed.full_mesh(|i, j| shape(rates[i][j]));
    let methods = table_methods();
    let blobs: Vec<(std::path::PathBuf, String)> = (0..methods.len())
        .map(|k| {
            blob(
                &bed,
                &format!("m{k}.bin"),
                DISTRIBUTION_BYTES,
                10 + k as u32,
            )
        })
        .collect();
    let files: Vec<std::path::PathBuf> = blobs.iter().map(|(f, _)| f.clone()).collect();
    bed.serve(0, DISTRIBUTION_CHUNK, &files);
    for i in 1..members {
        bed.serve(i, DISTRIBUTION_CHUNK, &[]);
    }

    // The round's evidence: a simulated round's commitments (its slow-link attackers' updates
    // are honest), renamed so that its attackers are the slow hosts, and the shaped rates as
    // every member's link reports.
    let round = simulate_round(&Scenario {
        members,
        attackers: slow_count,
        attack: AttackKind::SlowLink,
        seed: members as u64,
    })
    .unwrap();
    let (mut honest, mut attackers): (Vec<pb::Commitment>, Vec<pb::Commitment>) = round
        .commitments
        .into_iter()
        .partition(|c| !round.attackers.contains(&c.member));
    honest.append(&mut attackers);
    let commitments: Vec<pb::Commitment> = honest
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.member = format!("h{i}");
            c
        })
        .collect();
    let links: Vec<pb::Link> = (0..members)
        .flat_map(|i| (0..members).map(move |j| (i, j)))
        .filter(|(i, j)| i != j)
        .map(|(i, j)| pb::Link {
            from: format!("h{i}"),
            to: format!("h{j}"),
            samples: vec![pb::LinkSample {
                epoch: 1,
                bytes_per_sec: shape(rates[i][j]).bytes_per_sec() as u64,
                rtt_us: 2000,
                probe_bytes: 1 << 20,
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        })
        .collect();
    let data = MemberData::from_evidence(&commitments, &links, &Default::default(), 0);
    let host = |key: &str| key.trim_start_matches('h').parse::<usize>().unwrap();

    let mut rows = Vec::new();
    for ((name, config), (_, sha)) in methods.iter().zip(&blobs) {
        let excluded: Vec<usize> = match config {
            None => Vec::new(),
            Some(c) => evaluate(c, &data)
                .unwrap()
                .excluded
                .iter()
                .map(|k| host(k))
                .collect(),
        };
        // h0 holds the model and sends it whatever the verdict says of it.
        let kept: Vec<usize> = (0..members)
            .filter(|i| *i == 0 || !excluded.contains(i))
            .collect();
        let capacity_csv = csv(&bed, |i, j| {
            (kept.contains(&i) && kept.contains(&j)).then_some(rates[i][j])
        });
        let mut args = strings(&[
            "node",
            "distribute",
            "--sha256",
            sha,
            "--source",
            "h0",
            "--mode",
            "async",
        ]);
        args.extend(["--bandwidth".into(), capacity_csv.display().to_string()]);
        for &i in &kept {
            args.extend(["--peer".to_owned(), format!("h{i}={}", bed.url(i))]);
        }
        let started = Instant::now();
        let (ok, report, stderr) = bed.bcfl(0, &args);
        let wall_s = started.elapsed().as_secs_f64();
        assert!(ok, "{name}: {stderr}");
        let measured = slowest_delivery(&report);
        let (pipelined, contended_s) = if kept.len() > 1 {
            let (graph, tree) = hosts_tree(&rates, &kept);
            let pipe = DistributionTotals::pipelined(&tree.routes(), 0.0).unwrap();
            let c = tree.contended(&graph, &Sharing::INDEPENDENT).unwrap();
            (pipe.asynchronous_s, c.asynchronous_s)
        } else {
            (0.0, 0.0)
        };
        rows.push(json!({
            "method": name,
            "excluded_hosts": excluded,
            "slow_hosts_excluded": excluded.iter().filter(|i| slow(**i)).count(),
            "recipients": kept.len() - 1,
            "measured_async_s": measured,
            "measured_wall_s_including_cli": wall_s,
            "predicted_pipelined_s": pipelined,
            "predicted_contended_s": contended_s,
        }));
    }
    json!({
        "members": members,
        "slow_hosts": (members - slow_count..members).collect::<Vec<_>>(),
        "bytes": DISTRIBUTION_BYTES,
        "rows": rows,
    })
}

fn routing() -> Vec<Value> {
    let mut rows = Vec::new();
    for (nodes, out_degree) in [(100usize, 99usize), (1000, 20), (1000, 999)] {
        let mut lcg = Lcg(nodes as u64 * 7 + out_degree as u64);
        let mut links = Vec::new();
        for i in 0..nodes {
            for k in 1..=out_degree {
                let j = (i + k * 7919) % nodes;
                if j != i {
                    links.push((format!("n{i}"), format!("n{j}"), 1e6 + 1e8 * lcg.next()));
                }
            }
        }
        links.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        links.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        let edges = links.len();
        let graph = BandwidthGraph::from_links(links).unwrap();
        let model = TransferModel::new(1e8, 1e6).unwrap();
        let started = Instant::now();
        let tree = graph.shortest_paths("n0", &model).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        rows.push(json!({
            "nodes": nodes,
            "edges": edges,
            "bellman_ford_s": seconds,
            "reached": nodes - tree.unreachable().len(),
            "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        }));
    }
    rows
}

/// The distribution figures for `BCFL_BENCH_MEMBERS` (default 5, 10, 20). The CPU cost per
/// delivered byte is calibrated on the first run and predicts the CPU-capped times of the later
/// ones.
fn distributions() -> Vec<Value> {
    let members = std::env::var("BCFL_BENCH_MEMBERS").unwrap_or_else(|_| "5,10,20".into());
    let mut calibration = None;
    let mut rows = Vec::new();
    for m in members.split(',') {
        let (row, cpu_per_byte) =
            distribution(m.trim().parse().expect("member counts"), calibration);
        calibration.get_or_insert(cpu_per_byte);
        rows.push(row);
    }
    rows
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture, as root"]
fn peer_network_figures() {
    let sections = std::env::var("BCFL_BENCH_SECTIONS").unwrap_or_else(|_| {
        "routing,throughput,multi_hop,distribution,shared_uplink,anomalous,topology".into()
    });
    let wanted = |name: &str| sections.split(',').any(|s| s.trim() == name);
    let keep = std::env::var_os("BCFL_BENCH_KEEP").map(std::path::PathBuf::from);
    if let Some(file) = std::env::var_os("BCFL_BENCH_FROM") {
        // Figures again from an earlier run's output, without running anything.
        let text = std::fs::read_to_string(&file).expect("the earlier output");
        let start = text.find('{').expect("a JSON document");
        // The document, then whatever the test harness printed after it.
        let earlier: Value = serde_json::Deserializer::from_str(&text[start..])
            .into_iter()
            .next()
            .and_then(Result::ok)
            .expect("the earlier output");
        let dir = keep.expect("BCFL_BENCH_KEEP: where to draw the figures");
        draw_figures(&earlier, &dir);
        return;
    }
    let mut figures = json!({});
    if wanted("routing") {
        figures["routing"] = json!(routing());
    }
    match Testbed::available() {
        Err(reason) => figures["skipped_netns"] = json!(reason),
        Ok(()) => {
            figures["netem_delay"] = json!(Testbed::new(1).has_netem());
            if wanted("throughput") {
                figures["throughput"] = json!(throughput());
            }
            if wanted("multi_hop") {
                figures["multi_hop"] = json!(multi_hop());
            }
            if wanted("distribution") {
                figures["distribution"] = json!(distributions());
            }
            if wanted("shared_uplink") {
                let members =
                    std::env::var("BCFL_BENCH_SHARED_MEMBERS").unwrap_or_else(|_| "5,10".into());
                figures["shared_uplink"] = members
                    .split(',')
                    .map(|m| shared_uplink(m.trim().parse().expect("member counts")))
                    .collect();
            }
            if wanted("topology") {
                figures["topology"] = topologies();
            }
            if wanted("anomalous") {
                let members = std::env::var("BCFL_BENCH_ANOMALOUS_MEMBERS")
                    .unwrap_or_else(|_| "5,10,20".into());
                figures["anomalous"] = members
                    .split(',')
                    .map(|m| anomalous_distribution(m.trim().parse().expect("member counts")))
                    .collect();
            }
        }
    }
    if let Some(dir) = &keep {
        draw_figures(&figures, dir);
    }
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
}

/// The figures of the sections `figures` holds (this test's output), drawn into `dir`:
/// `distribution.svg`, `table1-distribution.svg` and the `topology` section's four.
fn draw_figures(figures: &Value, dir: &std::path::Path) {
    if let Some(rows) = figures["distribution"].as_array() {
        distribution_figure(rows, dir);
    }
    if let Some(rows) = figures["anomalous"].as_array() {
        anomalous_figure(rows, dir);
    }
    if let Some(rows) = figures["topology"].as_array() {
        topology_figures(rows, dir);
    }
}

/// One curve per `(label, value)` against the number of members, one point per row that has
/// the value (the figures of the `distribution` and `anomalous` sections).
fn member_curves(
    rows: &[Value],
    series: &[(&str, impl Fn(&Value) -> Option<f64>)],
) -> Vec<bcfl_client::figures::Curve> {
    series
        .iter()
        .map(|(label, value)| bcfl_client::figures::Curve {
            label: (*label).to_owned(),
            points: rows
                .iter()
                .filter_map(|r| Some((r["members"].as_u64()?, value(r)?)))
                .collect(),
        })
        .filter(|c| !c.points.is_empty())
        .collect()
}

/// Writes `curves` of seconds against the number of members to `path`.
fn seconds_figure(path: &std::path::Path, title: &str, curves: &[bcfl_client::figures::Curve]) {
    use bcfl_client::figures::{curves_svg, YAxis};
    let svg = curves_svg(title, "members", YAxis::Number("seconds"), curves, &[]).unwrap();
    std::fs::write(path, svg).unwrap();
}

/// `distribution.svg`: the seed paper's Figures 6-7 measured, the slowest delivery of a 4 MiB
/// blob to every member, asynchronously and synchronously, beside the paper's pipelined totals
/// and the contention-aware prediction with the CPUs' throughput as a cap.
fn distribution_figure(rows: &[Value], dir: &std::path::Path) {
    let at = |path: &'static [&'static str]| {
        move |r: &Value| path.iter().fold(r, |v, key| &v[*key]).as_f64()
    };
    let series = [
        ("async, measured", at(&["asynchronous", "measured_s"])),
        ("sync, measured", at(&["synchronous", "measured_s"])),
        (
            "async, paper",
            at(&["asynchronous", "predicted_pipelined_s"]),
        ),
        (
            "sync, paper",
            at(&["synchronous", "predicted_paper_pipelined_s"]),
        ),
        (
            "async, CPU-capped",
            at(&[
                "contended",
                "independent_links_cpu_capped",
                "asynchronous_s",
            ]),
        ),
    ];
    seconds_figure(
        &dir.join("distribution.svg"),
        "4 MiB from one member to all (paper: pipelined totals)",
        &member_curves(rows, &series),
    );
}

/// `table1-distribution.svg`: the seed paper's Table 1 measured, the asynchronous distribution
/// of a 4 MiB blob to the members each anomaly method keeps, a fifth of them on slow links.
fn anomalous_figure(rows: &[Value], dir: &std::path::Path) {
    let series: Vec<_> = table_methods()
        .into_iter()
        .map(|(method, _)| {
            let value = move |r: &Value| {
                r["rows"]
                    .as_array()?
                    .iter()
                    .find(|x| x["method"] == method)?["measured_async_s"]
                    .as_f64()
            };
            (method, value)
        })
        .collect();
    seconds_figure(
        &dir.join("table1-distribution.svg"),
        "4 MiB to the members each method keeps (a fifth on 2 Mbit links)",
        &member_curves(rows, &series),
    );
}

/// Rounds of each `topology` run.
const TOPOLOGY_ROUNDS: u64 = 3;

/// One federated run for the `topology` section: `bcfl demo` with `members` member processes
/// across the test bed ([`Testbed::federation`]), on a full mesh with random 5-50 Mbit links
/// (the same for every run of that size), the nodes' logs copied to `logs`. Returns the run's
/// row and the demo's report.
fn federated_run(
    members: usize,
    partition: &str,
    topology: &str,
    logs: Option<&std::path::Path>,
) -> Result<(Value, Value), String> {
    let model_dir = std::env::var("BCFL_MODEL_DIR")
        .map_err(|_| "BCFL_MODEL_DIR is not set (source scripts/env.sh)".to_owned())?;
    let rates = random_rates(members, 1000 + members as u64, 5.0, 50.0);
    let started = Instant::now();
    let mut args = strings(&["--rounds", &TOPOLOGY_ROUNDS.to_string()]);
    args.extend(strings(&["--partition", partition, "--topology", topology]));
    args.extend(strings(&[
        "--probe-bytes",
        "262144",
        "--model-dir",
        &model_dir,
    ]));
    let report = Testbed::federation(members, |i, j| shape(rates[i][j]), &args, logs)?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = |name: &str| {
        report["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["peak_rss_bytes"].as_u64())
            .unwrap_or(0)
    };
    let mut peaks: Vec<u64> = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["peak_rss_bytes"].as_u64())
        .collect();
    peaks.sort_unstable();
    let rounds: Vec<Value> = report["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let aggregator = r["aggregator"].as_str().unwrap_or_default();
            json!({
                "round": r["round"],
                "aggregator": aggregator,
                "aggregator_peak_rss_bytes": peak(aggregator),
                "accuracy": r["accuracy"],
                "macro_f1": r["macro_f1"],
                "round_s": r["timings"]["round_s"],
                "train_s": r["timings"]["train_s"],
                "overhead_s": r["timings"]["overhead_s"],
                "fetch_s": r["timings"]["fetch_s"],
                "distribute_s": r["timings"]["distribute_s"],
                "bytes_moved": r["bytes_moved"],
                "excluded": r["excluded"],
            })
        })
        .collect();
    let row = json!({
        "members": members,
        "partition": partition,
        "topology": topology,
        "rounds": rounds,
        "peak_rss_bytes": {
            "median": peaks[peaks.len() / 2],
            "max": peaks.last(),
        },
        "seconds": seconds,
        "links_mbit": "5-50 random full mesh, ledger host 1000",
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    Ok((row, report))
}

/// The `topology` section: server against serverless for `BCFL_BENCH_TOPOLOGY_MEMBERS`
/// (default 5, 10, 20), IID and Dirichlet shards; with `BCFL_BENCH_KEEP=DIR` each demo's report
/// is also written to `DIR/topology-<members>-<partition>-<topology>.json` (for `bcfl fl plot`),
/// its nodes' logs to `DIR/topology-<members>-<partition>-<topology>-logs/`.
fn topologies() -> Value {
    let members = std::env::var("BCFL_BENCH_TOPOLOGY_MEMBERS").unwrap_or_else(|_| "5,10,20".into());
    let partitions =
        std::env::var("BCFL_BENCH_TOPOLOGY_PARTITIONS").unwrap_or_else(|_| "iid,dirichlet".into());
    let topologies =
        std::env::var("BCFL_BENCH_TOPOLOGIES").unwrap_or_else(|_| "server,serverless".into());
    let keep = std::env::var_os("BCFL_BENCH_KEEP").map(std::path::PathBuf::from);
    let mut rows = Vec::new();
    for m in members.split(',') {
        let m: usize = m.trim().parse().expect("member counts");
        for partition in partitions.split(',').map(str::trim) {
            for topology in topologies.split(',').map(str::trim) {
                let name = format!("topology-{m}-{partition}-{topology}");
                let logs = keep.as_ref().map(|dir| dir.join(format!("{name}-logs")));
                match federated_run(m, partition, topology, logs.as_deref()) {
                    Ok((row, report)) => {
                        eprintln!("{row}");
                        if let Some(dir) = &keep {
                            let file = dir.join(format!("{name}.json"));
                            std::fs::write(&file, serde_json::to_string_pretty(&report).unwrap())
                                .unwrap();
                        }
                        rows.push(row);
                    }
                    Err(reason) => {
                        eprintln!("{reason}");
                        rows.push(json!({
                            "members": m,
                            "partition": partition,
                            "topology": topology,
                            "error": reason,
                        }));
                    }
                }
            }
        }
    }
    json!(rows)
}

/// The `topology` section's figures in `dir`: accuracy per round (one chart per partition),
/// and against the number of members the mean round latency and the aggregators' largest peak
/// memory.
fn topology_figures(rows: &[Value], dir: &std::path::Path) {
    use bcfl_client::figures::{curves_svg, Curve, YAxis};
    let ok: Vec<&Value> = rows.iter().filter(|r| r["error"].is_null()).collect();
    let label = |r: &Value| {
        format!(
            "{}, {}",
            r["topology"].as_str().unwrap(),
            r["partition"].as_str().unwrap()
        )
    };
    let write = |name: &str, svg: String| {
        std::fs::write(dir.join(name), svg).unwrap();
    };
    for partition in ["iid", "dirichlet"] {
        let curves: Vec<Curve> = ok
            .iter()
            .filter(|r| r["partition"] == partition)
            .map(|r| Curve {
                label: format!("{} {}", r["topology"].as_str().unwrap(), r["members"]),
                points: r["rounds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|x| Some((x["round"].as_u64()?, x["accuracy"].as_f64()?)))
                    .collect(),
            })
            .collect();
        if !curves.is_empty() {
            let title = format!("Server and serverless, {partition} shards: accuracy per round");
            write(
                &format!("topology-accuracy-{partition}.svg"),
                curves_svg(&title, "round", YAxis::Fraction("accuracy"), &curves, &[]).unwrap(),
            );
        }
    }
    let by_label = |value: &dyn Fn(&Value) -> f64| {
        let mut curves: Vec<Curve> = Vec::new();
        for r in &ok {
            let point = (r["members"].as_u64().unwrap(), value(r));
            match curves.iter_mut().find(|c| c.label == label(r)) {
                Some(c) => c.points.push(point),
                None => curves.push(Curve {
                    label: label(r),
                    points: vec![point],
                }),
            }
        }
        curves
    };
    let mean_round_s = |r: &Value| {
        let rounds = r["rounds"].as_array().unwrap();
        rounds
            .iter()
            .filter_map(|x| x["round_s"].as_f64())
            .sum::<f64>()
            / rounds.len() as f64
    };
    write(
        "topology-latency.svg",
        curves_svg(
            "Server and serverless: mean round latency",
            "members",
            YAxis::Number("seconds"),
            &by_label(&mean_round_s),
            &[],
        )
        .unwrap(),
    );
    let aggregator_peak_mb = |r: &Value| {
        let rounds = r["rounds"].as_array().unwrap();
        let peak = rounds
            .iter()
            .filter_map(|x| x["aggregator_peak_rss_bytes"].as_u64())
            .max();
        peak.unwrap_or(0) as f64 / 1e6
    };
    write(
        "topology-memory.svg",
        curves_svg(
            "Server and serverless: the aggregator's peak memory",
            "members",
            YAxis::Number("MB"),
            &by_label(&aggregator_peak_mb),
            &[],
        )
        .unwrap(),
    );
}
