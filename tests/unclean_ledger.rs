//! A ledger a SIGKILL left behind (found by the crash harness, RELIABILITY.md): the read-only
//! audit commands cannot run redb's recovery, so they refuse it, and their message says what
//! does (starting the signer once). After that start, nothing committed is missing.

mod common;

use common::*;

const TRX: u64 = 1_000_000;

fn policy() -> String {
    common::policy::one_trx_key_with_daily_max("unclean ledger", "1000000")
}

#[tokio::test]
async fn audit_commands_on_a_killed_signers_ledger_say_a_start_repairs_it() {
    let s = Setup::new(&[("hot", KEY1_SECRET)], &policy());
    let mut srv = s.start().await;
    let mut signed = Vec::new();
    for n in 1..=3u16 {
        let raw = Tx::trx(KEY1, dest(0xa1), TRX).nonce(n).raw();
        let r = srv
            .client
            .sign(request(KEY1, raw, &format!("p-{n}")))
            .await
            .expect("signs");
        signed.push(hex::encode(r.into_inner().txid));
    }
    srv.signal("KILL");
    let _ = srv.child.wait();

    let data = path_str(&s.data_dir);
    let out = s.run(&["audit", "verify", "--data-dir", data]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("error [ledger_open]"), "{err}");
    assert!(err.contains("start the signer once"), "{err}");

    // One start repairs it; every signature released before the kill is there.
    let srv = s.start().await;
    srv.stop();
    s.assert_audit_verifies();
    let recorded: Vec<String> = s
        .records_with("signed")
        .iter()
        .filter_map(|r| r["txid"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(recorded, signed);
}
