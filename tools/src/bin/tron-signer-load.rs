//! Load generator for the signer's gRPC `Sign`: closed-loop with N concurrent clients, or
//! open-loop at a fixed rate, reporting signs/s, p50/p99 latency and the server's peak RSS
//! beside the raw single-core k256 sign rate measured in the same run — or, with
//! `--raw-pkcs11-module`, beside the raw `C_Sign` rate of the server's own token (threads
//! each with a logged-in session, measured before and after the load and averaged).
//! With `--approvals-from`, every request carries the bench approvers' approvals, made before
//! the load starts, and the run reports the server's CPU time per Sign beside the raw
//! single-core Ed25519 verification rate (scripts/bench-approvals.sh compares the two).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use k256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};
use tokio::sync::Mutex;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::SignRequest;
use tron_proto::Address;
use tron_signer_tools::tx::{own_uid, transfer};

#[derive(Parser)]
#[command(name = "tron-signer-load", about = "Drive tron-signer Sign over gRPC")]
enum Cli {
    /// Write a benchmark setup: a keystore with many keys, a policy with a large
    /// allowlist for the first key, and a config for `tron-signer serve`.
    Prepare(PrepareArgs),
    /// Drive Sign against a running signer.
    Run(Box<Args>),
}

#[derive(clap::Args)]
struct PrepareArgs {
    /// Directory to write keys.tks, policy.toml, destinations.txt and signer.toml into.
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    #[arg(long, default_value_t = 100_000)]
    destinations: usize,
    /// Also write `signer-plain.toml` (plaintext TCP on 127.0.0.1:PORT, insecure_plaintext)
    /// and `signer-tls.toml` (mutual TLS on the same port) with a throwaway CA, server and
    /// client certificate, for comparing the two in one run.
    #[arg(long)]
    tls_port: Option<u16>,
    /// Also write this many Ed25519 approver keys (`approver-0`, …) and ask all of them for
    /// every USDT transfer above 1 USDT (`--approvals-from` approves such transfers).
    #[arg(long, default_value_t = 0)]
    approvers: usize,
}

/// The benchmark keystore's passphrase variable (the value is not a secret: bench only).
const BENCH_PASSPHRASE_VAR: &str = "TRON_SIGNER_BENCH_PASSPHRASE";

#[derive(clap::Args)]
struct Args {
    /// `host:port` or `unix:/path/to.sock`.
    #[arg(long)]
    endpoint: String,
    /// The signing key (owner) to use.
    #[arg(long)]
    key: String,
    /// Allowlisted destinations to spread payouts over (repeat).
    #[arg(long = "to")]
    to: Vec<String>,
    /// A file with one destination per line (used with or instead of --to).
    #[arg(long)]
    to_file: Option<std::path::PathBuf>,
    /// Use at most this many destinations from --to-file.
    #[arg(long, default_value_t = 1000)]
    max_destinations: usize,
    /// TRC-20 token contract; TRX when absent.
    #[arg(long)]
    token: Option<String>,
    /// Amount per payout in base units.
    #[arg(long, default_value_t = 1)]
    amount: u64,
    /// Concurrent in-flight requests (closed loop).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Open loop: requests per second (latency measured from each request's scheduled time).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds to measure raw k256 signing first.
    #[arg(long, default_value_t = 2.0)]
    raw_seconds: f64,
    /// Server process id, to report its peak RSS (VmHWM).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Prefix for payout ids, so runs do not collide.
    #[arg(long, default_value = "load")]
    run_id: String,
    /// Compare with raw C_Sign on this PKCS#11 module instead of k256.
    #[arg(long, value_name = "PATH", requires_all = ["raw_pkcs11_token", "raw_pkcs11_key", "raw_pkcs11_pin_env"])]
    raw_pkcs11_module: Option<std::path::PathBuf>,
    /// Token label for the raw C_Sign measurement.
    #[arg(long)]
    raw_pkcs11_token: Option<String>,
    /// Label of the private key to C_Sign with.
    #[arg(long)]
    raw_pkcs11_key: Option<String>,
    /// Environment variable holding the user PIN.
    #[arg(long)]
    raw_pkcs11_pin_env: Option<String>,
    /// Threads (each with its own session) for the raw C_Sign measurement.
    #[arg(long, default_value_t = 2)]
    raw_threads: usize,
    /// Connect over mutual TLS (the endpoint is `host:port`), trusting this CA for the server.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<std::path::PathBuf>,
    /// The client certificate (PEM) for --tls-ca.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// The client key (PEM) for --tls-ca.
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Build this many requests before the load starts and send only those (the run ends
    /// early if they run out), so building them costs the shared CPU nothing during it.
    #[arg(long)]
    prebuild: Option<u64>,
    /// Attach the approvals of every approver `prepare --approvers` wrote into this
    /// directory (its policy.toml is the one the server runs); needs --prebuild.
    #[arg(long, requires = "prebuild")]
    approvals_from: Option<std::path::PathBuf>,
}

/// `count` requests made before the load: transfers numbered from 0 as the load would make
/// them, approved by every approver in `--approvals-from` when it is given.
fn prebuild(
    args: &Args,
    owner: Address,
    to: &[Address],
    token: Option<Address>,
    count: u64,
) -> Result<Vec<SignRequest>, Box<dyn std::error::Error>> {
    use tron_signer_tools::approvals;
    let approving = match &args.approvals_from {
        Some(dir) => {
            let text = std::fs::read_to_string(dir.join("policy.toml"))?;
            let policy = tron_signer::policy::parse(&text, "policy.toml")?;
            Some((policy, approvals::read_approvers(dir)?))
        }
        None => None,
    };
    let started = Instant::now();
    let build = |n: u64| -> Result<SignRequest, String> {
        let dest = to[(n as usize) % to.len()];
        // Nine minutes (the bench policy allows ten): building them all takes a while.
        let raw = transfer(owner, dest, token, args.amount, n, 540_000);
        let payout_id = format!("{}-{n}", args.run_id);
        let approvals = match &approving {
            Some((policy, keys)) => approvals::approve(policy, keys, &owner, &raw, &payout_id)
                .map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        Ok(SignRequest {
            key: owner.to_base58(),
            raw_data: raw,
            payout_id,
            approvals,
            deposit_index: None,
        })
    };
    // On every core: making an approval costs about as much as verifying one.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let per = count.div_ceil(threads);
    let parts: Vec<Result<Vec<SignRequest>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let build = &build;
                scope.spawn(move || (t * per..((t + 1) * per).min(count)).map(build).collect())
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a prebuild thread panicked".into()))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(usize::try_from(count)?);
    for part in parts {
        out.extend(part?);
    }
    let each = out.first().map_or(0, |r| r.approvals.len());
    println!(
        "prebuilt          {count} requests with {each} approvals each in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Single-core Ed25519 verifications per second over a message the size of the SSHSIG
/// signed data, with the same crate and features the signer verifies approvals with.
fn raw_verify_rate(seconds: f64) -> f64 {
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    let key = SigningKey::from_bytes(&[0x24; 32]);
    let public = key.verifying_key();
    let message = [0x5a_u8; 120];
    let sig = key.sign(&message);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        if public.verify(&message, &sig).is_ok() {
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// User plus system CPU time of process `pid` so far, in clock ticks (USER_HZ, 100 on Linux).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The client settings of the TLS bench mode: the server's CA and the client certificate.
fn tls_client(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?;
    Ok(Arc::new(config))
}

/// Writes the TLS bench mode's certificates and the two configs (see `PrepareArgs`).
fn prepare_tls(
    dir: &std::path::Path,
    port: u16,
    common: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        SanType,
    };
    use std::os::unix::fs::OpenOptionsExt;
    let private = |name: &str, text: String| -> std::io::Result<()> {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(name))?
            .write_all(text.as_bytes())
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    let ca = ca.self_signed(&ca_key)?;
    let leaf =
        |cn: &str, usage: ExtendedKeyUsagePurpose| -> Result<(String, String), rcgen::Error> {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(vec!["localhost".to_owned()])?;
            p.subject_alt_names
                .push(SanType::IpAddress([127, 0, 0, 1].into()));
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![usage];
            Ok((p.signed_by(&key, &ca, &ca_key)?.pem(), key.serialize_pem()))
        };
    let (server_pem, server_key) = leaf("bench signer", ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client_pem, client_key) = leaf("bench client", ExtendedKeyUsagePurpose::ClientAuth)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), server_pem)?;
    private("server.key", server_key)?;
    std::fs::write(dir.join("client.pem"), client_pem)?;
    private("client.key", client_key)?;
    std::fs::write(
        dir.join("signer-plain.toml"),
        format!("listen = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\n{common}"),
    )?;
    std::fs::write(
        dir.join("signer-tls.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n{common}[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\nclient_ca = \"ca.pem\"\n"
        ),
    )?;
    Ok(())
}

/// Raw `C_Sign(CKM_ECDSA)` over 32-byte digests: `threads` threads, each with its own
/// logged-in session, for `seconds`. The ceiling any PKCS#11 signing service can reach.
fn raw_pkcs11_rate(
    args: &Args,
    module: &std::path::Path,
    seconds: f64,
) -> Result<f64, Box<dyn std::error::Error>> {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, ObjectClass};
    use tron_signer::keys::pkcs11::context::{find_slot, open_logged_in};

    let (Some(token), Some(key), Some(pin_env)) = (
        &args.raw_pkcs11_token,
        &args.raw_pkcs11_key,
        &args.raw_pkcs11_pin_env,
    ) else {
        return Err("--raw-pkcs11-module needs --raw-pkcs11-token, -key and -pin-env".into());
    };
    let pin = tron_signer::secret_source::SecretSource::Env(pin_env.clone()).read_secret("PIN")?;
    let m = tron_signer::keys::pkcs11::module(module)?;
    let _gate = m.enter();
    let ctx = m.context();
    let slot = find_slot(ctx, token)?;
    let mut sessions = Vec::new();
    for _ in 0..args.raw_threads.max(1) {
        let s = open_logged_in(ctx, slot, false, &pin)?;
        let handles = s.find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(key.as_bytes().to_vec()),
        ])?;
        let [h] = handles[..] else {
            return Err(format!("{} private keys labelled {key:?}", handles.len()).into());
        };
        sessions.push((s, h));
    }
    let start = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(t, (s, h))| {
                scope.spawn(move || {
                    let mut n = 0u64;
                    let mut digest = [t as u8; 32];
                    while start.elapsed().as_secs_f64() < seconds {
                        match s.sign(&Mechanism::Ecdsa, h, &digest) {
                            Ok(rs) => digest[..8].copy_from_slice(&rs[..8]),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn raw_sign_rate(seconds: f64) -> f64 {
    let key = SigningKey::from_slice(&[0x42; 32]).expect("constant key is valid");
    let start = Instant::now();
    let mut n = 0u64;
    let mut digest = [7u8; 32];
    while start.elapsed().as_secs_f64() < seconds {
        let s: Signature = key.sign_prehash(&digest).expect("sign");
        digest[0] = s.to_bytes()[0];
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Idle (idle + iowait) and total jiffies over all CPUs, from /proc/stat: how much of the
/// shared machine the server and this generator left unused while the load ran.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4)?;
    // user nice system idle iowait irq softirq steal; guest time is already in user/nice.
    Some((idle, fields.iter().take(8).sum()))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn prepare(a: &PrepareArgs) -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write as _;
    use tron_signer::keystore::{KdfParams, Keystore};
    std::fs::create_dir_all(&a.dir)?;
    let mut store = Keystore::new(KdfParams::default());
    let mut first = None;
    for i in 0..a.keys.max(1) {
        let addr = store.generate(&format!("bench key {i}"))?;
        first.get_or_insert(addr);
    }
    let key = first.ok_or("no key generated")?;
    let passphrase = secrecy::SecretString::from("bench passphrase (not secret)");
    store.save(&a.dir.join("keys.tks"), &passphrase, true)?;

    let mut dests = String::new();
    let mut policy = format!(
        r#"version = 1
name = "load benchmark: {keys} keys, {n} destinations"
network = "nile"

[global]
max_fee_limit = "100"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false

[[token]]
symbol = "USDT"
contract = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
decimals = 6

# The load generator, on whichever transport the bench runs: this user on the Unix
# socket, the plaintext loopback listener, and the client certificate `prepare` makes.
[[caller]]
name = "load generator"
unix_uid = {uid}
insecure_loopback = true
tls_subject = "CN=bench client"
rpcs = ["Sign", "Evaluate", "ListKeys", "GetPolicy", "ReadPolicyText"]
all_keys = true

[[key]]
address = "{key}"
label = "bench key 0"
assets = ["TRX", "USDT"]
windows = [
  {{ asset = "TRX", window = "1h", max = "1000000000000" }},
  {{ asset = "USDT", window = "1h", max = "1000000000000" }},
]
"#,
        keys = a.keys,
        n = a.destinations,
        uid = own_uid(),
    );
    let mut tail = [0u8; 12];
    tail[0] = 0xd5;
    let allowlist = tron_testkit::big_policy::Destinations {
        count: a.destinations,
        tail,
        label: "bench destination",
        assets: &["TRX", "USDT"],
        per_tx_max: &[("TRX", "1000"), ("USDT", "1000")],
        windows: &[],
    };
    for d in allowlist.addresses() {
        writeln!(dests, "{d}")?;
    }
    allowlist.write_to(&mut policy);
    policy.push_str(&tron_signer_tools::approvals::write_approvers(
        &a.dir,
        a.approvers,
    )?);
    std::fs::write(a.dir.join("policy.toml"), policy)?;
    std::fs::write(a.dir.join("destinations.txt"), dests)?;
    let common = format!(
        "data_dir = \"data\"\npolicy = \"policy.toml\"\n[keystore]\npath = \"keys.tks\"\npassphrase = {{ env = \"{BENCH_PASSPHRASE_VAR}\" }}\n"
    );
    std::fs::write(
        a.dir.join("signer.toml"),
        format!("listen = \"unix:signer.sock\"\n{common}"),
    )?;
    if let Some(port) = a.tls_port {
        prepare_tls(&a.dir, port, &common)?;
    }
    println!("{key}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match Cli::parse() {
        Cli::Prepare(p) => return prepare(&p),
        Cli::Run(a) => *a,
    };
    let owner: Address = args.key.parse()?;
    let mut to: Vec<Address> = args
        .to
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if let Some(path) = &args.to_file {
        let text = std::fs::read_to_string(path)?;
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(args.max_destinations)
        {
            to.push(line.trim().parse()?);
        }
    }
    if to.is_empty() {
        return Err("no destinations: give --to or --to-file".into());
    }
    let token = args.token.as_deref().map(str::parse).transpose()?;
    let prebuilt = match args.prebuild {
        Some(count) => Some(Arc::new(prebuild(&args, owner, &to, token, count)?)),
        None => None,
    };
    let raw_verify = args
        .approvals_from
        .as_ref()
        .map(|_| raw_verify_rate(args.raw_seconds));

    let raw_before = match &args.raw_pkcs11_module {
        Some(m) => Some(raw_pkcs11_rate(&args, m, args.raw_seconds)?),
        None => None,
    };
    let raw_rate = match raw_before {
        Some(r) => r,
        None => raw_sign_rate(args.raw_seconds),
    };

    let mut clients = Vec::new();
    let tls = match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(tls_client(ca, cert, key)?),
        _ => None,
    };
    for _ in 0..args.connections.max(1) {
        let channel = match &tls {
            Some(t) => {
                tron_proto::client::connect_tls(&args.endpoint, "localhost", Arc::clone(t)).await?
            }
            None => tron_proto::client::connect(&args.endpoint).await?,
        };
        clients.push(SignerClient::new(channel));
    }
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let deadline = Duration::from_secs_f64(args.seconds);
    let cpu_before = cpu_jiffies();
    let server_before = args.server_pid.and_then(process_ticks);
    let exhausted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();

    let one = {
        let (seq, errors, first_error, to, run_id, prebuilt, exhausted) = (
            seq.clone(),
            errors.clone(),
            first_error.clone(),
            to.clone(),
            args.run_id.clone(),
            prebuilt.clone(),
            exhausted.clone(),
        );
        let amount = args.amount;
        move |mut client: SignerClient<tonic::transport::Channel>| {
            let (seq, errors, first_error, to, run_id, prebuilt, exhausted) = (
                seq.clone(),
                errors.clone(),
                first_error.clone(),
                to.clone(),
                run_id.clone(),
                prebuilt.clone(),
                exhausted.clone(),
            );
            async move {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let req = match &prebuilt {
                    Some(all) => match all.get(n as usize) {
                        Some(r) => r.clone(),
                        None => {
                            exhausted.store(true, Ordering::Relaxed);
                            return false;
                        }
                    },
                    None => SignRequest {
                        key: owner.to_base58(),
                        raw_data: transfer(
                            owner,
                            to[(n as usize) % to.len()],
                            token,
                            amount,
                            n,
                            60_000,
                        ),
                        payout_id: format!("{run_id}-{n}"),
                        approvals: vec![],
                        deposit_index: None,
                    },
                };
                if let Err(status) = client.sign(req).await {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        *first_error.lock().await = Some(status.to_string());
                    }
                    false
                } else {
                    true
                }
            }
        }
    };

    let mut tasks = Vec::new();
    match args.rate {
        None => {
            for c in 0..args.clients.max(1) {
                let client = clients[c % clients.len()].clone();
                let (one, latencies, exhausted) =
                    (one.clone(), latencies.clone(), exhausted.clone());
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while start.elapsed() < deadline && !exhausted.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        if one(client.clone()).await {
                            mine.push(t.elapsed().as_micros() as u64);
                        }
                    }
                    latencies.lock().await.extend(mine);
                }));
            }
        }
        Some(rate) => {
            // Requests leave on schedule from a plain thread that sleeps to each send time:
            // tokio's timer rounds deadlines up to whole milliseconds, which would add up to
            // a millisecond of the generator's own lateness to every latency. Latency is
            // still taken from the scheduled time, so a server that falls behind is charged.
            let interval = Duration::from_secs_f64(1.0 / rate);
            let total = (rate * args.seconds) as u64;
            let handle = tokio::runtime::Handle::current();
            let (one, latencies) = (one.clone(), latencies.clone());
            let dispatch = std::thread::spawn(move || {
                let mut tasks = Vec::with_capacity(total as usize);
                for i in 0..total {
                    let scheduled = start + interval.mul_f64(i as f64);
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let client = clients[(i as usize) % clients.len()].clone();
                    let (one, latencies) = (one.clone(), latencies.clone());
                    tasks.push(handle.spawn(async move {
                        if one(client).await {
                            let l = scheduled.elapsed().as_micros() as u64;
                            latencies.lock().await.push(l);
                        }
                    }));
                }
                tasks
            });
            tasks = tokio::task::spawn_blocking(move || dispatch.join())
                .await?
                .map_err(|_| "the dispatch thread panicked")?;
        }
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = cpu_jiffies();
    let server_after = args.server_pid.and_then(process_ticks);
    // Measured again after the load, so drift on a shared machine shows and averages out.
    let raw_after = match &args.raw_pkcs11_module {
        Some(m) => Some(raw_pkcs11_rate(&args, m, args.raw_seconds)?),
        None => None,
    };
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    lat.sort_unstable();
    let ok = lat.len() as f64;
    let rate = ok / elapsed;
    let errors = errors.load(Ordering::Relaxed);
    let rss = args.server_pid.and_then(peak_rss_kib);
    let mode = match args.rate {
        Some(r) => format!("open loop at {r:.0}/s"),
        None => format!("closed loop, {} clients", args.clients),
    };
    println!(
        "mode              {mode} over {} connection(s), {elapsed:.1} s",
        args.connections
    );
    println!("signed            {ok:.0} ok, {errors} errors");
    println!("throughput        {rate:.0} signs/s");
    println!("latency p50       {:.2} ms", percentile(&lat, 0.50));
    println!("latency p99       {:.2} ms", percentile(&lat, 0.99));
    if let (Some(before), Some(after)) = (raw_before, raw_after) {
        let raw = (before + after) / 2.0;
        println!(
            "raw C_Sign        {raw:.0}/s with {} threads (before {before:.0}/s, after {after:.0}/s)",
            args.raw_threads
        );
        println!("ratio             {:.2} x raw C_Sign rate", rate / raw);
    } else {
        // The VM's single-core speed drifts; measure again after the load and use the mean.
        let after = raw_sign_rate(args.raw_seconds);
        let raw = (raw_rate + after) / 2.0;
        println!(
            "raw k256 sign     {raw:.0}/s on one core (before {raw_rate:.0}/s, after {after:.0}/s)"
        );
        println!("ratio             {:.2} x raw single-core rate", rate / raw);
    }
    if let (Some((idle0, total0)), Some((idle1, total1))) = (cpu_before, cpu_after) {
        if total1 > total0 {
            let idle = 100.0 * idle1.saturating_sub(idle0) as f64 / (total1 - total0) as f64;
            println!("machine idle      {idle:.0} % of all CPUs during the load (incl. iowait)");
        }
    }
    if let (Some(before), Some(after)) = (server_before, server_after) {
        // USER_HZ is 100 on Linux: a tick is 10 ms.
        let micros = after.saturating_sub(before) as f64 * 10_000.0;
        if ok > 0.0 {
            println!(
                "server CPU        {:.1} us per Sign ({:.2} s over the run)",
                micros / ok,
                micros / 1e6
            );
        }
    }
    if let Some(before) = raw_verify {
        let after = raw_verify_rate(args.raw_seconds);
        let rate = (before + after) / 2.0;
        println!(
            "raw ed25519       {rate:.0} verifications/s on one core, {:.1} us each (before {before:.0}/s, after {after:.0}/s)",
            1e6 / rate
        );
    }
    if exhausted.load(Ordering::Relaxed) {
        println!("note              the prebuilt requests ran out before the time was up");
    }
    if let Some(kib) = rss {
        println!("server peak RSS   {:.1} MiB", kib as f64 / 1024.0);
    }
    if let Some(e) = first_error.lock().await.take() {
        println!("first error       {e}");
    }
    Ok(())
}
