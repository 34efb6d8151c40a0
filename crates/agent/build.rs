//! Generates the protobuf messages and the ttrpc services of runr-agent's API from proto/ into
//! OUT_DIR, with ttrpc-codegen (pure Rust, no protoc).

use std::path::PathBuf;

const PROTOS: &[&str] = &["agent", "health", "oci", "types"];

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let inputs: Vec<String> = PROTOS.iter().map(|p| format!("proto/{p}.proto")).collect();
    for input in &inputs {
        println!("cargo:rerun-if-changed={input}");
    }
    ttrpc_codegen::Codegen::new()
        .out_dir(&out)
        .inputs(&inputs)
        .include("proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .rust_protobuf_customize(ttrpc_codegen::ProtobufCustomize::default().gen_mod_rs(false))
        .run()
        .expect("generate the agent's protobuf and ttrpc code");

    // One module per generated file, siblings, so that `super::oci::Spec` in agent.rs resolves.
    let mut modules = String::new();
    for p in PROTOS {
        modules.push_str(&format!("pub mod {p};\n"));
    }
    for p in ["agent", "health"] {
        modules.push_str(&format!("pub mod {p}_ttrpc;\n"));
    }
    std::fs::write(out.join("mod.rs"), modules).expect("write OUT_DIR/mod.rs");
}
