//! Generates Rust for `proto/*.proto` with the pure-Rust protobuf 2.x code generator
//! (no `protoc` needed), into `OUT_DIR`.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let protos = ["proto/bcfl.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    protobuf_codegen_pure::Codegen::new()
        .out_dir(&out)
        .inputs(protos)
        .include("proto")
        .customize(protobuf_codegen_pure::Customize {
            gen_mod_rs: Some(true),
            ..Default::default()
        })
        .run()
        .expect("protobuf code generation failed");
}
