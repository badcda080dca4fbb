//! bcfl-devnet.
fn main() {}
