//! An fsync that fails (issue 17, item 3), on the real binary: while every `fsync` and
//! `fdatasync` of the signer process returns EIO, no signature leaves it; once they work
//! again it signs again, and every signature it released is in a verifying audit chain.
//!
//! The failure is real to the process: a small preloaded library (compiled here with the
//! system C compiler) answers both calls with EIO while a flag file exists, as a disk
//! whose write cache died would. Unlike the ledger's own fault hook, redb's commit really
//! runs and really sees the error, and whatever it had written stays in the page cache,
//! which is the hard case: the failed commit may be durable after all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const TRX: u64 = 1_000_000;

/// The preloaded library's source. It names itself on stderr each time it fails a call, so
/// the test can tell that the failure was really met.
const SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char *flag = getenv("TRON_SIGNER_FSYNC_FAULT_FLAG");
    return flag != NULL && access(flag, F_OK) == 0;
}

int fsync(int fd) {
    if (failing()) {
        fprintf(stderr, "fsync-fault: fsync(%d) -> EIO\n", fd);
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd) {
    if (failing()) {
        fprintf(stderr, "fsync-fault: fdatasync(%d) -> EIO\n", fd);
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
"#;

/// Compiles the shim into `dir`; the path of the shared object.
fn build_shim(dir: &Path) -> PathBuf {
    let src = dir.join("fsync_fault.c");
    let lib = dir.join("fsync_fault.so");
    std::fs::write(&src, SHIM_C).expect("write shim source");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("run cc (gcc is on every machine of this kind)");
    assert!(
        out.status.success(),
        "compiling the fsync shim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

fn policy() -> String {
    common::policy::one_trx_key_with_daily_max("fsync fault", "1000000")
}

#[tokio::test]
async fn a_failing_fsync_releases_nothing_and_signing_resumes_after_it() {
    let mut s = Setup::new(&[("hot", KEY1_SECRET)], &policy());
    let lib = build_shim(s.dir.path());
    let flag = s.dir.path().join("fsync-fails");
    s.env.push(("LD_PRELOAD".into(), lib.display().to_string()));
    s.env.push((
        "TRON_SIGNER_FSYNC_FAULT_FLAG".into(),
        flag.display().to_string(),
    ));
    let srv = s.start().await;

    let mut released = Vec::new();
    let mut nonce = 0u16;
    let mut sign = |srv: &Server| {
        nonce += 1;
        let raw = Tx::trx(KEY1, dest(0xa1), TRX).nonce(nonce).raw();
        let req = request(KEY1, raw, &format!("p-{nonce}"));
        let mut client = srv.client.clone();
        async move { client.sign(req).await }
    };
    for _ in 0..5 {
        let r = sign(&srv).await.expect("signs while fsync works");
        released.push(r.into_inner().txid);
    }

    // From now on every fsync fails: not one request may be answered with a signature, for
    // long enough that the ledger reopens its database (back-off from 200 ms) and commits
    // into the failing disk again.
    std::fs::write(&flag, b"").expect("raise the flag");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut attempts = 0u32;
    while std::time::Instant::now() < until {
        attempts += 1;
        match sign(&srv).await {
            Ok(r) => panic!(
                "attempt {attempts}: a signature was released while fsync fails: {}",
                hex::encode(r.into_inner().txid)
            ),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert_eq!(reason(&status), "ledger_unavailable", "{status:?}");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = srv.log_text();
    let faults = log.matches("fsync-fault: ").count();
    assert!(
        faults >= 2,
        "the signer met the failure more than once (a commit after a reopen fails too), \
         {faults} times in {attempts} attempts:\n{log}"
    );
    assert!(log.contains("ledger write failed"), "{log}");
    assert!(
        wait_for_health(&s.endpoint(), ServingStatus::NotServing).await,
        "NOT_SERVING while the ledger cannot make anything durable"
    );

    // fsync works again: the signer reopens its ledger by itself and signs, same process.
    std::fs::remove_file(&flag).expect("lower the flag");
    assert!(
        wait_for_health(&s.endpoint(), ServingStatus::Serving).await,
        "SERVING again once fsync works:\n{}",
        srv.log_text()
    );
    for _ in 0..3 {
        let r = sign(&srv).await.expect("signs again");
        released.push(r.into_inner().txid);
    }
    srv.stop();

    // Every signature released is in the chain, which verifies. A commit whose fsync failed
    // may still have reached the disk (the page cache kept it): such a record is signed but
    // was never released, which the invariant allows; nothing else is.
    s.assert_audit_verifies();
    let signed: std::collections::HashSet<String> = s
        .records_with("signed")
        .into_iter()
        .filter_map(|r| r["txid"].as_str().map(str::to_owned))
        .collect();
    for txid in &released {
        assert!(
            signed.contains(&hex::encode(txid)),
            "released {} missing from the audit",
            hex::encode(txid)
        );
    }
    assert!(
        signed.len() <= released.len() + attempts as usize,
        "at most the refused attempts may be recorded unreleased: {} signed, {} released",
        signed.len(),
        released.len()
    );
}
