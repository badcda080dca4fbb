//! Build script of `bcfl-client`.
//!
//! With the `train` feature the crate links libtorch through `torch-sys`, whose shared libraries
//! live in the directory `LIBTORCH` names (by default a Python venv outside the clone, see
//! `scripts/env.sh`). Nothing tells the dynamic loader where that is, so binaries, tests, examples
//! and benches of this crate would fail at start with `libtorch_cpu.so: cannot open shared object
//! file` unless `LD_LIBRARY_PATH` were set. `torch-sys` declares `links = "tch"` and prints
//! `cargo:libtorch_lib=<dir>`; cargo hands that to direct dependents as `DEP_TCH_LIBTORCH_LIB`, and
//! this script turns it into an rpath on every target it links.
//!
//! The package declares `links = "bcfl-client"` so that it can pass the same directory on to its
//! own dependents (`cargo:libtorch_lib`, read there as `DEP_BCFL_CLIENT_LIBTORCH_LIB`): the
//! `bcfl-train` binary of `bcfl-cli` needs the rpath too.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if env::var_os("CARGO_FEATURE_TRAIN").is_none() {
        return;
    }
    let Some(lib_dir) = env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        panic!(
            "the `train` feature is on but DEP_TCH_LIBTORCH_LIB is not set: torch-sys must be a \
             direct dependency of bcfl-client (it prints cargo:libtorch_lib)"
        );
    };
    let lib_dir = lib_dir
        .into_string()
        .unwrap_or_else(|dir| panic!("libtorch directory {dir:?} is not valid UTF-8"));
    // The linker splits `-Wl,` arguments on commas.
    assert!(
        !lib_dir.contains(','),
        "libtorch directory {lib_dir:?} contains a comma, which cannot pass through -Wl,-rpath"
    );
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    println!("cargo:libtorch_lib={lib_dir}");
}
