//! Property tests: the algorithms against brute force over every simple path (or every edge
//! subset) of random graphs with at most 6 nodes, and against petgraph.

use proptest::prelude::*;

use super::{BandwidthGraph, CentreCriterion, NodeId, TransferModel};

/// Random directed graphs on nodes "n0".."n5" (some isolated) with small integer bandwidths,
/// so that equal latencies, and so ties, are common.
fn graphs() -> impl Strategy<Value = Vec<(String, String, f64)>> {
    (2usize..=6).prop_flat_map(|n| {
        proptest::collection::vec(proptest::option::weighted(0.45, 1u32..=6), n * n).prop_map(
            move |cells| {
                cells
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i / n != i % n)
                    .filter_map(|(i, b)| {
                        b.map(|b| (format!("n{}", i / n), format!("n{}", i % n), f64::from(b)))
                    })
                    .collect()
            },
        )
    })
}

fn build(links: &[(String, String, f64)]) -> BandwidthGraph {
    BandwidthGraph::with_nodes(["n0", "n1"], links.iter().cloned()).unwrap()
}

/// Every simple path from `from`, as the list of its links' bandwidths, keyed by destination.
fn simple_paths(graph: &BandwidthGraph, from: usize) -> Vec<(usize, Vec<f64>)> {
    fn walk(
        graph: &BandwidthGraph,
        at: usize,
        seen: &mut Vec<bool>,
        links: &mut Vec<f64>,
        out: &mut Vec<(usize, Vec<f64>)>,
    ) {
        out.push((at, links.clone()));
        for (from, to, b) in graph.links() {
            let (u, v) = (index(graph, from), index(graph, to));
            if u == at && !seen[v] {
                seen[v] = true;
                links.push(b);
                walk(graph, v, seen, links, out);
                links.pop();
                seen[v] = false;
            }
        }
    }
    let mut seen = vec![false; graph.node_count()];
    seen[from] = true;
    let mut out = Vec::new();
    walk(graph, from, &mut seen, &mut Vec::new(), &mut out);
    out
}

fn index(graph: &BandwidthGraph, node: &NodeId) -> usize {
    graph.index_of(node.as_str()).unwrap()
}

/// Brute-force shortest latency (left-to-right float sums, as the algorithms add) and widest
/// bottleneck from `from` to every node.
fn brute_force(graph: &BandwidthGraph, model: &TransferModel, from: usize) -> Vec<(f64, f64)> {
    let mut best = vec![(f64::INFINITY, 0.0_f64); graph.node_count()];
    for (to, links) in simple_paths(graph, from) {
        let latency = model.store_and_forward(&links);
        let width = links.iter().copied().fold(f64::INFINITY, f64::min);
        best[to].0 = best[to].0.min(latency);
        best[to].1 = best[to].1.max(width);
    }
    best
}

/// The lightest acyclic subset of `size` undirected edges, by enumeration.
fn brute_force_spanning_weight(
    n: usize,
    pairs: &[((usize, usize), f64)],
    size: usize,
    model: &TransferModel,
) -> f64 {
    fn root(parent: &mut [usize], x: usize) -> usize {
        if parent[x] == x {
            x
        } else {
            let r = root(parent, parent[x]);
            parent[x] = r;
            r
        }
    }
    let mut best = f64::INFINITY;
    'subsets: for mask in 0u32..(1 << pairs.len()) {
        if mask.count_ones() as usize != size {
            continue;
        }
        let mut parent: Vec<usize> = (0..n).collect();
        let mut weight = 0.0;
        for (k, ((a, b), bandwidth)) in pairs.iter().enumerate() {
            if mask & (1 << k) == 0 {
                continue;
            }
            let (ra, rb) = (root(&mut parent, *a), root(&mut parent, *b));
            if ra == rb {
                continue 'subsets;
            }
            parent[ra] = rb;
            weight += model.link_latency(*bandwidth);
        }
        best = best.min(weight);
    }
    best
}

/// petgraph's Kruskal on the same undirected view: total weight and edge count.
fn petgraph_spanning(
    n: usize,
    pairs: &[((usize, usize), f64)],
    model: &TransferModel,
) -> (f64, usize) {
    use petgraph::data::FromElements;
    use petgraph::graph::UnGraph;

    let mut graph = UnGraph::<(), f64>::new_undirected();
    let ids: Vec<_> = (0..n).map(|_| graph.add_node(())).collect();
    for ((a, b), bandwidth) in pairs {
        graph.add_edge(ids[*a], ids[*b], model.link_latency(*bandwidth));
    }
    let forest = UnGraph::<(), f64>::from_elements(petgraph::algo::min_spanning_tree(&graph));
    (forest.edge_weights().sum(), forest.edge_count())
}

/// The graph built from scratch without the removed nodes and their links.
fn rebuild_without(
    graph: &BandwidthGraph,
    links: &[(String, String, f64)],
    removed: &[String],
) -> BandwidthGraph {
    let kept = graph
        .nodes()
        .iter()
        .map(NodeId::to_string)
        .filter(|n| !removed.contains(n));
    let kept_links = links
        .iter()
        .filter(|(a, b, _)| !removed.contains(a) && !removed.contains(b))
        .cloned();
    BandwidthGraph::with_nodes(kept, kept_links).unwrap()
}

fn model() -> TransferModel {
    TransferModel::new(60.0, 7.0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bellman_ford_equals_brute_force_and_petgraph(links in graphs()) {
        let graph = build(&links);
        let model = model();
        let pg = graph.to_petgraph(&model);
        for (s, source) in graph.nodes().iter().enumerate() {
            let tree = graph.shortest_paths(source.as_str(), &model).unwrap();
            let expected = brute_force(&graph, &model, s);
            let start = petgraph::graph::NodeIndex::new(s);
            let petgraph = petgraph::algo::bellman_ford(&pg, start).unwrap();
            for (v, node) in graph.nodes().iter().enumerate() {
                let latency = tree.latency(node.as_str()).unwrap_or(f64::INFINITY);
                prop_assert_eq!(latency, expected[v].0, "{} -> {}", source, node);
                prop_assert_eq!(latency, petgraph.distances[v]);
                // The reported path is a real path with exactly that latency, and its last
                // link comes from the smallest-id node that achieves it.
                if let Some(path) = tree.path(node.as_str()) {
                    let bandwidths: Vec<f64> = path
                        .windows(2)
                        .map(|w| graph.bandwidth(w[0].as_str(), w[1].as_str()).unwrap())
                        .collect();
                    prop_assert_eq!(model.store_and_forward(&bandwidths), latency);
                    if let Some(pred) = tree.predecessor(node.as_str()) {
                        let smallest = graph.nodes().iter().find(|u| {
                            let du = tree.latency(u.as_str());
                            let b = graph.bandwidth(u.as_str(), node.as_str());
                            let (Some(du), Some(b)) = (du, b) else {
                                return false;
                            };
                            du < latency && du + model.link_latency(b) == latency
                        });
                        prop_assert_eq!(Some(pred), smallest);
                    }
                }
            }
            let unreachable: Vec<&NodeId> = graph
                .nodes()
                .iter()
                .zip(&expected)
                .filter(|(_, e)| e.0.is_infinite())
                .map(|(n, _)| n)
                .collect();
            prop_assert_eq!(tree.unreachable(), unreachable);
        }
    }

    #[test]
    fn widest_paths_have_the_brute_force_bottleneck(links in graphs()) {
        let graph = build(&links);
        let model = model();
        let tree = graph.widest_paths("n0", &model).unwrap();
        let expected = brute_force(&graph, &model, 0);
        for route in tree.routes() {
            let v = index(&graph, &route.destination);
            prop_assert_eq!(route.bottleneck_bytes_per_sec, expected[v].1);
            prop_assert_eq!(route.path.first().unwrap(), "n0");
            prop_assert!(route.store_and_forward_s >= expected[v].0);
        }
        let cut_off = expected.iter().filter(|e| e.0.is_infinite()).count();
        prop_assert_eq!(tree.unreachable().len(), cut_off);
    }

    #[test]
    fn pipelined_lies_between_the_bottleneck_bound_and_store_and_forward(links in graphs()) {
        let graph = build(&links);
        let model = model();
        for routing in [super::Routing::Shortest, super::Routing::Widest] {
            for route in graph.route("n0", routing, &model).unwrap().routes() {
                let floor = model.size_bytes() / route.bottleneck_bytes_per_sec;
                prop_assert!(route.pipelined_s >= floor * (1.0 - 1e-12));
                prop_assert!(route.pipelined_s <= route.store_and_forward_s * (1.0 + 1e-12));
            }
        }
    }

    #[test]
    fn spanning_tree_weight_equals_brute_force_and_petgraph(links in graphs()) {
        let graph = build(&links);
        let model = model();
        let tree = graph.minimum_spanning_tree(&model);
        let pairs: Vec<((usize, usize), f64)> = graph.undirected().into_iter().collect();
        let n = graph.node_count();
        let best = brute_force_spanning_weight(n, &pairs, n - tree.components, &model);
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.max(1.0);
        prop_assert!(close(tree.weight_s, best), "{} vs {}", tree.weight_s, best);
        let (pg_weight, pg_edges) = petgraph_spanning(n, &pairs, &model);
        prop_assert!(close(tree.weight_s, pg_weight), "{} vs {}", tree.weight_s, pg_weight);
        prop_assert_eq!(tree.edges.len(), pg_edges);
    }

    #[test]
    fn centre_minimises_the_brute_force_round_trips(links in graphs()) {
        let graph = build(&links);
        let model = model();
        let n = graph.node_count();
        let one_way: Vec<Vec<(f64, f64)>> =
            (0..n).map(|s| brute_force(&graph, &model, s)).collect();
        for criterion in [CentreCriterion::MinMax, CentreCriterion::MinSum] {
            let mut best: Option<(f64, f64, usize)> = None;
            for (c, from_c) in one_way.iter().enumerate() {
                let trips: Vec<f64> = (0..n).map(|i| from_c[i].0 + one_way[i][c].0).collect();
                if trips.iter().any(|t| t.is_infinite()) {
                    continue;
                }
                let max = trips.iter().copied().fold(0.0, f64::max);
                let sum = trips.iter().sum::<f64>();
                let key = match criterion {
                    CentreCriterion::MinMax => (max, sum),
                    CentreCriterion::MinSum => (sum, max),
                };
                // Sums may round differently by order: compare with a tolerance, ties to the id.
                let wins = best.is_none_or(|(k0, k1, _)| {
                    key.0 < k0 - 1e-9 || ((key.0 - k0).abs() <= 1e-9 && key.1 < k1 - 1e-9)
                });
                if wins {
                    best = Some((key.0, key.1, c));
                }
            }
            match (graph.centre(&model, criterion), best) {
                (Ok(centre), Some((_, _, c))) => {
                    prop_assert_eq!(&centre.node, &graph.nodes()[c]);
                }
                (Err(_), None) => {}
                (got, want) => prop_assert!(false, "centre {:?}, brute force {:?}", got, want),
            }
        }
    }

    #[test]
    fn removal_equals_building_without_the_nodes(
        links in graphs(),
        removed in proptest::collection::btree_set(1usize..6, 0..3),
    ) {
        let graph = build(&links);
        let removed: Vec<String> = removed
            .into_iter()
            .map(|i| format!("n{i}"))
            .filter(|r| graph.contains(r))
            .collect();
        let pruned = graph.without_nodes(&removed).unwrap();
        let rebuilt = rebuild_without(&graph, &links, &removed);
        prop_assert_eq!(&pruned, &rebuilt);
        let model = model();
        let (x, y) = (pruned.shortest_paths("n0", &model), rebuilt.shortest_paths("n0", &model));
        prop_assert_eq!(x.unwrap(), y.unwrap());
    }

    #[test]
    fn results_do_not_depend_on_link_order(links in graphs()) {
        let model = model();
        let mut reversed = links.clone();
        reversed.reverse();
        let (a, b) = (build(&links), build(&reversed));
        prop_assert_eq!(&a, &b);
        let (x, y) = (a.widest_paths("n0", &model), b.widest_paths("n0", &model));
        prop_assert_eq!(x.unwrap(), y.unwrap());
        prop_assert_eq!(a.minimum_spanning_tree(&model), b.minimum_spanning_tree(&model));
    }

    #[test]
    fn contention_model_without_sharing_is_the_pipelined_formula(links in graphs()) {
        // The chunk divides the message, where the formula is exact.
        let graph = build(&links);
        let model = TransferModel::new(60.0, 6.0).unwrap();
        for routing in [super::Routing::Shortest, super::Routing::Widest] {
            let tree = graph.route("n0", routing, &model).unwrap();
            let contended = tree.contended(&graph, &super::Sharing::INDEPENDENT).unwrap();
            let routes = tree.routes();
            prop_assert_eq!(contended.arrivals.len(), routes.len());
            for (arrival, route) in contended.arrivals.iter().zip(&routes) {
                prop_assert_eq!(&arrival.destination, &route.destination);
                let (got, want) = (arrival.seconds, route.pipelined_s);
                prop_assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn sharing_never_speeds_a_distribution_up(links in graphs(), total in 1u32..=12) {
        let graph = build(&links);
        let model = model();
        let tree = graph.shortest_paths("n0", &model).unwrap();
        let free = tree.contended(&graph, &super::Sharing::INDEPENDENT).unwrap();
        let shared = super::Sharing {
            uplink: super::Uplink::FastestLink,
            total_bytes_per_sec: Some(f64::from(total)),
        };
        let slow = tree.contended(&graph, &shared).unwrap();
        for (a, b) in free.arrivals.iter().zip(&slow.arrivals) {
            prop_assert!(b.seconds >= a.seconds * (1.0 - 1e-9), "{} < {}", b.seconds, a.seconds);
            // Every byte of every destination passes the total limit.
            prop_assert!(b.seconds >= model.size_bytes() / f64::from(total) * (1.0 - 1e-9));
        }
        let bytes = model.size_bytes() * slow.arrivals.len() as f64;
        prop_assert!(slow.asynchronous_s >= bytes / f64::from(total) * (1.0 - 1e-9));
    }
}
