//! The broadcaster is untrusted: it must not link the signer or any key backend.

const FORBIDDEN: &[&str] = &[
    "tron-signer",
    "cryptoki",
    "cryptoki-sys",
    "chacha20poly1305",
    "argon2",
    "rpassword",
];

#[test]
fn no_key_backend_in_the_dependency_graph() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let names = tron_testkit::deps::normal_dependencies(manifest.as_ref(), "tron-broadcaster", &[]);
    assert!(names.contains("tron-proto"));
    // The walk is transitive (k256 comes only through tron-proto) and skips dev-deps.
    assert!(names.contains("k256"));
    assert!(!names.contains("tempfile"));
    for f in FORBIDDEN {
        assert!(!names.contains(*f), "tron-broadcaster depends on {f}");
    }
}
