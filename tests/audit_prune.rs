//! Retention on the real binary (issue 17, item 5): `audit prune` removes records past every
//! window once an evidence bundle archives them, and everything stays verifiable: the
//! archive on its own, the ledger from the anchor it keeps. What a window, a txid retry or a
//! payout id may still need is refused, and so is a running signer's ledger.
//!
//! The old records are made by the real signer under libfaketime 40 days back (wall clock
//! only), then it signs again on the real clock.

mod common;

use common::*;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;
const TRX: u64 = 1_000_000;
/// Debian's libfaketime, installed by scripts/test.sh.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn policy() -> String {
    PolicyText::new("retention")
        .key(
            Key::new(KEY1, "hot", &["TRX"])
                .window("TRX", "24h", "100")
                .destination(
                    Destination::new(dest(0xa1), "sink", &["TRX"]).per_tx_max("TRX", "10"),
                ),
        )
        .text()
}

fn one_trx(now: i64, nonce: u16) -> Vec<u8> {
    Tx {
        expiration: now + MIN,
        timestamp: now,
        ..Tx::trx(KEY1, dest(0xa1), TRX).nonce(nonce)
    }
    .raw()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn audit_prune_removes_archived_old_records_and_both_parts_still_verify() {
    if skip_on_postgres("audit_prune_removes_archived_old_records_and_both_parts_still_verify") {
        return;
    }
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (scripts/test.sh does)"
    );
    let mut s = Setup::new(&[("hot", KEY1_SECRET)], &policy());
    // The signer comes back 40 days after it last signed, which it must be told to accept.
    s.write_config(&format!(
        "{}\n[clock]\nmax_advance = \"60d\"\n",
        s.keystore_section()
    ));

    // 40 days ago: three signatures.
    s.replace_env(vec![
        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
        ("FAKETIME".into(), "-40d".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]);
    let mut srv = s.start().await;
    let then = now_ms() - 40 * DAY;
    for n in 1..=3u16 {
        srv.client
            .sign(request(KEY1, one_trx(then, n), &format!("old-{n}")))
            .await
            .expect("signed 40 days ago");
    }
    srv.stop();

    // Today: two more; the first of them is kept to be retried after the prune.
    s.replace_env(Vec::new());
    let mut srv = s.start().await;
    let now = now_ms();
    let recent = one_trx(now, 10);
    let first = srv
        .client
        .sign(request(KEY1, recent.clone(), "new-10"))
        .await
        .expect("signed today")
        .into_inner();
    srv.client
        .sign(request(KEY1, one_trx(now, 11), "new-11"))
        .await
        .expect("signed today");

    // The records of the faketime run are the old ones.
    let records = s.audit_records();
    let old: Vec<u64> = records
        .iter()
        .filter(|r| r["time_ms"].as_i64().unwrap_or(i64::MAX) < now - 30 * DAY)
        .filter_map(|r| r["sequence"].as_u64())
        .collect();
    let through = *old.last().expect("old records");
    assert_eq!(
        old,
        (1..=through).collect::<Vec<_>>(),
        "old records come first"
    );
    let total = records.len() as u64;
    assert!(total > through + 1, "{records:?}");

    // The archive.
    let bundle = s.dir.path().join("archive-1.json");
    let out = s.run(&[
        "audit",
        "bundle",
        "--data-dir",
        path_str(&s.data_dir),
        "--from",
        "1",
        "--to",
        &through.to_string(),
        "--out",
        path_str(&bundle),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let prune = |through: u64| {
        s.run(&[
            "audit",
            "prune",
            "--data-dir",
            path_str(&s.data_dir),
            "--through",
            &through.to_string(),
            "--archive",
            path_str(&bundle),
        ])
    };

    // A running signer's ledger is not touched.
    let out = prune(through);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("error [audit_prune_refused]"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("stop it first"), "{}", text(&out));
    srv.stop();

    // Today's records are inside the retention; the archive does not hold them either.
    let out = prune(through + 1);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("error [audit_prune_refused]"),
        "{}",
        text(&out)
    );

    // An archive that does not verify is refused before the ledger is touched.
    let forged = s.dir.path().join("archive-forged.json");
    let bundle_text = std::fs::read_to_string(&bundle).expect("read the archive");
    let at = bundle_text.find("\"canonical\": \"").expect("a record") + 20;
    let flipped = if bundle_text.as_bytes()[at] == b'0' {
        "1"
    } else {
        "0"
    };
    std::fs::write(
        &forged,
        format!("{}{flipped}{}", &bundle_text[..at], &bundle_text[at + 1..]),
    )
    .expect("write the forged archive");
    let out = s.run(&[
        "audit",
        "prune",
        "--data-dir",
        path_str(&s.data_dir),
        "--through",
        &through.to_string(),
        "--archive",
        path_str(&forged),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("error [audit_"), "{}", text(&out));
    assert!(text(&out).contains("archive-forged.json"), "{}", text(&out));

    let out = prune(through);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "pruned records 1 to {through} (3 signature entries)"
        )),
        "{}",
        text(&out)
    );

    // What is left verifies from the anchor; the archive verifies on its own.
    let out = s.run(&["audit", "verify", "--data-dir", path_str(&s.data_dir)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "ok: {} records from record {}",
            total - through,
            through + 1
        )),
        "{}",
        text(&out)
    );
    let out = s.run(&["audit", "verify", "--bundle", path_str(&bundle)]);
    assert!(out.status.success(), "{}", text(&out));
    let sequences: Vec<u64> = s
        .audit_records()
        .iter()
        .filter_map(|r| r["sequence"].as_u64())
        .collect();
    assert_eq!(sequences, (through + 1..=total).collect::<Vec<_>>());

    // The signer serves on: a retry of today's first transaction gets its signature back.
    let mut srv = s.start().await;
    let again = srv
        .client
        .sign(request(KEY1, recent, "new-10"))
        .await
        .expect("the retry is answered")
        .into_inner();
    assert_eq!(again.signature, first.signature);
    srv.stop();
    s.assert_audit_verifies();
}
