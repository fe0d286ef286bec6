//! The `pkcs11` feature is the only way `cryptoki` enters the signer: a build without it
//! links no PKCS#11 code at all.

#[test]
fn no_cryptoki_without_the_pkcs11_feature() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let with = tron_testkit::deps::normal_dependencies(manifest.as_ref(), "tron-signer", &[]);
    // The walk sees the backend when the default features are on, so its absence below counts.
    assert!(with.contains("cryptoki"), "{with:?}");
    let without = tron_testkit::deps::normal_dependencies(
        manifest.as_ref(),
        "tron-signer",
        &["--no-default-features"],
    );
    assert!(without.contains("k256"));
    for f in ["cryptoki", "cryptoki-sys"] {
        assert!(!without.contains(f), "tron-signer without pkcs11 links {f}");
    }
}
