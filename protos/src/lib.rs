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
//! key field kept sorted by the processor, so the same state always has the same bytes. Repeated
//! numbers and enumerations are packed, as proto3 specifies; rust-protobuf 2.28's generator packs
//! them only when the field says `[packed = true]`, so every such field in `bcfl.proto` says it
//! (unpacked, a 256-value sketch took 256 bytes more, one tag per value). Parsers accept both
//! forms, as protobuf requires.
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

impl bcfl::Verdict {
    /// The committers the anomaly methods scored, sorted: the accepted and the excluded that
    /// were not disputed (every `MethodVerdict`'s scores are aligned with them). The verdict
    /// stores each key once, in `accepted` or `excluded` (and `disputed`), so this list is
    /// derived rather than stored; without an anomaly configuration it is every committer not
    /// disputed, and no method scored them.
    pub fn scored(&self) -> Vec<String> {
        let excluded = self
            .excluded
            .iter()
            .filter(|k| self.disputed.binary_search(k).is_err());
        let mut scored: Vec<String> = self.accepted.iter().chain(excluded).cloned().collect();
        scored.sort();
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::bcfl::{Commitment, Feature, Verdict, ZScoreConfig};
    use protobuf::Message;

    #[test]
    fn a_verdict_scored_its_accepted_and_excluded_but_not_its_disputed() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let verdict = Verdict {
            accepted: keys(&["a", "d"]).into(),
            excluded: keys(&["b", "c", "e"]).into(),
            disputed: keys(&["c"]).into(),
            ..Default::default()
        };
        assert_eq!(verdict.scored(), keys(&["a", "b", "d", "e"]));
        assert!(Verdict::default().scored().is_empty());
        // Nobody left to score: every committer disputed.
        let all_disputed = Verdict {
            excluded: keys(&["x"]).into(),
            disputed: keys(&["x"]).into(),
            ..Default::default()
        };
        assert!(all_disputed.scored().is_empty());
    }

    /// One key byte (field number and wire type) of a length-delimited field: packed.
    fn packed_key(field: u32) -> u8 {
        (field << 3 | 2) as u8
    }

    #[test]
    fn repeated_numbers_are_packed_and_unpacked_ones_still_parse() {
        let commitment = Commitment {
            sketch: vec![1; 256],
            coordinate_step_nano: 1,
            coordinate_steps: vec![-1; 4],
            ..Default::default()
        };
        let bytes = commitment.write_to_bytes().unwrap();
        // Field 8 (sketch): one key, a two-byte length, 256 one-byte values; then field 14 (the
        // step, a key and a varint) and field 15 (the steps, packed).
        assert_eq!(&bytes[..3], &[packed_key(8), 0x80, 0x02]);
        assert_eq!(&bytes[259..], &[14 << 3, 1, packed_key(15), 4, 1, 1, 1, 1]);
        assert_eq!(Commitment::parse_from_bytes(&bytes).unwrap(), commitment);

        // The unpacked form (one key per value, as this crate wrote it before) parses alike.
        let mut unpacked = Vec::new();
        for _ in 0..256 {
            unpacked.extend([8 << 3, 2]); // key of field 8, varint; zigzag(1) = 2
        }
        unpacked.extend([14 << 3, 1]);
        for _ in 0..4 {
            unpacked.extend([15 << 3, 1]); // zigzag(-1) = 1
        }
        assert_eq!(Commitment::parse_from_bytes(&unpacked).unwrap(), commitment);

        let zscore = ZScoreConfig {
            features: vec![Feature::UPDATE_NORM, Feature::SKETCH_COSINE_DISTANCE],
            ..Default::default()
        };
        assert_eq!(zscore.write_to_bytes().unwrap()[0], packed_key(2));
    }
}
