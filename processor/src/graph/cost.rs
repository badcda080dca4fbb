//! The transfer-time models: store-and-forward and pipelined paths, and the seed paper's totals.
//!
//! A transfer of `M` bytes over a link of `B` bytes per second takes `L = M / B` seconds.
//!
//! - **Store-and-forward**: each relay receives the whole message before sending it on, so a
//!   path's time is the sum of its links' latencies, `sum_e M / B_e`.
//! - **Pipelined**: the message is cut into chunks of `c = min(chunk, M)` bytes and a relay
//!   forwards each chunk as soon as it has it. With `n = M / c` chunks this is a flow shop of
//!   identical jobs, whose makespan is the first chunk's trip plus `n - 1` chunk times of the
//!   slowest link:
//!
//!   ```text
//!   T_pipe = sum_e c / B_e + (M - c) / B_min
//!   ```
//!
//!   exact when `c` divides `M` (for a partial last chunk it treats the remainder as a fluid, a
//!   slight under-estimate). With equal bandwidths `B` it is `M / B + (hops - 1) * c / B`; with
//!   one hop, or `c = M`, it is the store-and-forward time; it always lies between `M / B_min`
//!   and the store-and-forward time.
//!
//! The totals from a source `H` to its destinations `i` ([`DistributionTotals`]) add a fixed
//! delay `D_G`: synchronous transfers (one after another) take `D_G + sum_i T(H -> i)`,
//! asynchronous ones (all at once) `D_G + max_i T(H -> i)`.

use super::error::{GraphError, Result};
use super::routes::Route;

/// The size of a transfer and the chunk size pipelined relays forward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferModel {
    size_bytes: f64,
    chunk_bytes: f64,
}

impl TransferModel {
    /// A transfer of `size_bytes` relayed in chunks of `chunk_bytes` (a chunk larger than the
    /// message is the whole message). Both must be positive and finite.
    pub fn new(size_bytes: f64, chunk_bytes: f64) -> Result<Self> {
        if !(size_bytes.is_finite() && size_bytes > 0.0) {
            return Err(GraphError::InvalidSize(size_bytes));
        }
        if !(chunk_bytes.is_finite() && chunk_bytes > 0.0) {
            return Err(GraphError::InvalidChunk(chunk_bytes));
        }
        Ok(Self {
            size_bytes,
            chunk_bytes: chunk_bytes.min(size_bytes),
        })
    }

    /// The message size `M` in bytes.
    pub fn size_bytes(&self) -> f64 {
        self.size_bytes
    }

    /// The effective chunk size `c = min(chunk, M)` in bytes.
    pub fn chunk_bytes(&self) -> f64 {
        self.chunk_bytes
    }

    /// The latency `M / B` of one link of `bytes_per_sec`.
    pub fn link_latency(&self, bytes_per_sec: f64) -> f64 {
        self.size_bytes / bytes_per_sec
    }

    /// The store-and-forward time of a path whose links have these bandwidths: `sum_e M / B_e`,
    /// added in path order. Zero for the empty path.
    pub fn store_and_forward(&self, bandwidths: &[f64]) -> f64 {
        bandwidths
            .iter()
            .fold(0.0, |total, b| total + self.link_latency(*b))
    }

    /// The pipelined time of a path whose links have these bandwidths:
    /// `sum_e c / B_e + (M - c) / B_min`. Zero for the empty path.
    pub fn pipelined(&self, bandwidths: &[f64]) -> f64 {
        let Some(slowest) = bandwidths.iter().copied().reduce(f64::min) else {
            return 0.0;
        };
        let first_chunk = bandwidths
            .iter()
            .fold(0.0, |total, b| total + self.chunk_bytes / b);
        first_chunk + (self.size_bytes - self.chunk_bytes) / slowest
    }
}

/// The seed paper's distribution totals over the reachable destinations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistributionTotals {
    /// `D_G + sum` of the per-destination times: transfers one after another.
    pub synchronous_s: f64,
    /// `D_G + max` of the per-destination times: transfers in parallel.
    pub asynchronous_s: f64,
}

impl DistributionTotals {
    /// The totals of the given per-destination times (added in the given order) plus the fixed
    /// delay `delay_s`, which must be a non-negative finite number of seconds.
    pub fn of_times(times: impl IntoIterator<Item = f64>, delay_s: f64) -> Result<Self> {
        if !(delay_s.is_finite() && delay_s >= 0.0) {
            return Err(GraphError::InvalidDelay(delay_s));
        }
        let (sum, max) = times
            .into_iter()
            .fold((0.0, 0.0_f64), |(sum, max), t| (sum + t, max.max(t)));
        Ok(Self {
            synchronous_s: delay_s + sum,
            asynchronous_s: delay_s + max,
        })
    }

    /// The totals of the routes' store-and-forward times.
    pub fn store_and_forward(routes: &[Route], delay_s: f64) -> Result<Self> {
        Self::of_times(routes.iter().map(|r| r.store_and_forward_s), delay_s)
    }

    /// The totals of the routes' pipelined times.
    pub fn pipelined(routes: &[Route], delay_s: f64) -> Result<Self> {
        Self::of_times(routes.iter().map(|r| r.pipelined_s), delay_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flow shop the pipelined formula models: chunk `k` leaves hop `e` at
    /// `F(k, e) = max(F(k - 1, e), F(k, e - 1)) + c / B_e`.
    fn simulate(size: f64, chunk: f64, bandwidths: &[f64]) -> f64 {
        let chunks = (size / chunk).ceil() as usize;
        let mut done = vec![0.0_f64; bandwidths.len()];
        for k in 0..chunks {
            let bytes = chunk.min(size - k as f64 * chunk);
            let mut arrived = 0.0_f64;
            for (e, b) in bandwidths.iter().enumerate() {
                done[e] = done[e].max(arrived) + bytes / b;
                arrived = done[e];
            }
        }
        done.last().copied().unwrap_or(0.0)
    }

    #[test]
    fn store_and_forward_sums_link_latencies() {
        let m = TransferModel::new(1000.0, 100.0).unwrap();
        // 1000/100 + 1000/50 + 1000/200 = 10 + 20 + 5 = 35 s.
        assert_eq!(m.store_and_forward(&[100.0, 50.0, 200.0]), 35.0);
        assert_eq!(m.store_and_forward(&[]), 0.0);
    }

    #[test]
    fn pipelined_known_answers() {
        let m = TransferModel::new(1000.0, 100.0).unwrap();
        // First chunk: 100/100 + 100/50 + 100/200 = 1 + 2 + 0.5 = 3.5 s; the other 900 bytes
        // at the bottleneck 50 B/s: 18 s. Total 21.5 s (store-and-forward would be 35 s).
        assert_eq!(m.pipelined(&[100.0, 50.0, 200.0]), 21.5);
        // Equal links: M/B + (hops - 1) c/B = 10 + 2 * 1 = 12 s.
        assert_eq!(m.pipelined(&[100.0, 100.0, 100.0]), 12.0);
        // One hop: no pipelining, M/B.
        assert_eq!(m.pipelined(&[50.0]), 20.0);
        // A chunk as large as the message is store-and-forward.
        let whole = TransferModel::new(1000.0, 5000.0).unwrap();
        assert_eq!(whole.chunk_bytes(), 1000.0);
        assert_eq!(
            whole.pipelined(&[100.0, 50.0]),
            whole.store_and_forward(&[100.0, 50.0])
        );
    }

    #[test]
    fn pipelined_equals_the_flow_shop_when_the_chunk_divides_the_message() {
        let paths: [&[f64]; 4] = [
            &[100.0, 50.0, 200.0],
            &[7.0, 3.0, 11.0, 3.0, 5.0],
            &[64.0],
            &[1.0, 1000.0],
        ];
        for bandwidths in paths {
            for (size, chunk) in [(1024.0, 64.0), (1024.0, 1024.0), (96.0, 8.0)] {
                let m = TransferModel::new(size, chunk).unwrap();
                let exact = simulate(size, chunk, bandwidths);
                let formula = m.pipelined(bandwidths);
                assert!(
                    (exact - formula).abs() <= 1e-9 * exact,
                    "{bandwidths:?} {size}/{chunk}: {exact} vs {formula}"
                );
            }
        }
    }

    #[test]
    fn totals_are_delay_plus_sum_and_max() {
        // Times 3, 1, 2 with D_G = 0.5: synchronous 0.5 + 6, asynchronous 0.5 + 3.
        let t = DistributionTotals::of_times([3.0, 1.0, 2.0], 0.5).unwrap();
        assert_eq!((t.synchronous_s, t.asynchronous_s), (6.5, 3.5));
        let empty = DistributionTotals::of_times([], 0.5).unwrap();
        assert_eq!((empty.synchronous_s, empty.asynchronous_s), (0.5, 0.5));
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert_eq!(
            TransferModel::new(0.0, 1.0).unwrap_err(),
            GraphError::InvalidSize(0.0)
        );
        assert_eq!(
            TransferModel::new(1.0, -1.0).unwrap_err(),
            GraphError::InvalidChunk(-1.0)
        );
        assert!(TransferModel::new(f64::INFINITY, 1.0).is_err());
        assert_eq!(
            DistributionTotals::of_times([1.0], -0.1).unwrap_err(),
            GraphError::InvalidDelay(-0.1)
        );
        assert!(DistributionTotals::of_times([1.0], f64::NAN).is_err());
    }
}
