//! A full disk, and the space coming back (issue 11, item 3), on the real binary with its data
//! directory on a small tmpfs.
//!
//! The finding: refusals were clean while the disk was full, but after space returned every
//! request still failed ("Previous I/O error occurred"), gRPC health stayed SERVING and no
//! ERROR was logged. Now the failed store is closed, health says NOT_SERVING, an ERROR is
//! logged, and the store is reopened with back-off until it works; signing then resumes and
//! the audit chain verifies with every released signature in it.
//!
//! Mounting a tmpfs needs root, which the test script has. Set
//! `TRON_SIGNER_NO_ROOT_TESTS=1` to skip it on a machine without (it says so on stderr).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tron_proto::signer::{GetPolicyRequest, ListKeysRequest};

const TRX: u64 = 1_000_000;

/// A tmpfs mounted on a directory for as long as the value lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (scripts/test.sh runs as root; set \
             TRON_SIGNER_NO_ROOT_TESTS=1 to skip): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                break;
            }
        }
    }
    // Whatever the page cache still holds must reach the tmpfs too.
    let _ = f.sync_all();
    written
}

fn policy() -> String {
    common::policy::one_trx_key_with_daily_max("disk full", "1000000")
}

#[tokio::test]
async fn a_full_disk_refuses_cleanly_reports_not_serving_and_recovers_when_space_returns() {
    if std::env::var_os("TRON_SIGNER_NO_ROOT_TESTS").is_some() {
        eprintln!("skipped: TRON_SIGNER_NO_ROOT_TESTS is set");
        return;
    }
    let s = Setup::new(&[("hot", KEY1_SECRET)], &policy());
    let _tmpfs = Tmpfs::mount(&s.data_dir, "8m");
    let mut srv = s.start().await;
    assert_eq!(
        health(&s.endpoint()).await,
        (ServingStatus::Serving, ServingStatus::Serving)
    );

    let mut released = Vec::new();
    let mut nonce = 0u16;
    let mut sign = |srv: &mut Server| {
        nonce += 1;
        let raw = Tx::trx(KEY1, dest(0xa1), TRX).nonce(nonce).raw();
        let req = request(KEY1, raw, &format!("p-{nonce}"));
        let mut client = srv.client.clone();
        async move { client.sign(req).await }
    };
    for _ in 0..5 {
        released.push(
            sign(&mut srv)
                .await
                .expect("signs with space")
                .into_inner()
                .txid,
        );
    }

    // Fill the filesystem, then sign until the ledger cannot record.
    let filler = s.data_dir.join("filler");
    assert!(fill(&filler) > 0);
    let mut refused = None;
    for _ in 0..5_000 {
        match sign(&mut srv).await {
            Ok(r) => released.push(r.into_inner().txid),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let status = refused.expect("a full disk refuses within 5000 signatures");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "ledger_unavailable", "{status:?}");

    // Not healthy, said so in the log, and still refusing (Evaluate too: it is audited).
    assert!(
        wait_for_health(&s.endpoint(), ServingStatus::NotServing).await,
        "health NOT_SERVING while the ledger cannot record"
    );
    let log = srv.log_text();
    assert!(log.contains("ERROR"), "an ERROR line is logged:\n{log}");
    assert!(log.contains("ledger write failed"), "{log}");
    let again = sign(&mut srv).await.expect_err("still full");
    assert_eq!(reason(&again), "ledger_unavailable", "{again:?}");
    let eval = srv
        .client
        .evaluate(request(
            KEY1,
            Tx::trx(KEY1, dest(0xa1), TRX).nonce(9_999).raw(),
            "eval",
        ))
        .await
        .expect_err("Evaluate cannot be audited either");
    assert_eq!(reason(&eval), "ledger_unavailable", "{eval:?}");
    // What needs no record keeps working: the keys and the policy in force.
    let keys = srv
        .client
        .list_keys(ListKeysRequest {})
        .await
        .expect("ListKeys needs no ledger write")
        .into_inner();
    assert_eq!(keys.keys.len(), 1, "{keys:?}");
    srv.client
        .get_policy(GetPolicyRequest {})
        .await
        .expect("GetPolicy needs no ledger write");

    // Space returns: the store is reopened by itself and signing resumes, same process.
    std::fs::remove_file(&filler).expect("remove filler");
    assert!(
        wait_for_health(&s.endpoint(), ServingStatus::Serving).await,
        "health SERVING again once the disk has room:\n{}",
        srv.log_text()
    );
    for _ in 0..3 {
        released.push(sign(&mut srv).await.expect("signs again").into_inner().txid);
    }
    assert!(
        srv.log_text().contains("commits resume"),
        "{}",
        srv.log_text()
    );
    let pid = srv.child.id();
    srv.stop();

    // Nothing released is missing, and the chain verifies.
    s.assert_audit_verifies();
    let signed: std::collections::HashSet<String> = s
        .audit_records()
        .into_iter()
        .filter(|r| r["reason_code"] == "signed")
        .filter_map(|r| r["txid"].as_str().map(str::to_owned))
        .collect();
    for txid in &released {
        assert!(
            signed.contains(&hex::encode(txid)),
            "released {} missing from the audit (pid {pid})",
            hex::encode(txid)
        );
    }
    assert_eq!(
        signed.len(),
        released.len(),
        "nothing signed that was not released"
    );
}
