//! Build script of `bcfl-cli`: how the two binaries link when bcfl-client has `train`.
//!
//! bcfl-client declares `links = "bcfl-client"` and, with `train`, prints
//! `cargo:libtorch_lib=<dir>`, which cargo hands to this script as
//! `DEP_BCFL_CLIENT_LIBTORCH_LIB`. Then:
//!
//! - Every target gets that folder as an rpath, as in bcfl-client: `bcfl-train`, and the test
//!   binaries that link training code, must find libtorch's shared libraries without
//!   `LD_LIBRARY_PATH` (see bcfl-client's build script). For `bcfl`, which needs none of them,
//!   it is a folder the loader never has a reason to look in.
//! - `bcfl` must not load libtorch although cargo compiles bcfl-client with `train` for every
//!   dependent of a workspace build with `--features bcfl-client/train`. Its code references no
//!   training, but the objects it needs from bcfl-client's archive also hold training code
//!   (codegen units mix modules, and shared generic instances live anywhere), which pulls in
//!   tch and torch-sys's C++ objects. The linker's `--gc-sections` drops that code again, and
//!   `--as-needed` then records no libtorch library, except that C++ vtables and type infos
//!   that libtorch refers to are exported from the executable, which keeps them and their
//!   references alive. `--exclude-libs ALL` exports no symbol of a static archive (an
//!   executable has nothing to export to libraries), so only code `bcfl` runs stays linked.
//!   `client/cli/tests/it` checks the result with `ldd`.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_BCFL_CLIENT_LIBTORCH_LIB");
    // Without `train` there is no libtorch, and no bcfl-train (`required-features`).
    let Some(lib_dir) = env::var_os("DEP_BCFL_CLIENT_LIBTORCH_LIB") else {
        return;
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
    println!("cargo:rustc-link-arg-bin=bcfl=-Wl,--exclude-libs,ALL");
}
