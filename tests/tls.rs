//! Mutual TLS on TCP (issue 12, items 1, 3 and 5), on the real binary over real sockets
//! with certificates made by rcgen: a client under the trusted CA (or with a pinned key) is
//! served and audited by its key; no certificate, another CA's, an expired one or an unpinned
//! key fail the handshake, which is logged with the peer address; plaintext TCP is refused at
//! start unless loopback and `insecure_plaintext = true`; an open key file is refused; SIGHUP
//! rotates the server certificate and the client pins without dropping an open connection,
//! and a bad new certificate leaves the old one in force (audited).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::pki::{client_config, Ca, Issued};
use common::*;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::ListKeysRequest;

const TRX: u64 = 1_000_000;

/// One TRX key; the CA-issued test clients are callers by their SPIFFE SAN (a pinned
/// certificate's names count for nothing, so pinned clients reach the service but are not
/// recognised: enough for tests of the handshake, which ask only whether it was answered).
fn policy() -> String {
    common::policy::one_trx_key("mutual TLS test policy").replace(
        "\n[[key]]",
        "\n[[caller]]\nname = \"alice\"\ntls_san = \"uri:spiffe://test/alice\"\nrpcs = [\"Sign\", \"ListKeys\", \"GetPolicy\"]\nall_keys = true\n\n[[key]]",
    )
}

/// How the signer trusts clients.
enum Trust<'a> {
    Ca(&'a Ca),
    Pins(&'a [&'a Issued]),
}

/// The `[tls]` section for the server certificate `server` and `trust`, writing the files.
fn tls_section(s: &Setup, name: &str, server: &Issued, trust: Trust<'_>) -> String {
    let dir = s.dir.path();
    let (cert, key) = server.write(dir, name);
    let trust = match trust {
        Trust::Ca(ca) => {
            let path = dir.join(format!("{name}-clients-ca.pem"));
            std::fs::write(&path, ca.pem()).expect("write client CA");
            format!("client_ca = \"{}\"\n", path.display())
        }
        Trust::Pins(pins) => {
            let list: Vec<String> = pins.iter().map(|c| format!("\"{}\"", c.pin())).collect();
            format!("client_pins = [{}]\n", list.join(", "))
        }
    };
    format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n{trust}",
        cert.display(),
        key.display()
    )
}

/// A setup whose config listens on a free loopback port with `tls` (keystore first).
fn tls_setup(tls: impl FnOnce(&Setup) -> String) -> (Setup, String) {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let sections = format!("{}{}", s.keystore_section(), tls(&s));
    s.write_config_listening(&addr, &sections);
    (s, addr)
}

async fn client(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<SignerClient<tonic::transport::Channel>, String> {
    let channel = tron_proto::client::connect_tls(addr, "localhost", config)
        .await
        .map_err(|e| e.to_string())?;
    Ok(SignerClient::new(channel))
}

/// A signer trusting clients under a fresh CA, started and answering a client of that CA
/// named `client_cn`.
struct CaSigner {
    ca: Ca,
    server: Issued,
    client: Issued,
    s: Setup,
    addr: String,
    srv: Server,
}

async fn ca_signer(client_cn: &str) -> CaSigner {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let client = ca.client(client_cn, false);
    let (s, addr) = tls_setup(|s| tls_section(s, "server", &server, Trust::Ca(&ca)));
    let srv = s
        .start_tls(&addr, client_config(&ca, Some(&client)))
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
    CaSigner {
        ca,
        server,
        client,
        s,
        addr,
        srv,
    }
}

/// Whether a fresh connection with `config` reaches the service (an answer to ListKeys, or
/// the policy's coded refusal of a caller it does not list). In TLS 1.3 the server judges
/// the client's certificate after the client's side of the handshake is done, so a refusal
/// may only show on the first call.
async fn served(addr: &str, config: Arc<rustls::ClientConfig>) -> bool {
    match client(addr, config).await {
        Ok(mut c) => answered(&c.list_keys(ListKeysRequest {}).await),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_client_under_the_trusted_ca_is_served_and_audited_by_its_key() {
    let CaSigner {
        ca,
        server: _,
        client: alice,
        s,
        addr,
        srv,
    } = ca_signer("alice").await;
    let mut c = client(&addr, client_config(&ca, Some(&alice)))
        .await
        .expect("connects");
    let raw = Tx::trx(KEY1, dest(0xa1), TRX).raw();
    c.sign(request(KEY1, raw, "p-1"))
        .await
        .expect("signed over mTLS");
    assert!(
        srv.log_text().contains("mutual TLS 1.3"),
        "{}",
        srv.log_text()
    );
    srv.stop();

    let signed: Vec<_> = s.records_with("signed");
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["caller"], "alice");
    assert_eq!(signed[0]["identity"], "tls_san=uri:spiffe://test/alice");
    let peer = signed[0]["peer"].as_str().unwrap_or("");
    assert!(
        peer.starts_with(&format!("tls:spki={},", alice.pin())),
        "the audit names the client's key: {peer}"
    );
    assert!(peer.contains("CN=alice"), "{peer}");
    s.assert_audit_verifies();
}

#[tokio::test]
async fn no_certificate_another_ca_or_an_expired_one_fails_the_handshake() {
    let ca = Ca::new("test CA");
    let other = Ca::new("someone else's CA");
    let server = ca.server();
    let good = ca.client("good", false);
    let (s, addr) = tls_setup(|s| tls_section(s, "server", &server, Trust::Ca(&ca)));
    let srv = s
        .start_tls(&addr, client_config(&ca, Some(&good)))
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));

    assert!(
        !served(&addr, client_config(&ca, None)).await,
        "no client certificate"
    );
    let stranger = other.client("stranger", false);
    assert!(
        !served(&addr, client_config(&ca, Some(&stranger))).await,
        "another CA"
    );
    let expired = ca.client("expired", true);
    assert!(
        !served(&addr, client_config(&ca, Some(&expired))).await,
        "expired"
    );
    // The good client is still served after the refusals.
    assert!(served(&addr, client_config(&ca, Some(&good))).await);

    // Logged with the peer address (rate-limited: the first line at least).
    let log = srv.log_text();
    assert!(log.contains("TLS handshake refused"), "{log}");
    assert!(log.contains("127.0.0.1:"), "{log}");
    srv.stop();
}

#[tokio::test]
async fn pinned_client_keys_are_served_and_others_are_not() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let pinned = ca.client("pinned", false);
    let unpinned = ca.client("unpinned", false);
    // A self-issued certificate from a CA the signer never heard of: only its key counts.
    let elsewhere = Ca::new("private").client("pinned elsewhere", false);
    let expired = ca.client("pinned but expired", true);
    let (s, addr) = tls_setup(|s| {
        tls_section(
            s,
            "server",
            &server,
            Trust::Pins(&[&pinned, &elsewhere, &expired]),
        )
    });
    let srv = s
        .start_tls(&addr, client_config(&ca, Some(&pinned)))
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
    assert!(served(&addr, client_config(&ca, Some(&pinned))).await);
    assert!(served(&addr, client_config(&ca, Some(&elsewhere))).await);
    assert!(
        !served(&addr, client_config(&ca, Some(&unpinned))).await,
        "not pinned"
    );
    assert!(
        !served(&addr, client_config(&ca, Some(&expired))).await,
        "expired"
    );
    assert!(
        !served(&addr, client_config(&ca, None)).await,
        "no certificate"
    );
    srv.stop();
}

/// Starts expecting a refusal; returns the log.
fn refused_start(s: &Setup) -> String {
    let (status, log) = s.serve_until_exit();
    assert!(!status.success(), "{log}");
    log
}

#[tokio::test]
async fn plaintext_tcp_is_refused_unless_loopback_and_asked_for_in_so_many_words() {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let port = free_loopback_port();
    // Not loopback: refused even with the setting.
    for extra in ["", "insecure_plaintext = true\n"] {
        s.write_config_listening(
            &format!("0.0.0.0:{port}"),
            &format!("{extra}{}", s.keystore_section()),
        );
        let log = refused_start(&s);
        assert!(log.contains("config_plaintext_tcp"), "{log}");
        assert!(
            log.contains("insecure_plaintext"),
            "the error names the setting: {log}"
        );
    }
    // Loopback without the setting: refused, naming it.
    s.write_config_listening(&format!("127.0.0.1:{port}"), &s.keystore_section());
    let log = refused_start(&s);
    assert!(log.contains("config_plaintext_tcp"), "{log}");
    assert!(log.contains("insecure_plaintext = true"), "{log}");
    // Loopback with it: served (in plaintext, with a warning).
    s.write_config_listening(
        &format!("127.0.0.1:{port}"),
        &format!("insecure_plaintext = true\n{}", s.keystore_section()),
    );
    let srv = s
        .start_via(&[BIN], &format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|log| panic!("{log}"));
    assert!(srv.log_text().contains("PLAINTEXT"), "{}", srv.log_text());
    srv.stop();
}

#[tokio::test]
async fn malformed_tls_settings_and_an_open_key_file_stop_the_start() {
    let ca = Ca::new("test CA");
    let server = ca.server();
    let (s, _) = tls_setup(|s| tls_section(s, "server", &server, Trust::Ca(&ca)));
    let key = s.dir.path().join("server.key");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = refused_start(&s);
    assert!(log.contains("tls_key_too_open"), "{log}");
    assert!(log.contains("0644"), "{log}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Owner-only, but another user's file (chown needs root; the suite runs as root).
    if std::env::var_os("TRON_SIGNER_NO_ROOT_TESTS").is_none() {
        std::os::unix::fs::chown(&key, Some(65534), None)
            .expect("chown the key to nobody (run as root, or set TRON_SIGNER_NO_ROOT_TESTS=1)");
        let log = refused_start(&s);
        assert!(log.contains("tls_key_not_owned"), "{log}");
        std::os::unix::fs::chown(&key, Some(test_uid()), None).unwrap();
    }

    // Both kinds of client trust at once, and neither.
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        // Into the [tls] table, wherever later tables (a [ledger]) put it.
        text.replacen(
            "[tls]\n",
            &format!("[tls]\nclient_pins = [\"{}\"]\n", "ab".repeat(32)),
            1,
        ),
    )
    .unwrap();
    let log = refused_start(&s);
    assert!(log.contains("exactly one kind of client trust"), "{log}");
    let only_cert_and_key: String = text
        .lines()
        .filter(|l| !l.starts_with("client_ca"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&s.config, only_cert_and_key).unwrap();
    let log = refused_start(&s);
    assert!(log.contains("exactly one kind of client trust"), "{log}");

    // A pin that is not a SHA-256.
    std::fs::write(
        &s.config,
        text.lines()
            .filter(|l| !l.starts_with("client_ca"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replacen("[tls]\n", "[tls]\nclient_pins = [\"abc\"]\n", 1),
    )
    .unwrap();
    let log = refused_start(&s);
    assert!(log.contains("tls_client_pins_invalid"), "{log}");

    // [tls] and insecure_plaintext at once.
    s.write_config_listening(
        &format!("127.0.0.1:{}", free_loopback_port()),
        &format!(
            "insecure_plaintext = true\n{}{}",
            s.keystore_section(),
            tls_section(&s, "server", &server, Trust::Ca(&ca))
        ),
    );
    let log = refused_start(&s);
    assert!(log.contains("contradict each other"), "{log}");

    // [tls] on a Unix socket.
    s.write_config_listening(
        &s.endpoint(),
        &format!(
            "{}{}",
            s.keystore_section(),
            tls_section(&s, "server", &server, Trust::Ca(&ca))
        ),
    );
    let log = refused_start(&s);
    assert!(log.contains("applies to a TCP listener"), "{log}");
}

/// Waits until the audit holds `n` records with `code`.
async fn wait_for_records(s: &Setup, code: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let found: Vec<_> = s.records_with(code);
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {n} {code} records");
}

#[tokio::test]
async fn sighup_rotates_the_server_certificate_and_the_pins_without_dropping_connections() {
    let old_ca = Ca::new("old server CA");
    let new_ca = Ca::new("new server CA");
    let alice = old_ca.client("alice", false);
    let bob = old_ca.client("bob", false);
    let (s, addr) =
        tls_setup(|s| tls_section(s, "server", &old_ca.server(), Trust::Pins(&[&alice])));
    let srv = s
        .start_tls(&addr, client_config(&old_ca, Some(&alice)))
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
    // A connection that stays open across the rotation.
    let mut open = client(&addr, client_config(&old_ca, Some(&alice)))
        .await
        .unwrap();
    assert!(
        answered(&open.list_keys(ListKeysRequest {}).await),
        "served before"
    );

    // New server certificate (another CA) and bob pinned instead of alice.
    let keystore = s.keystore_section();
    let addr_line = addr.clone();
    let tls = tls_section(&s, "server", &new_ca.server(), Trust::Pins(&[&bob]));
    s.write_config_listening(&addr_line, &format!("{keystore}{tls}"));
    srv.signal("HUP");
    wait_for_records(&s, "tls_reloaded", 1).await;

    assert!(
        answered(&open.list_keys(ListKeysRequest {}).await),
        "the open connection is still served"
    );
    assert!(
        served(&addr, client_config(&new_ca, Some(&bob))).await,
        "bob, trusting only the new server CA, is served: the new certificate is in force"
    );
    assert!(
        !served(&addr, client_config(&old_ca, Some(&bob))).await,
        "the old server certificate is gone"
    );
    assert!(
        !served(&addr, client_config(&new_ca, Some(&alice))).await,
        "alice's pin is gone"
    );

    // A config that lost its [tls] section (plainly, or asking for plaintext): refused, the
    // listener stays TLS with the settings in force, audited.
    s.write_config_listening(&addr_line, &keystore);
    srv.signal("HUP");
    let refused = wait_for_records(&s, "tls_reload_refused", 1).await;
    let message = refused[0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("tls_config_invalid") && message.contains("plaintext TCP"),
        "{refused:?}"
    );
    s.write_config_listening(
        &addr_line,
        &format!("insecure_plaintext = true\n{keystore}"),
    );
    srv.signal("HUP");
    let refused = wait_for_records(&s, "tls_reload_refused", 2).await;
    assert!(
        refused[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no longer has a [tls] section"),
        "{refused:?}"
    );
    assert!(served(&addr, client_config(&new_ca, Some(&bob))).await);
    s.write_config_listening(&addr_line, &format!("{keystore}{tls}"));

    // A bad new certificate: refused, audited, and the settings in force stay.
    std::fs::write(s.dir.path().join("server.pem"), "not a certificate\n").unwrap();
    srv.signal("HUP");
    let refused = wait_for_records(&s, "tls_reload_refused", 3).await;
    assert!(
        refused[2]["message"]
            .as_str()
            .unwrap_or("")
            .contains("tls_cert_invalid"),
        "{refused:?}"
    );
    assert!(served(&addr, client_config(&new_ca, Some(&bob))).await);
    assert!(
        answered(&open.list_keys(ListKeysRequest {}).await),
        "still open"
    );
    srv.stop();
    s.assert_audit_verifies();
}

/// The broadcaster's side (issue 12, item 6): `[signer_tls]` trusting the signer by a pin of
/// its key instead of a CA. The right pin is served whatever the certificate's issuer; another
/// key's pin is refused, and so is a config with both or neither kind of trust.
#[tokio::test]
async fn the_broadcaster_can_pin_the_signers_key() {
    use tron_broadcaster::signer_tls::SignerTls;
    let CaSigner {
        ca,
        server,
        client: broadcaster,
        s,
        addr,
        srv,
    } = ca_signer("broadcaster").await;
    let (cert, key) = broadcaster.write(s.dir.path(), "broadcaster");
    let settings = |ca: Option<std::path::PathBuf>, pin: Option<String>| SignerTls {
        ca,
        server_pin: pin,
        cert: cert.clone(),
        key: key.clone(),
        server_name: None,
    };
    let pinned = settings(None, Some(server.pin()))
        .client_config()
        .expect("pinned settings");
    assert!(
        served(&addr, pinned).await,
        "the signer's own key is accepted"
    );
    let other = Ca::new("elsewhere").server();
    let wrong = settings(None, Some(other.pin()))
        .client_config()
        .expect("settings");
    assert!(!served(&addr, wrong).await, "another key's pin is refused");
    let ca_path = s.dir.path().join("server-ca-for-broadcaster.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let both = settings(Some(ca_path), Some(server.pin())).client_config();
    assert_eq!(both.unwrap_err().code(), "signer_tls_invalid");
    let neither = settings(None, None).client_config();
    assert_eq!(neither.unwrap_err().code(), "signer_tls_invalid");
    srv.stop();
}

/// A peer holding handshakes open (connected, never sending a ClientHello) gets at most
/// `MAX_HANDSHAKES_PER_PEER` of them; one more is closed at once, while a client from
/// another address completes its handshake and is served.
#[tokio::test]
async fn one_peer_cannot_hold_more_than_its_share_of_handshakes() {
    use tokio::io::AsyncReadExt;
    let CaSigner {
        ca,
        server: _,
        client: good,
        s: _setup,
        addr,
        srv,
    } = ca_signer("good").await;
    let mut silent = Vec::new();
    for _ in 0..tron_signer::service::tls::MAX_HANDSHAKES_PER_PEER {
        silent.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    // Give the listener time to start their handshakes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the handshake over the per-peer cap is closed at once: {closed:?}"
    );
    // The silent ones are still open (their deadline is 10 s away).
    let mut first = silent.remove(0);
    let still = tokio::time::timeout(Duration::from_millis(200), first.read(&mut buf)).await;
    assert!(
        still.is_err(),
        "a silent handshake is still pending: {still:?}"
    );

    // Another address is served meanwhile (all of 127.0.0.0/8 is local).
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = sock
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .expect("connect from 127.0.0.2");
    let connector = tokio_rustls::TlsConnector::from(client_config(&ca, Some(&good)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await;
    assert!(
        tls.is_ok(),
        "another peer's handshake completes: {:?}",
        tls.err()
    );
    assert!(
        srv.log_text()
            .contains("too many handshakes from this peer"),
        "{}",
        srv.log_text()
    );
    drop(silent);
    srv.stop();
}
