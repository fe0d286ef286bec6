//! Compiles the protocol subset and the signer API with protox (pure Rust), so no system
//! `protoc` is needed, and keeps the encoded descriptor set for gRPC server reflection.
//! The gRPC client is generated only with the `client` feature.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["protos/tron.proto", "protos/signer.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["protos"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("signer_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // The generated client (and its `connect`) only with the `client` feature: it needs
    // tonic's transport, which the wire crate does not link by default.
    let client = std::env::var_os("CARGO_FEATURE_CLIENT").is_some();
    tonic_prost_build::configure()
        .build_client(client)
        .build_transport(client)
        .compile_fds(fds)?;
    Ok(())
}
