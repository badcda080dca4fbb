//! Integration tests of `bcfl-tp`, in one test binary: the `bcfl-tp` binary on the wire
//! (`bcfl_tp`).
//!
//! ```text
//! cargo test -p bcfl-tp --test it
//! ```

mod bcfl_tp;
