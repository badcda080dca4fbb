//! bcfl.
fn main() {}
