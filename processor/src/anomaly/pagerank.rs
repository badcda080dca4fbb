//! Weighted PageRank over the member graph, and flagging of members whose rank is unusual.
//!
//! Nodes are `0..n` (the caller numbers members in key order). A directed edge `i -> j` with
//! weight `w_ij > 0` passes rank from `i` to `j` in proportion to `w_ij / sum_k w_ik`; a node
//! without outgoing edges (dangling) spreads its rank evenly over all nodes. With damping `d`,
//! one power-iteration step is
//!
//! ```text
//! r'_j = (1 - d) / n + d * (sum_i r_i w_ij / W_i + dangling / n)
//! ```
//!
//! starting from `r = 1/n`, until the L1 change `sum |r' - r|` is at most the tolerance or the
//! iteration cap is reached. Sums run over nodes and edges in a fixed order, so the result is
//! bit-identical on every platform. The ranks sum to 1 up to rounding.
//!
//! Flagging ([`flag_outliers`]) works on ranks quantized to parts per billion, with exact integer
//! arithmetic: node `i` is flagged when `|x_i - mean| > k * std` (population std), checked as
//! `(n x_i - S)^2 * 1e12 > k_ppm^2 (n Q - S^2)` with `S = sum x`, `Q = sum x^2`. A graph whose
//! ranks are all equal flags nobody, whatever the rounding of the iteration.
//!
//! ```
//! use bcfl_processor::anomaly::pagerank::{pagerank, PageRankParams};
//!
//! // A star: every leaf links to the hub 0 only, the hub links back to every leaf.
//! let edges = [(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0), (0, 1, 1.0), (0, 2, 1.0), (0, 3, 1.0)];
//! let result = pagerank(4, &edges, &PageRankParams::default());
//! assert!(result.ranks[0] > result.ranks[1]);
//! assert!((result.ranks.iter().sum::<f64>() - 1.0).abs() < 1e-9);
//! ```

use crate::fixed;

/// PageRank settings (the chain stores them as `PageRankConfig`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageRankParams {
    /// Damping factor in (0, 1).
    pub damping: f64,
    /// Most power iterations.
    pub max_iterations: u32,
    /// Stop when the L1 change of one iteration is at most this.
    pub tolerance: f64,
}

impl Default for PageRankParams {
    /// Damping 0.85, at most 100 iterations, tolerance 1e-9.
    fn default() -> Self {
        Self {
            damping: 0.85,
            max_iterations: 100,
            tolerance: 1e-9,
        }
    }
}

/// The ranks and how the iteration ended.
#[derive(Clone, Debug, PartialEq)]
pub struct PageRankResult {
    /// Rank of each node, summing to 1.
    pub ranks: Vec<f64>,
    /// Iterations run.
    pub iterations: u32,
    /// Whether the tolerance was reached before the cap.
    pub converged: bool,
}

/// Runs weighted PageRank on `n` nodes. `edges` are `(from, to, weight)`; edges with a
/// non-positive or non-finite weight, self-loops and out-of-range nodes are ignored; parallel
/// edges add up. The edge order does not change the result: edges are sorted first.
pub fn pagerank(
    n: usize,
    edges: &[(usize, usize, f64)],
    params: &PageRankParams,
) -> PageRankResult {
    if n == 0 {
        return PageRankResult {
            ranks: Vec::new(),
            iterations: 0,
            converged: true,
        };
    }
    let mut kept: Vec<(usize, usize, f64)> = edges
        .iter()
        .copied()
        .filter(|&(i, j, w)| i < n && j < n && i != j && w > 0.0 && w.is_finite())
        .collect();
    kept.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
    let mut out_weight = vec![0.0f64; n];
    for &(i, _, w) in &kept {
        out_weight[i] += w;
    }
    let d = params.damping;
    let nf = n as f64;
    let mut ranks = vec![1.0 / nf; n];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < params.max_iterations {
        iterations += 1;
        let dangling = (0..n)
            .filter(|&i| out_weight[i] == 0.0)
            .fold(0.0, |acc, i| acc + ranks[i]);
        let mut inflow = vec![0.0f64; n];
        for &(i, j, w) in &kept {
            inflow[j] += ranks[i] * (w / out_weight[i]);
        }
        let base = (1.0 - d) / nf;
        let spread = dangling / nf;
        let next: Vec<f64> = inflow.iter().map(|f| base + d * (f + spread)).collect();
        let change = next
            .iter()
            .zip(&ranks)
            .fold(0.0, |acc, (a, b)| acc + (a - b).abs());
        ranks = next;
        if change <= params.tolerance {
            converged = true;
            break;
        }
    }
    PageRankResult {
        ranks,
        iterations,
        converged,
    }
}

/// A rank in parts per billion, rounded; ranks lie in [0, 1].
pub fn rank_ppb(rank: f64) -> i64 {
    i64::from(fixed::saturating_ppb(rank)).min(fixed::PPB_SCALE)
}

/// Flags ranks outside `mean +/- k * std` with `k = k_ppm / 1e6`, exactly, over ranks quantized
/// with [`rank_ppb`] (see the module docs).
pub fn flag_outliers(ranks: &[f64], k_ppm: u32) -> Vec<bool> {
    let x: Vec<i128> = ranks.iter().map(|r| i128::from(rank_ppb(*r))).collect();
    let n = x.len() as i128;
    let s: i128 = x.iter().sum();
    let q: i128 = x.iter().map(|v| v * v).sum();
    let spread = n * q - s * s; // n^2 * variance, >= 0
    let k2 = i128::from(k_ppm) * i128::from(k_ppm);
    x.iter()
        .map(|v| {
            let dev = n * v - s; // n * (x - mean)
            dev * dev * 1_000_000_000_000 > k2 * spread
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_edges_gives_uniform_ranks_and_no_flags() {
        let r = pagerank(4, &[], &PageRankParams::default());
        assert_eq!(r.ranks, vec![0.25; 4]);
        assert!(r.converged);
        assert_eq!(flag_outliers(&r.ranks, 1_000_000), vec![false; 4]);
    }

    #[test]
    fn two_node_cycle_known_answer() {
        // Symmetric: both ranks stay 1/2 from the first iteration.
        let r = pagerank(2, &[(0, 1, 3.0), (1, 0, 5.0)], &PageRankParams::default());
        assert!(r.converged && r.iterations <= 2, "{r:?}");
        assert!(r.ranks.iter().all(|x| (x - 0.5).abs() < 1e-15), "{r:?}");
        assert_eq!(flag_outliers(&r.ranks, 1), vec![false, false]);
    }

    #[test]
    fn chain_with_dangling_end_known_answer() {
        // 0 -> 1, node 1 dangling. Fixed point (d = 0.5): r0 = 0.25 + 0.5 * r1 / 2 and
        // r0 + r1 = 1  =>  1.25 r0 = 0.5  =>  r0 = 0.4, r1 = 0.6.
        let params = PageRankParams {
            damping: 0.5,
            max_iterations: 200,
            tolerance: 1e-15,
        };
        let r = pagerank(2, &[(0, 1, 1.0)], &params);
        assert!(r.converged);
        assert!((r.ranks[0] - 0.4).abs() < 1e-12, "{:?}", r.ranks);
        assert!((r.ranks[1] - 0.6).abs() < 1e-12, "{:?}", r.ranks);
    }

    #[test]
    fn weights_split_rank_proportionally() {
        // 0 sends 3/4 of its rank to 1 and 1/4 to 2; 1 and 2 send back to 0.
        let edges = [(0, 1, 3.0), (0, 2, 1.0), (1, 0, 1.0), (2, 0, 1.0)];
        let r = pagerank(3, &edges, &PageRankParams::default());
        assert!(r.ranks[1] > r.ranks[2]);
        assert!(r.ranks[0] > r.ranks[1]);
        // Ignored edges change nothing.
        let mut noisy = edges.to_vec();
        noisy.extend([(0, 0, 9.0), (1, 2, 0.0), (2, 7, 1.0), (2, 1, f64::NAN)]);
        noisy.reverse();
        assert_eq!(pagerank(3, &noisy, &PageRankParams::default()), r);
    }

    #[test]
    fn flags_known_answer() {
        // ppb values 100, 100, 100, 700: mean 250, std = sqrt(67500) ~ 259.8.
        let ranks = [1e-7, 1e-7, 1e-7, 7e-7];
        assert_eq!(
            flag_outliers(&ranks, 1_000_000),
            vec![false, false, false, true]
        );
        // |100 - 250| = 150 > 0.5 * 259.8 = 129.9: every node is outside.
        assert_eq!(flag_outliers(&ranks, 500_000), vec![true; 4]);
        assert_eq!(flag_outliers(&ranks, 2_000_000), vec![false; 4]);
        assert!(flag_outliers(&[], 1_000_000).is_empty());
    }
}
