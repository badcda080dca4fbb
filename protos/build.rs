//! Generates Rust for `proto/bcfl.proto` and Sawtooth's `proto/sawtooth/{transaction,batch}.proto`
//! with the pure-Rust protobuf 2.x code generator (no `protoc` needed), into `OUT_DIR`.
//!
//! rust-protobuf 2.28 opens each generated file with inner `#![allow(...)]` attributes, one of
//! which names a lint newer compilers have removed. Inner attributes cannot appear in an
//! `include!`d file, so each file is rewritten without them; `lib.rs` wraps it in a module that
//! carries the allowances as outer attributes.

use std::path::PathBuf;

/// Each generated module and the file it comes from. `batch.proto` imports `transaction.proto`
/// by its bare name, so `proto/sawtooth` is an include path too.
const PROTOS: [(&str, &str); 3] = [
    ("bcfl", "proto/bcfl.proto"),
    ("transaction", "proto/sawtooth/transaction.proto"),
    ("batch", "proto/sawtooth/batch.proto"),
];

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let inputs: Vec<&str> = PROTOS.iter().map(|(_, file)| *file).collect();
    for input in &inputs {
        println!("cargo:rerun-if-changed={input}");
    }
    protobuf_codegen_pure::Codegen::new()
        .out_dir(&out)
        .inputs(&inputs)
        .include("proto")
        .include("proto/sawtooth")
        .run()
        .expect("protobuf code generation failed");
    for (name, _) in PROTOS {
        let generated = out.join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&generated).expect("generated file is readable");
        let cleaned: String = text
            .lines()
            .filter(|line| !line.starts_with("#![") && !line.starts_with("//!"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(out.join(format!("{name}_gen.rs")), cleaned).expect("OUT_DIR is writable");
    }
}
