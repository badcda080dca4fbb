//! The bcfl client library.
//!
//! - [`fixed`]: the fixed-point conversions (`*_micro`, `*_ppm`) the ledger uses instead of
//!   floating point: the processor's own module ([`bcfl_processor::fixed`]), so that the client
//!   converts exactly as the chain does.
//! - `train` (feature `train`): LoRA fine-tuning of BERT encoders with libtorch, data splits,
//!   update blobs and their aggregation.
//! - `llm` (feature `train`): a Llama-architecture decoder (SmolLM2) read from a GGUF file,
//!   its tokenizer and greedy generation with a KV cache.
//! - [`round`]: the federated round written once: coordinator, member and aggregator roles
//!   driven by ledger state over a `Ledger` (REST or in-memory); with `train`, `bcfl node run`
//!   (one member per process) and the simulation behind `bcfl fl simulate`.
//! - `demo` (feature `train`): what `bcfl demo` runs, the operator's set-up of a consortium on
//!   one machine and one `bcfl node run` process per member plus a coordinator, with a report
//!   and figures.
//! - [`scale`]: the scale experiment (`bcfl experiment scale`): one round of many members on
//!   the in-memory ledger that runs the processor's rules, weighed and timed.
//! - [`figures`]: the figures of a run's report (accuracy, phase times, bytes moved, the
//!   bandwidth graph) as SVG.
//!
//! The command line over this library is the `bcfl-cli` package (`client/cli/`): the `bcfl`
//! binary, which links no libtorch, and `bcfl-train`, which runs the commands that train (with
//! `train`); `docs/cli.md` documents its commands and JSON output. The commands parse their
//! arguments there into this library's plain configurations (`round::node::NodeConfig`,
//! `demo::DemoConfig`, `train::source::DataSource`, ...); errors here are `thiserror` types,
//! one per area ([`round::Error`], `train::Error`, `demo::Error`).
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `train` | fine-tuning with libtorch (needs `LIBTORCH`) |
//! | `clap` | `clap::ValueEnum` for the enums the command line takes (`Topology`, `Synchrony`, `demo::AnomalyMethod`) |

#[cfg(feature = "train")]
pub mod demo;
pub mod figures;
#[cfg(feature = "train")]
pub mod llm;
pub use bcfl_processor::fixed;
pub mod round;
pub mod scale;
#[cfg(feature = "train")]
pub mod train;
/// The `tch` crate this library trains with, for its dependents' settings (thread counts).
#[cfg(feature = "train")]
pub use tch;
