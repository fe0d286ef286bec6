//! Which packages a workspace package links, from `cargo tree`: the trust-boundary tests use
//! it to keep key crates out of the untrusted side and out of feature-reduced builds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Names of every package that `package` (in the workspace of `manifest`) links on this host
/// through normal dependencies, transitively, with `cargo tree` run with `args` (e.g.
/// `["--no-default-features"]`). Dev- and build-dependencies are not followed, and features
/// are resolved for `package` alone, as a build of it would.
///
/// Not `--offline`: a fresh machine has not downloaded every package yet. Panics with cargo's
/// message when cargo fails: this is test scaffolding.
pub fn normal_dependencies(manifest: &Path, package: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "-p", package])
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.remove(package);
    names
}
