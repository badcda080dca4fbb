//! Integration tests of `bcfl-processor`, in one test binary: the `bcfl-tp` binary on the wire
//! (`bcfl_tp`).
//!
//! ```text
//! cargo test -p bcfl-processor --test it
//! ```

mod bcfl_tp;
