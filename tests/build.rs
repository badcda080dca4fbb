//! Gives this crate's test and bench executables an rpath to libtorch.
//!
//! With `--features bcfl-client/train` (what `scripts/test.sh` runs) the cross-crate tests link
//! `bcfl-client` with libtorch, and binaries have no rpath to it by default. `client/build.rs`
//! reads `DEP_TCH_LIBTORCH_LIB`, which cargo only passes to direct dependents of `torch-sys`;
//! this crate takes the same directory from `LIBTORCH` (set by `scripts/env.sh`) instead, so it
//! needs no libtorch when the feature is off.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&root).join("lib");
        if lib.is_dir() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}
