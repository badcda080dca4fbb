//! Protobuf messages of the `bcfl` transaction family, version 1.0.
//!
//! `proto/bcfl.proto` is the source of truth: one [`bcfl::BcflPayload`] per transaction carrying
//! exactly one action, and the state objects the processor stores (consortium, members, rounds,
//! commitments, links, verdicts, aggregates). The Rust types are generated at build time with the
//! protobuf 2.x code generator, the same runtime `sawtooth-sdk` 0.5 uses, so one `protobuf`
//! crate serves both.
//!
//! Beside them, Sawtooth's own [`transaction`] and [`batch`] messages (the envelope every
//! client signs and the REST API takes), so that a client builds batches without linking the
//! Sawtooth SDK and its ZMQ transport.
//!
//! Encodings are canonical: proto3 with fields written in field-number order, and every repeated
//! key field kept sorted by the processor, so the same state always has the same bytes.
//!
//! ```
//! use bcfl_protos::bcfl::{BcflPayload, CloseRound};
//! use protobuf::Message;
//!
//! let mut close = CloseRound::new();
//! close.set_round(3);
//! let mut payload = BcflPayload::new();
//! payload.set_close_round(close);
//! let bytes = payload.write_to_bytes().unwrap();
//! let back = BcflPayload::parse_from_bytes(&bytes).unwrap();
//! assert_eq!(back.get_close_round().get_round(), 3);
//! ```

/// Generated messages of `proto/bcfl.proto` (rust-protobuf 2.28 API: `get_*`/`set_*` accessors).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results,
    unused_parens,
    rust_2018_idioms,
    unknown_lints,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
pub mod bcfl {
    include!(concat!(env!("OUT_DIR"), "/bcfl_gen.rs"));
}

/// Sawtooth 1.2's `TransactionHeader`, `Transaction` and `TransactionList`
/// (`proto/sawtooth/transaction.proto`, copied unchanged from the Sawtooth SDK, Apache-2.0).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results,
    unused_parens,
    rust_2018_idioms,
    unknown_lints,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
pub mod transaction {
    include!(concat!(env!("OUT_DIR"), "/transaction_gen.rs"));
}

/// Sawtooth 1.2's `BatchHeader`, `Batch` and `BatchList` (`proto/sawtooth/batch.proto`, copied
/// unchanged from the Sawtooth SDK, Apache-2.0).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_imports,
    unused_results,
    unused_parens,
    rust_2018_idioms,
    unknown_lints,
    mismatched_lifetime_syntaxes
)]
#[rustfmt::skip]
pub mod batch {
    include!(concat!(env!("OUT_DIR"), "/batch_gen.rs"));
}

pub use protobuf;
