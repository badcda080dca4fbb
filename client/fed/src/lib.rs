//! The federated core of bcfl, without libtorch: what a member, an aggregator and an auditor
//! need to exchange and combine updates.
//!
//! - [`update`]: an update blob, the trainable tensors as a canonical safetensors file (f32 or
//!   int8), and streaming reads of one;
//! - [`sketch`]: the statistics a commitment carries (L2 norm, seeded sketch, samples);
//! - [`aggregate`]: FedAvg, median, trimmed mean, Krum and Multi-Krum, bit-exact for any order
//!   of arrival, streaming over memory-mapped files;
//! - [`rule`]: the aggregation rule as one type, with its command-line syntax and its on-chain
//!   parameters;
//! - [`reference`](mod@reference): the consortium's reference direction for a classification head, which the
//!   mislabelled-change method compares members' sampled coordinates with;
//! - [`digest`]: SHA-256 of bytes, streams and files, the one hash that names blobs and models;
//! - [`verify`]: a commitment's statistics recomputed from its blob, and the dispute to file
//!   when they differ.
//!
//! Training (libtorch) turns a model's tensors into an [`update::Update`] and back
//! (`bcfl_client::train::tensors`); everything else about updates lives here, so an auditor can
//! recompute an aggregate from the blobs without loading libtorch.
//!
//! ```
//! use std::collections::BTreeMap;
//! use bcfl_fed::update::{Encoding, Update};
//!
//! let mut tensors = BTreeMap::new();
//! tensors.insert("head.weight".to_string(), (vec![2], vec![0.5f32, -1.0]));
//! let update = Update { tensors };
//! let bytes = update.to_bytes(Encoding::F32);
//! assert_eq!(Update::from_bytes(&bytes).unwrap(), update);
//! ```

pub mod aggregate;
pub mod digest;
mod error;
pub mod reference;
pub mod rule;
pub mod sketch;
pub mod update;
pub mod verify;

pub use error::{Error, Result};
