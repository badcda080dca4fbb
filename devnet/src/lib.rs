//! bcfl-devnet: an embedded single-node ledger that speaks the Sawtooth 1.2 protocols.

pub mod view;
