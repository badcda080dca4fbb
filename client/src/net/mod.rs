//! Networking between members: bandwidth edge lists and transfer planning.
//!
//! - [`edges`]: the CSV edge-list format (`from,to,bytes_per_sec`) with line-numbered errors.
//! - [`plan`]: `bcfl net plan`, which routes a transfer over the measured graph and predicts its
//!   time under the store-and-forward and pipelined models (see [`bcfl_processor::graph`], the
//!   maths shared with the processor).

pub mod edges;
pub mod plan;

#[cfg(test)]
mod tests;
