//! Loading a policy with one key and a large `[[key.destination]]` allowlist: wall time and
//! peak RSS growth (VmHWM from /proc/self/status), against just reading the file's bytes.
//!
//! Each measurement runs in a fresh child process (this binary re-executed with `--child`),
//! so one measurement's peak cannot hide another's. Set `POLICY_DESTS` to change the size
//! (default 100,000).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use tron_testkit::big_policy::{Destinations, Window};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let mode = args.get(i + 1).map(String::as_str).unwrap_or("");
        let path = args.get(i + 2).map(String::as_str).unwrap_or("");
        child(mode, Path::new(path));
        return;
    }
    let dests: usize = std::env::var("POLICY_DESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.toml");
    let text = policy_text(dests);
    std::fs::write(&path, &text).expect("write");
    drop(text);
    let size = std::fs::metadata(&path).expect("stat").len();
    println!(
        "policy_load: 1 key, {dests} destinations, {:.1} MiB file",
        size as f64 / (1 << 20) as f64
    );
    let exe = std::env::current_exe().expect("current exe");
    let mut results = Vec::new();
    for mode in ["read", "load"] {
        let out = Command::new(&exe)
            .args(["--child", mode])
            .arg(&path)
            .output()
            .expect("spawn child");
        assert!(
            out.status.success(),
            "child {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut it = line
            .split_whitespace()
            .map(|x| x.parse::<f64>().unwrap_or(0.0));
        let (secs, kib) = (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0));
        let kept = it.next().unwrap_or(0.0);
        println!(
            "  {mode:<5} time {:>9.1} ms   peak RSS growth {:>8.1} MiB   still resident after {:>8.1} MiB",
            secs * 1e3,
            kib / 1024.0,
            kept / 1024.0
        );
        results.push((secs, kib));
    }
    let (read, load) = (results[0], results[1]);
    println!(
        "  ratio load/read: time {:.1}x, peak RSS growth {:.2}x ({:.2} x file size)",
        load.0 / read.0.max(1e-9),
        load.1 / read.1.max(1.0),
        load.1 * 1024.0 / size as f64
    );
}

/// Runs one measurement and prints "seconds peak_growth_kib resident_growth_kib" (the
/// result is still alive when RSS is read).
fn child(mode: &str, path: &Path) {
    let before = vm_hwm_kib();
    let start = Instant::now();
    let result: Box<dyn std::any::Any> = match mode {
        "read" => {
            let bytes = std::fs::read(path).expect("read");
            Box::new(String::from_utf8(bytes).expect("utf8"))
        }
        "load" => {
            let p = tron_signer::policy::load_file(path).expect("policy loads");
            assert!(p.policy.keys[0].destinations.len() > 1);
            Box::new(p)
        }
        _ => panic!("unknown mode {mode}"),
    };
    std::hint::black_box(&result);
    let secs = start.elapsed().as_secs_f64();
    let after = vm_hwm_kib();
    let mut out = std::io::stdout().lock();
    let resident = vm_kib("VmRSS:");
    writeln!(
        out,
        "{secs} {} {}",
        after.saturating_sub(before),
        resident.saturating_sub(before)
    )
    .expect("stdout");
    drop(result);
}

fn vm_hwm_kib() -> u64 {
    vm_kib("VmHWM:")
}

/// A /proc/self/status field in KiB.
fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("status field")
}

/// The head of the benchmark policy: one key allowing TRX and USDT.
const HEAD: &str = r#"version = 1
name = "bench policy"
network = "mainnet"

[global]
max_fee_limit = "100"
max_expiration = "10m"
clock_skew = "1m"

[[token]]
symbol = "USDT"
contract = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
decimals = 6

[[caller]]
name = "payments"
unix_uid = 1000
rpcs = ["Sign"]
all_keys = true

[[key]]
address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"
label = "hot key"
assets = ["TRX", "USDT"]
windows = [
  { asset = "USDT", window = "1h", max = "1000000" },
  { asset = "TRX", window = "24h", max = "1000000" },
]
"#;

/// A valid policy: [`HEAD`] and `dests` distinct destinations, each with both assets,
/// per-transaction maxima and a USDT window.
fn policy_text(dests: usize) -> String {
    Destinations {
        count: dests,
        tail: Destinations::tail_byte(0x5a),
        label: "customer",
        assets: &["TRX", "USDT"],
        per_tx_max: &[("TRX", "500"), ("USDT", "250.5")],
        windows: &[Window {
            asset: "USDT",
            window: "24h",
            max: "5000",
        }],
    }
    .policy(HEAD)
}
