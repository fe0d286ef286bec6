//! The crash harness's short version for CI: the debug `tron-signer` under load, SIGKILLed
//! and restarted 5 times, then every check of `tron-signer-crash` (scripts/crash-harness.sh
//! runs the long one on release binaries; RELIABILITY.md records it).

use std::path::PathBuf;
use std::process::Command;

/// The `tron-signer` binary of the same build: beside this package's own binaries in the
/// target directory. Cargo builds it for `cargo test --workspace` (the root package's
/// integration tests need it), not for `cargo test -p tron-signer-tools` alone.
fn signer_binary() -> PathBuf {
    let harness = PathBuf::from(env!("CARGO_BIN_EXE_tron-signer-crash"));
    let signer = harness.with_file_name("tron-signer");
    assert!(
        signer.is_file(),
        "no tron-signer binary at {}: run `cargo test --workspace`, or build it first with \
         `cargo build -p tron-signer --bin tron-signer` (same profile and target dir)",
        signer.display()
    );
    signer
}

#[test]
fn five_sigkills_under_load_lose_nothing_and_overrun_nothing() {
    let signer = signer_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_tron-signer-crash"))
        .arg("--signer")
        .arg(&signer)
        .arg("--dir")
        .arg(&run_dir)
        .args(["--kills", "5", "--clients", "6", "--seed", "17"])
        .output()
        .expect("run tron-signer-crash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the crash harness failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // The figures the harness must have reached for its checks to mean something.
    let line = |label: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"))
            .to_owned()
    };
    assert!(
        line("kills ").starts_with("kills             5 (SIGKILL)"),
        "{stdout}"
    );
    assert_eq!(line("overruns"), "overruns          0", "{stdout}");
    assert_eq!(line("duplicate payouts"), "duplicate payouts 0", "{stdout}");
    assert!(line("audit verify").contains("ok: "), "{stdout}");
    assert!(line("client refusals").contains("_window"), "{stdout}");
    assert_eq!(line("result"), "result            PASS", "{stdout}");
}
