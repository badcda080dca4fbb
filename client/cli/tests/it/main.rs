//! Integration tests of `bcfl-cli`, in one test binary (one module per subject).
//!
//! They run the package's binaries, `bcfl` and (when bcfl-client's `train` feature is on, which
//! builds it) `bcfl-train`; the tests of `bcfl-train` skip, saying so, without it:
//!
//! ```text
//! cargo test -p bcfl-cli --features bcfl-client/train --test it             # all
//! cargo test -p bcfl-cli --features bcfl-client/train --test it no_libtorch # one module
//! ```

mod forwarding;
mod llm_eval;
mod no_libtorch;

use std::path::Path;

/// `bcfl`, built by this test run.
fn bcfl() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bcfl"))
}

/// `bcfl-train`, when this test run built it (bcfl-client's `train` feature); otherwise says
/// that the calling test skips.
fn bcfl_train(test: &str) -> Option<&'static Path> {
    let path = option_env!("CARGO_BIN_EXE_bcfl-train").map(Path::new);
    if path.is_none() {
        eprintln!("{test}: skipped, bcfl-train is built only with --features bcfl-client/train");
    }
    path
}
