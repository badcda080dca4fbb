//! Networking between members: bandwidth edge lists and transfer planning.
//!
//! - [`edges`]: the CSV edge-list format (`from,to,bytes_per_sec`) with line-numbered errors.
//! - [`plan`]: `bcfl net plan`, which routes a transfer over the measured graph and predicts its
//!   time under the store-and-forward and pipelined models (see [`bcfl_processor::graph`], the
//!   maths shared with the processor).
//!
//! [`NetCommand`] is the `bcfl net` subcommand group, so the CLI wires it in two lines.

pub mod edges;
pub mod plan;

#[cfg(test)]
mod tests;

/// `bcfl net ...`: routing and transfer planning over measured bandwidths.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum NetCommand {
    /// Route a transfer of SIZE bytes from SOURCE over a bandwidth edge list and predict its
    /// time (store-and-forward and pipelined, synchronous and asynchronous totals, MST).
    Plan(plan::NetPlanArgs),
}

impl NetCommand {
    /// Runs the command, printing JSON when `json` is set and tables otherwise.
    pub fn run(&self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Plan(args) => plan::run(args, json),
        }
    }
}
