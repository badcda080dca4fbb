//! bcfl-tp.
fn main() {}
