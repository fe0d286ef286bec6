//! The broadcaster is untrusted: it must not link the signer or any key backend.

use std::process::Command;

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
    // Not `--offline`: a fresh machine has not downloaded other platforms' packages, and
    // cargo metadata needs them. The resolve is filtered to this host, the graph that links.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host_triple()])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let name_of = |id: &str| {
        packages
            .iter()
            .find(|p| p["id"] == id)
            .and_then(|p| p["name"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let root = packages
        .iter()
        .find(|p| p["name"] == "tron-broadcaster")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Walk normal (non-dev) dependencies transitively.
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).unwrap();
        for d in node["deps"].as_array().unwrap() {
            let normal = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(d["pkg"].as_str().unwrap().to_owned());
            }
        }
    }
    let names: Vec<String> = seen.iter().map(|id| name_of(id)).collect();
    assert!(names.iter().any(|n| n == "tron-proto"));
    // The walk is transitive (k256 comes only through tron-proto) and skips dev-deps.
    assert!(names.iter().any(|n| n == "k256"));
    assert!(!names.iter().any(|n| n == "tempfile"));
    for f in FORBIDDEN {
        assert!(
            !names.iter().any(|n| n == f),
            "tron-broadcaster depends on {f}"
        );
    }
}

/// The host target triple, as rustc reports it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_owned()
}
