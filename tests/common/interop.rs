//! The TronWeb/tronpy reference libraries, as installed by `tests/interop/setup.sh`, and
//! their signature verifiers (JSON lines `{txid, signature, owner}` on standard input).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where setup.sh put the Python venv and the node modules.
pub struct Env {
    pub python: String,
    pub node_modules: String,
}

/// Runs `tests/interop/setup.sh` (idempotent: registries only, the first time).
pub fn setup() -> Env {
    let out = Command::new("bash")
        .arg(root().join("tests/interop/setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/interop/setup.sh");
    assert!(out.status.success(), "interop setup failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("setup.sh printed no {key}"))
            .to_owned()
    };
    Env {
        python: get("INTEROP_PYTHON"),
        node_modules: get("INTEROP_NODE_MODULES"),
    }
}

/// Runs `program tests/interop/<script> args...` with `stdin`, asserting success.
pub fn run(env: &Env, program: &str, script: &str, args: &[&str], stdin: Option<&str>) -> String {
    let script = root().join("tests/interop").join(script);
    let mut child = Command::new(program)
        .arg(&script)
        .args(args)
        .env("INTEROP_NODE_MODULES", &env.node_modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} {}: {e}", script.display()));
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.unwrap_or("").to_owned();
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Both libraries must recover `owner` from every `{txid, signature, owner}`.
pub fn verify_with_both(env: &Env, signed: &[Value]) {
    let input: String = signed.iter().map(|v| format!("{v}\n")).collect();
    let want = format!("{} passed, 0 failed", signed.len());
    let tw = run(env, "node", "verify_tronweb.js", &[], Some(&input));
    assert!(tw.contains(&want), "TronWeb verify: {tw}");
    let tp = run(env, &env.python, "verify_tronpy.py", &[], Some(&input));
    assert!(tp.contains(&want), "tronpy verify: {tp}");
}
