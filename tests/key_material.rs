//! Issue 11 item 11: key material at rest. The real signer refuses to start on a keystore or
//! a passphrase file that group or others can read, the way ssh refuses a private key, and
//! says which file and what to do; the same files, owner-only, start it.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn policy() -> String {
    common::policy::one_trx_key("key material test policy")
}

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn keystore_readable_by_others_refuses_to_start() {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    chmod(&setup.keystore, 0o644);
    let log = match setup.start_with_passphrase(PASSPHRASE).await {
        Ok(_) => panic!("started on a world-readable keystore"),
        Err(log) => log,
    };
    assert!(log.contains("keystore_too_open"), "{log}");
    assert!(log.contains("0644") && log.contains("chmod 600"), "{log}");
    chmod(&setup.keystore, 0o600);
    let server = setup
        .start_with_passphrase(PASSPHRASE)
        .await
        .expect("owner-only starts");
    server.stop();
}

#[tokio::test]
async fn passphrase_file_readable_by_others_refuses_to_start() {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let pass = setup.dir.path().join("passphrase");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).expect("write passphrase");
    chmod(&pass, 0o640);
    setup.write_config(&format!(
        "[keystore]\npath = \"{}\"\npassphrase = {{ file = \"{}\" }}\n",
        setup.keystore.display(),
        pass.display()
    ));
    let (status, log) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(log.contains("secret_file_too_open"), "{log}");
    assert!(log.contains("0640"), "{log}");
    assert!(!log.contains(PASSPHRASE), "the secret leaked into the log");
    chmod(&pass, 0o600);
    let server = setup
        .start_with_passphrase(PASSPHRASE)
        .await
        .expect("owner-only starts");
    server.stop();
}
