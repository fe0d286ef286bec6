//! Starts the real `tron-signer` binary on a temporary data directory and talks gRPC to it.
//!
//! Written once for every integration test: test policies ([`policy`]), a data directory
//! with keystore and config ([`Setup`]), starting `serve` and waiting until it answers
//! ([`Setup::start`]) or until it exits ([`Setup::serve_until_exit`]), and SoftHSM tokens
//! ([`softhsm`], on `tron_testkit::softhsm`).
#![allow(dead_code)]

pub mod exporter;
pub mod in_process;
pub mod interop;
pub mod pki;
pub mod policy;
pub mod scrape;
pub mod softhsm;

// Not every test binary writes a policy (hence the allow); `policy_preamble` is for a test
// that writes its own `[[key]]` text after the shared preamble.
#[allow(unused_imports)]
pub use policy::{policy_preamble, test_caller, test_uid, Destination, Key, PolicyText};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tonic::transport::Channel;
pub use tonic_health::pb::health_check_response::ServingStatus;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::SignRequest;
use tron_proto::{Address, U256};
use tron_signer::decode::{encode, Decoded, Envelope, Intent, Trc20Transfer, TrxTransfer};

pub const BIN: &str = env!("CARGO_BIN_EXE_tron-signer");

/// The public test vector key; its address is in `policies/nile.toml` as the dev key.
pub const KEY1_SECRET: &str = "279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e";
pub const KEY1: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
/// Private key 0x…01.
pub const KEY2_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000001";
pub const KEY2: &str = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC";
/// Private key 0x…02 (not in most test policies).
pub const KEY3_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000002";

pub const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
pub const PASSPHRASE_VAR: &str = "TRON_SIGNER_TEST_PASSPHRASE";
pub const PASSPHRASE: &str = "correct horse battery staple";

pub fn addr(s: &str) -> Address {
    s.parse().expect("valid test address")
}

/// A destination address made from one repeated byte.
pub fn dest(b: u8) -> Address {
    Address::from_evm([b; 20])
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Transaction fields a test may vary.
#[derive(Clone)]
pub struct Tx {
    pub owner: Address,
    pub to: Address,
    pub token: Option<Address>,
    pub amount: u128,
    pub expiration: i64,
    pub timestamp: i64,
    pub fee_limit: i64,
    pub memo: Vec<u8>,
    pub nonce: u16,
}

impl Tx {
    pub fn trx(owner: &str, to: Address, sun: u64) -> Tx {
        let now = now_ms();
        Tx {
            owner: addr(owner),
            to,
            token: None,
            amount: sun as u128,
            expiration: now + 60_000,
            timestamp: now,
            fee_limit: 0,
            memo: vec![],
            nonce: 0,
        }
    }

    pub fn usdt(owner: &str, to: Address, units: u128) -> Tx {
        Tx {
            token: Some(addr(NILE_USDT)),
            fee_limit: 30_000_000,
            ..Tx::trx(owner, to, 1).with_amount(units)
        }
    }

    pub fn with_amount(mut self, amount: u128) -> Tx {
        self.amount = amount;
        self
    }

    pub fn nonce(mut self, n: u16) -> Tx {
        self.nonce = n;
        self
    }

    pub fn raw(&self) -> Vec<u8> {
        let intent = match self.token {
            Some(token) => Intent::Trc20(Trc20Transfer {
                owner: self.owner,
                token,
                to: self.to,
                amount: U256::from(self.amount),
            }),
            None => Intent::Trx(TrxTransfer {
                owner: self.owner,
                to: self.to,
                amount: self.amount as u64,
            }),
        };
        encode(&Decoded {
            envelope: Envelope {
                txid: [0; 32],
                ref_block_bytes: self.nonce.to_be_bytes(),
                ref_block_hash: [7; 8],
                expiration: self.expiration,
                timestamp: self.timestamp,
                fee_limit: self.fee_limit,
                memo: self.memo.clone(),
                permission_id: 0,
            },
            intent,
        })
    }
}

pub fn request(key: &str, raw: Vec<u8>, payout_id: &str) -> SignRequest {
    SignRequest {
        key: key.into(),
        raw_data: raw,
        payout_id: payout_id.into(),
        approvals: vec![],
        deposit_index: None,
    }
}

/// The reason code a refusal carries in its metadata.
pub fn reason(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("reason-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The variable a setup on PostgreSQL passes the connection string in.
pub const PG_URL_VAR: &str = "TRON_SIGNER_TEST_PG_URL";

/// `TRON_SIGNER_TEST_LEDGER=postgres`: every [`Setup`] keeps its ledger in a private
/// PostgreSQL cluster of its own instead of its data directory (scripts/test.sh runs the
/// service suites once more this way).
pub fn on_postgres() -> bool {
    std::env::var("TRON_SIGNER_TEST_LEDGER").as_deref() == Ok("postgres")
}

/// For a test of the embedded store itself (its file, its disk): true, with a note on
/// stderr, when the run is on PostgreSQL and the test must skip.
pub fn skip_on_postgres(test: &str) -> bool {
    let skip = on_postgres();
    if skip {
        eprintln!("{test}: tests the embedded ledger file; skipped on the PostgreSQL run");
    }
    skip
}

/// A data directory with a keystore and a policy, ready to start a signer on.
pub struct Setup {
    pub dir: TempDir,
    pub config: PathBuf,
    pub policy: PathBuf,
    pub keystore: PathBuf,
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    /// Extra environment for every `tron-signer` this setup runs (e.g. SOFTHSM2_CONF).
    pub env: Vec<(String, String)>,
    /// On the PostgreSQL run ([`on_postgres`]): the cluster holding this setup's ledger.
    pub pg: Option<tron_testkit::postgres::Cluster>,
}

impl Setup {
    /// Imports `keys` (label, secret hex) and writes `policy`.
    pub fn new(keys: &[(&str, &str)], policy: &str) -> Setup {
        let setup = Setup::bare(policy);
        for (label, secret) in keys {
            let out = setup.keys_import(label, secret);
            assert!(
                out.status.success(),
                "keys import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        setup.write_config(&format!(
            "[keystore]\npath = \"{}\"\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n",
            setup.keystore.display()
        ));
        setup
    }

    /// A directory with `policy` written and no config yet.
    pub fn bare(policy: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let mut setup = Setup {
            config: root.join("signer.toml"),
            policy: root.join("policy.toml"),
            keystore: root.join("keys.tks"),
            socket: root.join("signer.sock"),
            data_dir: root.join("data"),
            env: Vec::new(),
            pg: None,
            dir,
        };
        if on_postgres() {
            let pg = tron_testkit::postgres::Cluster::start();
            pg.create_db("ledger");
            setup.env.push((PG_URL_VAR.into(), pg.url("ledger")));
            setup.pg = Some(pg);
        }
        std::fs::write(&setup.policy, policy).expect("write policy");
        setup
    }

    /// Writes the config: listen, data dir and policy, then `key_sections` as given.
    pub fn write_config(&self, key_sections: &str) {
        self.write_config_listening(&self.endpoint(), key_sections);
    }

    /// Writes the config with `listen` (`host:port` or `unix:/path`), then `sections`.
    pub fn write_config_listening(&self, listen: &str, sections: &str) {
        std::fs::write(
            &self.config,
            format!(
                "listen = \"{listen}\"\ndata_dir = \"{}\"\npolicy = \"{}\"\n{sections}{}",
                self.data_dir.display(),
                self.policy.display(),
                self.ledger_section(),
            ),
        )
        .expect("write config");
    }

    /// Replaces the extra environment with `vars`, keeping the ledger's connection string.
    pub fn replace_env(&mut self, vars: Vec<(String, String)>) {
        self.env.retain(|(k, _)| k == PG_URL_VAR);
        self.env.extend(vars);
    }

    /// The `[ledger]` section: none for the embedded store in the data directory.
    pub fn ledger_section(&self) -> String {
        match &self.pg {
            None => String::new(),
            Some(_) => format!(
                "\n[ledger]\npostgres = {{ url = {{ env = \"{PG_URL_VAR}\" }}, pool_size = 8 }}\n"
            ),
        }
    }

    /// Where `audit verify` and `audit export` find this setup's ledger.
    pub fn ledger_args(&self) -> Vec<&str> {
        if self.pg.is_some() {
            let file = self.data_dir.join("ledger.redb");
            assert!(
                !file.exists(),
                "on PostgreSQL, yet the signer wrote {file:?}"
            );
        }
        match &self.pg {
            None => vec!["--data-dir", path_str(&self.data_dir)],
            Some(_) => vec!["--postgres-url-env", PG_URL_VAR],
        }
    }

    /// `audit verify` on this setup's ledger (the real command), as it ran.
    pub fn audit_verify(&self) -> Output {
        let mut args = vec!["audit", "verify"];
        args.extend(self.ledger_args());
        self.run(&args)
    }

    /// The `[keystore]` section of this setup's keystore, its passphrase from the variable.
    pub fn keystore_section(&self) -> String {
        format!(
            "[keystore]\npath = \"{}\"\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n",
            self.keystore.display()
        )
    }

    pub fn keys_import(&self, label: &str, secret: &str) -> Output {
        let mut child = Command::new(BIN)
            .args(["keys", "import", "--keystore"])
            .arg(&self.keystore)
            .args(["--label", label, "--passphrase-env", PASSPHRASE_VAR])
            .args(["--kdf-m-cost", "1024", "--kdf-t-cost", "1"])
            .env(PASSPHRASE_VAR, PASSPHRASE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keys import");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{secret}\n").as_bytes())
            .expect("write secret");
        child.wait_with_output().expect("wait keys import")
    }

    /// Runs a `tron-signer` subcommand to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env(PASSPHRASE_VAR, PASSPHRASE)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run tron-signer")
    }

    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Starts `tron-signer serve` and waits until it answers.
    pub async fn start(&self) -> Server {
        self.start_with_passphrase(PASSPHRASE)
            .await
            .unwrap_or_else(|out| panic!("signer did not start:\n{out}"))
    }

    /// Spawns `tron-signer serve --config` with this setup's environment (and the keystore
    /// passphrase, when given), its output going to a new log file under the setup's directory.
    fn spawn_serve(&self, passphrase: Option<&str>, log_prefix: &str) -> (Child, PathBuf) {
        self.spawn_serve_via(&[BIN], passphrase, log_prefix)
    }

    /// [`Setup::spawn_serve`] with `launcher` as the program and its first arguments, the
    /// signer binary last (e.g. `["prlimit", "--nofile=256:256", BIN]`); `serve --config`
    /// follows. A launcher must exec the binary, so the child's pid is the signer's.
    fn spawn_serve_via(
        &self,
        launcher: &[&str],
        passphrase: Option<&str>,
        log_prefix: &str,
    ) -> (Child, PathBuf) {
        let log = self
            .dir
            .path()
            .join(format!("{log_prefix}-{}.log", now_ms()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let (program, first_args) = launcher.split_first().expect("a launcher");
        let mut cmd = Command::new(program);
        cmd.args(first_args);
        cmd.args(["serve", "--config"]).arg(&self.config);
        if let Some(passphrase) = passphrase {
            cmd.env(PASSPHRASE_VAR, passphrase);
        }
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn serve");
        (child, log)
    }

    /// Starts the server; on failure returns what it printed.
    pub async fn start_with_passphrase(&self, passphrase: &str) -> Result<Server, String> {
        let _ = std::fs::remove_file(&self.socket);
        let (child, log) = self.spawn_serve(Some(passphrase), "serve");
        self.wait_serving(child, log, &self.endpoint()).await
    }

    /// Starts the server through `launcher` (see [`Setup::spawn_serve_via`]) and waits until
    /// it answers at `endpoint` (`unix:/path`, or `host:port` for a config listening on TCP).
    pub async fn start_via(&self, launcher: &[&str], endpoint: &str) -> Result<Server, String> {
        let (child, log) = self.spawn_serve_via(launcher, Some(PASSPHRASE), "serve");
        self.wait_serving(child, log, endpoint).await
    }

    /// Waits until the spawned server answers `GetPolicy` at `endpoint`.
    async fn wait_serving(
        &self,
        child: Child,
        log: PathBuf,
        endpoint: &str,
    ) -> Result<Server, String> {
        let socket = endpoint.starts_with("unix:").then(|| self.socket.clone());
        wait_until_serving(child, log, || async {
            if socket.as_ref().is_some_and(|s| !s.exists()) {
                return None;
            }
            tron_proto::client::signer_client(endpoint).await.ok()
        })
        .await
    }

    /// Starts the server (its config listening on TCP with `[tls]`) and waits until it
    /// answers at `addr` over mutual TLS with the client settings `tls`.
    pub async fn start_tls(
        &self,
        addr: &str,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Server, String> {
        let (child, log) = self.spawn_serve(Some(PASSPHRASE), "serve-tls");
        wait_until_serving(child, log, || {
            let tls = tls.clone();
            async move {
                let channel = tron_proto::client::connect_tls(addr, "localhost", tls)
                    .await
                    .ok()?;
                Some(SignerClient::new(channel))
            }
        })
        .await
    }

    /// `audit verify` on this setup's data directory passes (the real command).
    pub fn assert_audit_verifies(&self) {
        let out = self.audit_verify();
        assert!(
            out.status.success(),
            "audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `audit export` of this setup's data directory into a new file (exports never
    /// overwrite); returns the file's path and its text, one JSON record per line.
    pub fn audit_export(&self) -> (PathBuf, String) {
        let mut n = self.dir.path().read_dir().map_or(0, |d| d.count());
        let mut path = self.dir.path().join(format!("audit-{n}.jsonl"));
        // A test may have removed files since the last export.
        while path.exists() {
            n += 1;
            path = self.dir.path().join(format!("audit-{n}.jsonl"));
        }
        let mut args = vec!["audit", "export"];
        args.extend(self.ledger_args());
        args.extend(["--out", path_str(&path)]);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "audit export: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&path).expect("read the export");
        (path, text)
    }

    /// Every audit record, parsed.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        self.audit_export()
            .1
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// The exported audit records whose reason code is `code`.
    pub fn records_with(&self, code: &str) -> Vec<serde_json::Value> {
        self.audit_records()
            .into_iter()
            .filter(|r| r["reason_code"] == code)
            .collect()
    }

    /// Runs `serve` expecting it to exit by itself (a start-up that must fail); returns its
    /// status and combined output. Panics if it is still running after 30 s.
    pub fn serve_until_exit(&self) -> (std::process::ExitStatus, String) {
        self.serve_until_exit_via(&[BIN], None)
    }

    /// [`Setup::serve_until_exit`] through `launcher` (see [`Setup::spawn_serve_via`]).
    pub fn serve_until_exit_via(
        &self,
        launcher: &[&str],
        passphrase: Option<&str>,
    ) -> (std::process::ExitStatus, String) {
        let (mut child, log) = self.spawn_serve_via(launcher, passphrase, "failed-start");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, std::fs::read_to_string(&log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve kept running: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running signer process; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub client: SignerClient<Channel>,
    pub log: PathBuf,
}

impl Server {
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Graceful stop: SIGTERM and wait for exit.
    pub fn stop(mut self) {
        // Close our connection first, as a well-behaved client would.
        let idle = tonic::transport::Endpoint::from_static("http://[::1]:1").connect_lazy();
        drop(std::mem::replace(&mut self.client, SignerClient::new(idle)));
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `connect` until the client it gives answers `GetPolicy`, the child exits (its log is
/// the error), or 30 s pass.
async fn wait_until_serving<F, Fut>(
    mut child: Child,
    log: PathBuf,
    connect: F,
) -> Result<Server, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<SignerClient<Channel>>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        if let Some(mut c) = connect().await {
            // Serving: the service answered, with the policy or a coded refusal (a client
            // the policy does not list is still proof that the server is up).
            if answered(&c.get_policy(tron_proto::signer::GetPolicyRequest {}).await) {
                return Ok(Server {
                    child,
                    client: c,
                    log,
                });
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "timed out; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a call reached the signing service: an answer, or a refusal carrying a reason
/// code (transport failures, a refused handshake included, carry none).
pub fn answered<T>(r: &Result<T, tonic::Status>) -> bool {
    match r {
        Ok(_) => true,
        Err(st) => st.metadata().get("reason-code").is_some(),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The gRPC health status the signer at `endpoint` reports for its Signer service and
/// overall (the empty name), in that order.
pub async fn health(endpoint: &str) -> (ServingStatus, ServingStatus) {
    let channel = tron_proto::client::connect(endpoint)
        .await
        .expect("connect for health");
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut statuses = [ServingStatus::Unknown; 2];
    for (i, service) in ["tronsigner.v1.Signer", ""].into_iter().enumerate() {
        let status = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check answers")
            .into_inner()
            .status;
        statuses[i] = ServingStatus::try_from(status).expect("a known status");
    }
    (statuses[0], statuses[1])
}

/// Polls [`health`] until the Signer service reports `want` or 20 s have passed.
pub async fn wait_for_health(endpoint: &str, want: ServingStatus) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if health(endpoint).await == (want, want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
