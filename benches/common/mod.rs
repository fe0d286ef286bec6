//! What the benches share: reading back the estimates criterion wrote in this run, so each
//! bench can print its ratios against the raw primitive it measured alongside.

use std::path::PathBuf;

/// The mean criterion just estimated for benchmark `id` (its directory name: the group and
/// function joined by `_`), in nanoseconds.
pub fn read_mean_ns(id: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir
        .join("criterion")
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}
