//! The opt-in metrics listener (issue 17, item 1) on the real binary: `GET /metrics` on its
//! own TCP port shows what the signer decided (by RPC, decision and reason code), how long
//! Sign, the ledger's group commits and the key backend took, each key window's used
//! fraction, the policy in force and the audit head; every other request is refused; a
//! config that would put metrics on the signing port does not start; and the example alert
//! rules (ops/prometheus) pass `promtool check rules` and their own `promtool test rules`
//! (that they name only metrics the signer has is checked in `src/metrics.rs`).

mod common;

use common::policy::policy_preamble;
use common::*;

const TRX: u64 = 1_000_000;

fn policy() -> String {
    let mut p = policy_preamble("metrics", "60s");
    p.push_str(&format!(
        r#"
[[key]]
address = "{KEY1}"
label = "payouts"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "100" }}]

  [[key.destination]]
  address = "{dest}"
  label = "treasury"
  assets = ["TRX"]
  per_tx_max = {{ TRX = "10" }}
"#,
        dest = dest(9).to_base58()
    ));
    p
}

use common::scrape::{http, sample};

#[tokio::test]
async fn metrics_show_decisions_latencies_windows_and_the_policy() {
    let s = Setup::new(&[("payouts", KEY1_SECRET)], &policy());
    let port = free_loopback_port();
    s.write_config(&format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        s.keystore_section()
    ));
    let mut srv = s.start().await;
    srv.client
        .sign(request(KEY1, Tx::trx(KEY1, dest(9), 5 * TRX).raw(), "p-1"))
        .await
        .expect("allowed");
    let refused = srv
        .client
        .sign(request(KEY1, Tx::trx(KEY1, dest(9), 11 * TRX).raw(), "p-2"))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "over_per_tx_max");

    let page = http(port, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("content-type: application/openmetrics-text"),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            r#"tron_signer_decisions_total{method="Sign",decision="allow",code="signed"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &page,
            r#"tron_signer_decisions_total{method="Sign",decision="deny",code="over_per_tx_max"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&page, "tron_signer_sign_duration_seconds_count"),
        2.0
    );
    assert!(sample(&page, "tron_signer_ledger_commit_entries_count") >= 2.0);
    assert!(sample(&page, "tron_signer_ledger_commit_duration_seconds_sum") > 0.0);
    assert_eq!(
        sample(
            &page,
            r#"tron_signer_key_backend_sign_duration_seconds_count{backend="soft"}"#
        ),
        1.0
    );
    // 5 of the 100 TRX a day.
    assert_eq!(
        sample(
            &page,
            &format!(r#"tron_signer_window_usage_ratio{{key="{KEY1}",asset="TRX",window="24h"}}"#)
        ),
        0.05
    );
    let hash = String::from_utf8(s.run(&["policy", "hash", path_str(&s.policy)]).stdout).unwrap();
    let hash = hash.split_whitespace().next().unwrap();
    assert!(
        page.contains(&format!(
            r#"tron_signer_policy_info{{hash="{hash}",name="metrics",revision="0"}} 1"#
        )),
        "{page}"
    );
    // The start record, then one per request.
    assert!(sample(&page, "tron_signer_audit_head_sequence") >= 3.0);
    // Nothing but bounded labels: no payout id or txid anywhere.
    assert!(!page.contains("p-1") && !page.contains("p-2"), "{page}");

    assert!(http(port, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(port, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let huge = format!("GET /metrics HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(20_000));
    assert!(http(port, &huge).starts_with("HTTP/1.1 431"));
    srv.stop();
}

#[test]
fn metrics_on_the_signing_port_do_not_start() {
    let s = Setup::new(&[("payouts", KEY1_SECRET)], &policy());
    let port = free_loopback_port();
    s.write_config_listening(
        &format!("127.0.0.1:{port}"),
        &format!(
            "insecure_plaintext = true\n{}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            s.keystore_section()
        ),
    );
    let (status, out) = s.serve_until_exit();
    assert!(!status.success());
    assert!(
        out.contains("config_invalid") && out.contains("shares its port"),
        "{out}"
    );
}

fn rules_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/prometheus")
}

/// promtool: from `TRON_SIGNER_PROMTOOL` (scripts/test.sh extracts Debian's), else PATH.
fn promtool() -> std::process::Command {
    let tool = std::env::var("TRON_SIGNER_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut cmd = std::process::Command::new(tool);
    cmd.current_dir(rules_dir());
    cmd
}

#[test]
fn the_example_alert_rules_pass_promtool() {
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts_test.yml"][..],
    ] {
        let out = promtool().args(args).output().unwrap_or_else(|e| {
            panic!("promtool not found ({e}): run scripts/test.sh, which provides it")
        });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "{text}");
    }
    // A broken rule is refused: the check can fail.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yml"),
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]) >\n",
    )
    .unwrap();
    let out = promtool()
        .args(["check", "rules"])
        .arg(dir.path().join("bad.yml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}
