//! The real binaries for the broadcaster's end-to-end tests: `tron-signer` (where cargo built
//! it, its command line, `serve` started and waited for) and `tron-broadcaster serve` started
//! and read for its bound addresses. One copy for every test that runs both processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The keystore passphrase these tests use, and the variable a signer config reads it from.
pub const PASSPHRASE_VAR: &str = "TRON_BROADCASTER_TEST_SIGNER_PASSPHRASE";
pub const PASSPHRASE: &str = "broadcaster test passphrase";

/// `tron-signer`, beside the broadcaster binary (`cargo test --workspace` builds both).
pub fn signer_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
        .with_file_name(format!("tron-signer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p tron-signer` (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// A child process killed when the value is dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `tron-signer ARGS` with the passphrase in its environment and `stdin` on its input;
/// panics unless it succeeds.
pub fn signer_cli(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(signer_bin())
        .args(args)
        .env(PASSPHRASE_VAR, PASSPHRASE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tron-signer");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for tron-signer");
    assert!(
        out.status.success(),
        "tron-signer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `tron-signer serve --config CONFIG`, its log in `dir/signer.log`, and waits (30 s
/// at most) until its Unix socket exists.
pub async fn serve(dir: &Path, config: &Path, socket: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("signer.log")).expect("signer log");
    let child = Command::new(signer_bin())
        .args(["serve", "--config"])
        .arg(config)
        .env(PASSPHRASE_VAR, PASSPHRASE)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn tron-signer serve");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the signer did not start: {}",
            std::fs::read_to_string(dir.join("signer.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proc
}

/// Imports `secret` (hex) into the keystore at `keystore` under `label`, at the lowest
/// argon2id cost (a test keystore, opened at every start).
pub fn import_key(keystore: &str, label: &str, secret: &str) {
    signer_cli(
        &[
            "keys",
            "import",
            "--keystore",
            keystore,
            "--label",
            label,
            "--passphrase-env",
            PASSPHRASE_VAR,
            "--kdf-m-cost",
            "1024",
            "--kdf-t-cost",
            "1",
        ],
        Some(&format!("{secret}\n")),
    );
}

/// A running `tron-broadcaster serve`: its payout API's base URL and, when `[metrics]` is
/// configured, the metrics listener's address, both as the process logged them.
pub struct Broadcaster {
    pub proc: Proc,
    pub api: String,
    pub metrics: Option<SocketAddr>,
}

/// The value of `name` (e.g. `listen=`) in a log line.
fn log_field(line: &str, name: &str) -> Option<String> {
    let at = line.find(name)? + name.len();
    line[at..].split_whitespace().next().map(str::to_owned)
}

/// Starts `tron-broadcaster -c CONFIG serve` and waits until it logs that it serves; its
/// whole log is copied to `log`. Panics, with the log, if it exits first.
pub fn serve_broadcaster(config: &Path, log: &Path) -> Broadcaster {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
        .arg("-c")
        .arg(config)
        .arg("serve")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tron-broadcaster serve");
    let stderr = child.stderr.take().expect("stderr");
    let proc = Proc(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut file = std::fs::File::create(log).expect("broadcaster log");
    let mut metrics = None;
    let api = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "tron-broadcaster serve exited before listening: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        let _ = writeln!(file, "{line}");
        if line.contains("metrics listener") {
            metrics = log_field(&line, "metrics=").and_then(|a| a.parse().ok());
        }
        if line.contains("tron-broadcaster serving") {
            break log_field(&line, "listen=").expect("the serving line names listen=");
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
        }
    });
    Broadcaster {
        proc,
        api: format!("http://{api}"),
        metrics,
    }
}
