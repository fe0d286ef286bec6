//! Issue 11 item 9 on the real binary: a socket path that names an existing file which is
//! not a socket (here the policy itself) stops the start and leaves the file alone; a
//! socket is created with the configured mode, owner-only by default.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use common::*;

fn policy() -> String {
    common::policy::one_trx_key("socket test policy")
}

fn keystore_section(setup: &Setup) -> String {
    format!(
        "[keystore]\npath = \"{}\"\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n",
        setup.keystore.display()
    )
}

#[tokio::test]
async fn listen_on_the_policy_file_refuses_to_start_and_keeps_the_file() {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let before = std::fs::read(&setup.policy).unwrap();
    std::fs::write(
        &setup.config,
        format!(
            "listen = \"unix:{}\"\ndata_dir = \"{}\"\npolicy = \"{}\"\n{}",
            setup.policy.display(),
            setup.data_dir.display(),
            setup.policy.display(),
            keystore_section(&setup)
        ),
    )
    .unwrap();
    let log = match setup.start_with_passphrase(PASSPHRASE).await {
        Ok(_) => panic!("served on top of the policy file"),
        Err(log) => log,
    };
    assert!(log.contains("socket_path_not_a_socket"), "{log}");
    assert!(log.contains("is not a socket"), "{log}");
    assert_eq!(
        std::fs::read(&setup.policy).unwrap(),
        before,
        "policy file changed"
    );
}

#[tokio::test]
async fn socket_gets_the_configured_mode() {
    let setup = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let server = setup
        .start_with_passphrase(PASSPHRASE)
        .await
        .expect("starts");
    let m = std::fs::symlink_metadata(&setup.socket).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(
        m.permissions().mode() & 0o777,
        0o600,
        "owner-only by default"
    );
    server.stop();
    setup.write_config(&format!(
        "[unix_socket]\nmode = \"0660\"\ngroup = \"0\"\n{}",
        keystore_section(&setup)
    ));
    let server = setup
        .start_with_passphrase(PASSPHRASE)
        .await
        .expect("restarts");
    let m = std::fs::symlink_metadata(&setup.socket).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&m), 0);
    server.stop();
}
