//! Protobuf messages of the `bcfl` transaction family, version 1.0.
//!
//! `proto/bcfl.proto` is the source of truth: one [`bcfl::BcflPayload`] per transaction carrying
//! exactly one action, and the state objects the processor stores (consortium, members, rounds,
//! commitments, links, verdicts, aggregates). The Rust types are generated at build time with the
//! protobuf 2.x code generator, the same runtime `sawtooth-sdk` 0.5 uses, so one `protobuf`
//! crate serves both.
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

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));

pub use protobuf;
