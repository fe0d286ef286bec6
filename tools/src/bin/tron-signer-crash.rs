//! Crash harness for the signer (issue 17): runs the real `tron-signer serve` under
//! concurrent Sign load, kills it with SIGKILL at random moments (from a seeded generator;
//! the seed is printed so a run can be repeated), restarts it, K times, then checks the
//! evidence: `audit verify` passes, every signature a client received is in the ledger
//! (same bytes) and in the audit export (same txid, payout, amount, destination), no payout
//! id was signed as two transactions, and no rolling window was exceeded at any moment of
//! the run. Exits 1 with a precise message per violation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tonic::transport::Channel;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::{ListKeysRequest, SignRequest};
use tron_proto::Address;
use tron_signer_tools::crash::check::{self, Received};
use tron_signer_tools::crash::rng::Rng;
use tron_signer_tools::crash::setup::{self, Setup, PER_TX_MAX_TRX, SUN, TX_TTL_MS};
use tron_signer_tools::tx::{now_ms, own_uid, transfer};

#[derive(Parser)]
#[command(
    name = "tron-signer-crash",
    about = "SIGKILL the signer under load, restart it, and check nothing was lost or overrun"
)]
struct Args {
    /// The `tron-signer` binary; by default the one beside this program.
    #[arg(long)]
    signer: Option<PathBuf>,
    /// A new (or empty) directory for the keystore, policy, data and logs of the run.
    #[arg(long)]
    dir: PathBuf,
    /// How many times to SIGKILL and restart the signer.
    #[arg(long, default_value_t = 50)]
    kills: u32,
    /// Concurrent gRPC clients, each on its own connection.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Seed of the kill delays and the clients' choices; by default from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Shortest time the signer runs before a kill, ms (after it answers).
    #[arg(long, default_value_t = 200)]
    min_delay_ms: u64,
    /// Longest time the signer runs before a kill, ms.
    #[arg(long, default_value_t = 1500)]
    max_delay_ms: u64,
    /// Pause of each client between payouts, ms (keeps a shared machine usable).
    #[arg(long, default_value_t = 5)]
    pause_ms: u64,
    /// Multiplies every window's max (1: the limits RELIABILITY.md describes), for more
    /// signatures per run on a fast signer; the load must still reach them (checked).
    #[arg(long, default_value_t = 1)]
    window_scale: u64,
}

/// What the clients and the killer share while the run lasts.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    in_flight: AtomicU64,
    requests: AtomicU64,
    payouts: AtomicU64,
    /// Sign calls that failed on the transport or with UNAVAILABLE, and were retried.
    retries: AtomicU64,
    /// Retries sent as a rebuilt transaction (new txid) for the same payout id.
    rebuilt: AtomicU64,
    /// Deliberate resends of a txid already answered.
    resends: AtomicU64,
    /// Retries of a txid whose first answer was lost, answered with the stored signature.
    lost_then_replayed: AtomicU64,
    /// Rebuilt retries refused `payout_in_flight`: the first transaction had been signed.
    rebuilt_refused_in_flight: AtomicU64,
    received: Mutex<Vec<Received>>,
    refusals: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn count_refusal(&self, reason: &str) {
        if let Ok(mut r) = self.refusals.lock() {
            *r.entry(reason.to_owned()).or_default() += 1;
        }
    }
}

/// One payout a client is asking for: the request, and what it asks, to rebuild it.
struct Payout {
    req: SignRequest,
    to: Address,
    amount_sun: u64,
}

/// How one payout ended for the client.
enum Answer {
    Signed,
    Refused,
}

/// Who a client is and what it signs with.
struct Client {
    id: u64,
    key: Address,
    grpc: SignerClient<Channel>,
    rng: Rng,
    shared: Arc<Shared>,
    nonce: u64,
}

impl Client {
    /// A fresh transaction for `payout_id` (new txid; the nonce makes it unique).
    fn build(&mut self, payout_id: String, to: Address, amount_sun: u64) -> Payout {
        self.nonce += 1;
        let n = (self.id << 40) | self.nonce;
        let raw_data = transfer(self.key, to, None, amount_sun, n, TX_TTL_MS);
        Payout {
            req: SignRequest {
                key: self.key.to_base58(),
                raw_data,
                payout_id,
                approvals: vec![],
                deposit_index: None,
            },
            to,
            amount_sun,
        }
    }

    /// Asks until the signer gives an answer that is not "unavailable": a client retries
    /// on connection errors and UNAVAILABLE (the signer down, restarting, or the txid being
    /// signed right now), half the time with the same bytes, half with a rebuilt transaction
    /// for the same payout id, as payout clients do.
    async fn ask(&mut self, p: &mut Payout) -> Answer {
        let mut retried_same_txid = false;
        let mut rebuilt = false;
        loop {
            self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
            self.shared.requests.fetch_add(1, Ordering::Relaxed);
            let result = self.grpc.sign(p.req.clone()).await;
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    if resp.replayed && retried_same_txid {
                        self.shared
                            .lost_then_replayed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let Ok(txid) = <[u8; 32]>::try_from(resp.txid.as_slice()) else {
                        self.shared.count_refusal("harness:ok_without_32_byte_txid");
                        return Answer::Refused;
                    };
                    let got = Received {
                        txid,
                        signature: resp.signature,
                        payout_id: p.req.payout_id.clone(),
                        amount_sun: p.amount_sun,
                        destination: p.to,
                        replayed: resp.replayed,
                    };
                    if let Ok(mut r) = self.shared.received.lock() {
                        r.push(got);
                    }
                    return Answer::Signed;
                }
                Err(status) => {
                    let reason = status
                        .metadata()
                        .get("reason-code")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let retry = reason.is_empty() || status.code() == tonic::Code::Unavailable;
                    if !retry {
                        if rebuilt && reason == "payout_in_flight" {
                            self.shared
                                .rebuilt_refused_in_flight
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        self.shared.count_refusal(&reason);
                        return Answer::Refused;
                    }
                    if !reason.is_empty() {
                        self.shared.count_refusal(&reason);
                    }
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(self.rng.range(10, 60))).await;
                    if self.rng.one_in(2) {
                        retried_same_txid = true;
                    } else {
                        self.shared.rebuilt.fetch_add(1, Ordering::Relaxed);
                        let payout_id = p.req.payout_id.clone();
                        *p = self.build(payout_id, p.to, p.amount_sun);
                        retried_same_txid = false;
                        rebuilt = true;
                    }
                }
            }
        }
    }

    /// Payouts until told to stop: a random destination and amount, a fresh payout id; now
    /// and then the same request again after its answer (a client unsure it was received).
    async fn run(mut self, destinations: Vec<Address>, pause_ms: u64) {
        let mut n = 0u64;
        while !self.shared.stop.load(Ordering::SeqCst) {
            n += 1;
            let to = destinations[setup::destination_of(self.rng.range(0, 4))];
            let amount_sun = self.rng.range(SUN / 2, PER_TX_MAX_TRX * SUN);
            let mut p = self.build(format!("crash-{}-{n}", self.id), to, amount_sun);
            self.shared.payouts.fetch_add(1, Ordering::Relaxed);
            if let Answer::Signed = self.ask(&mut p).await {
                if self.rng.one_in(10) {
                    self.shared.resends.fetch_add(1, Ordering::Relaxed);
                    // Compared with the first answer by the checks (one txid, one signature).
                    let _ = self.ask(&mut p).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
    }
}

/// The signer process the harness starts, kills and restarts.
struct Server {
    signer: PathBuf,
    setup: Setup,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    fn endpoint(&self) -> String {
        format!("unix:{}", self.setup.socket.display())
    }

    /// Starts `tron-signer serve` and waits until it answers ListKeys; returns how long that
    /// took.
    async fn start(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let _ = std::fs::remove_file(&self.setup.socket);
        self.starts += 1;
        let log_path = self.setup.dir.join("serve.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.signer)
            .arg("serve")
            .arg("--config")
            .arg(&self.setup.config)
            .env(setup::PASSPHRASE_VAR, setup::PASSPHRASE)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.signer.display()))?;
        self.child = Some(child);
        let deadline = started + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!(
                        "the signer exited during start {} ({status}); see {}",
                        self.starts,
                        log_path.display()
                    ));
                }
            }
            if self.setup.socket.exists() {
                if let Ok(mut c) = tron_proto::client::signer_client(&self.endpoint()).await {
                    if c.list_keys(ListKeysRequest {}).await.is_ok() {
                        return Ok(started.elapsed());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!(
            "the signer did not answer within 60 s of start {}; see {}",
            self.starts,
            log_path.display()
        ))
    }

    /// SIGKILL (std's `Child::kill`) and reap.
    fn kill(&mut self) -> Result<(), String> {
        if let Some(mut c) = self.child.take() {
            c.kill().map_err(|e| format!("kill the signer: {e}"))?;
            c.wait().map_err(|e| format!("reap the signer: {e}"))?;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Runs `tron-signer audit ARGS`; its standard output, or why it failed.
fn audit(signer: &Path, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new(signer)
        .arg("audit")
        .args(args)
        .output()
        .map_err(|e| format!("run {} audit: {e}", signer.display()))?;
    if !out.status.success() {
        return Err(format!(
            "tron-signer audit {:?} failed ({}): {}{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kill phase's figures.
#[derive(Default)]
struct KillStats {
    kills: u32,
    with_in_flight: u32,
    in_flight_total: u64,
    restart_max: Duration,
    restart_total: Duration,
}

async fn kill_loop(
    server: &mut Server,
    shared: &Shared,
    rng: &mut Rng,
    args: &Args,
) -> Result<KillStats, String> {
    let mut s = KillStats::default();
    let mut delays = Vec::new();
    for k in 1..=args.kills {
        let delay = rng.range(args.min_delay_ms, args.max_delay_ms);
        delays.push(delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // Land mid-load: wait (up to 1 s) for a request to be in flight.
        let waited = Instant::now();
        while shared.in_flight.load(Ordering::SeqCst) == 0 && waited.elapsed().as_secs() < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let in_flight = shared.in_flight.load(Ordering::SeqCst);
        server.kill()?;
        s.kills += 1;
        s.in_flight_total += in_flight;
        if in_flight > 0 {
            s.with_in_flight += 1;
        }
        let restart = server.start().await?;
        s.restart_max = s.restart_max.max(restart);
        s.restart_total += restart;
        println!(
            "kill {k}/{}: after {delay} ms, {in_flight} requests in flight; restarted in {} ms",
            args.kills,
            restart.as_millis()
        );
    }
    println!("kill delays (ms)  {delays:?}");
    Ok(s)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The whole run; `Ok(false)` when a check failed (each failure already printed).
async fn run(args: Args) -> Result<bool, String> {
    let signer = match &args.signer {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("where is this program: {e}"))?
            .with_file_name("tron-signer"),
    };
    if !signer.is_file() {
        return Err(format!(
            "no signer binary at {} (build it: cargo build -p tron-signer --bin tron-signer)",
            signer.display()
        ));
    }
    if std::fs::read_dir(&args.dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("{} is not empty", args.dir.display()));
    }
    let seed = args.seed.unwrap_or_else(|| now_ms() as u64);
    println!(
        "seed              {seed} (repeat with --seed {seed} --kills {} --clients {} --window-scale {})",
        args.kills, args.clients, args.window_scale
    );
    let mut rng = Rng::new(seed);
    let setup =
        setup::write(&args.dir, own_uid(), args.window_scale).map_err(|e| format!("setup: {e}"))?;
    let mut server = Server {
        signer: signer.clone(),
        setup: setup.clone(),
        child: None,
        starts: 0,
    };
    server.start().await?;

    let shared = Arc::new(Shared::default());
    let mut tasks = Vec::new();
    for id in 0..u64::from(args.clients.max(1)) {
        let grpc = tron_proto::client::signer_client(&server.endpoint())
            .await
            .map_err(|e| format!("client {id}: {e}"))?;
        let client = Client {
            id,
            key: setup.key,
            grpc,
            rng: rng.fork(),
            shared: shared.clone(),
            nonce: 0,
        };
        tasks.push(tokio::spawn(
            client.run(setup.destinations.clone(), args.pause_ms),
        ));
    }
    let started = Instant::now();
    let kills = kill_loop(&mut server, &shared, &mut rng, &args).await;
    // The last signer keeps running while the clients finish their payouts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .is_err()
        {
            return Err("a client did not finish within 60 s of the stop".into());
        }
    }
    let elapsed = started.elapsed();
    let kills = kills?;

    // Beside the last signer, which repaired the ledger the last kill left: the read-only
    // audit commands refuse a database that still needs crash recovery.
    let data = setup.data_dir.as_os_str();
    let verify = audit(&signer, &["verify".as_ref(), "--data-dir".as_ref(), data]);
    let export_path = setup.dir.join("audit-export.jsonl");
    audit(
        &signer,
        &[
            "export".as_ref(),
            "--data-dir".as_ref(),
            data,
            "--out".as_ref(),
            export_path.as_os_str(),
        ],
    )?;
    // Stopped before the ledger is opened for the checks (one writer at a time).
    server.kill()?;
    let text = std::fs::read_to_string(&export_path)
        .map_err(|e| format!("read {}: {e}", export_path.display()))?;
    let export = check::read_export(&text)?;
    let received = shared
        .received
        .lock()
        .map(|r| r.clone())
        .map_err(|_| "a client panicked")?;
    let findings = check::check(&received, &export, &setup.windows, &setup.data_dir);
    let refusals = shared
        .refusals
        .lock()
        .map(|r| r.clone())
        .map_err(|_| "a client panicked")?;

    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!("signer            {}", signer.display());
    println!(
        "clients           {} for {:.1} s",
        args.clients,
        elapsed.as_secs_f64()
    );
    println!(
        "kills             {} (SIGKILL), {} with requests in flight ({} requests in all); restart mean {} ms, max {} ms",
        kills.kills,
        kills.with_in_flight,
        kills.in_flight_total,
        kills.restart_total.as_millis() / u128::from(kills.kills.max(1)),
        kills.restart_max.as_millis()
    );
    println!(
        "requests          {} Sign calls for {} payouts: {} retries after a kill or UNAVAILABLE ({} rebuilt as a new txid for the same payout id), {} deliberate resends of an answered txid",
        n(&shared.requests), n(&shared.payouts), n(&shared.retries), n(&shared.rebuilt), n(&shared.resends)
    );
    println!(
        "received          {} signatures ({} distinct txids); {} answers lost to a kill and recovered by a replay; {} rebuilt retries refused payout_in_flight",
        received.len(),
        findings.received_txids,
        n(&shared.lost_then_replayed),
        n(&shared.rebuilt_refused_in_flight)
    );
    println!(
        "recorded          {} signed records in the audit export; {} received txids in the ledger with the same signature; {} signed but never received (killed before the answer left)",
        export.signed.len(),
        findings.in_ledger,
        findings.signed_never_received
    );
    println!("client refusals   {refusals:?}");
    println!("audit outcomes    {:?}", export.outcomes);
    for (w, peak) in setup.windows.iter().zip(&findings.peak_use) {
        let scope = match w.destination {
            None => "key".to_owned(),
            Some(d) => format!("destination {d}"),
        };
        println!(
            "window            {scope} {} s: peak use {} of max {} sun",
            w.length_ms / 1000,
            peak,
            w.max_sun
        );
    }
    let overruns = findings
        .violations
        .iter()
        .filter(|v| v.starts_with("window overrun"))
        .count();
    let doubles = findings
        .violations
        .iter()
        .filter(|v| v.starts_with("payout "))
        .count();
    println!("overruns          {overruns}");
    println!("duplicate payouts {doubles}");

    let mut ok = true;
    let mut fail = |msg: String| {
        println!("FAIL: {msg}");
        ok = false;
    };
    match verify {
        Ok(out) => println!("audit verify      {}", out.trim()),
        Err(e) => fail(e),
    }
    for v in &findings.violations {
        fail(v.clone());
    }
    let window_refusals = export.outcomes.get("over_key_window").copied().unwrap_or(0)
        + export
            .outcomes
            .get("over_destination_window")
            .copied()
            .unwrap_or(0);
    if window_refusals == 0 {
        fail("no request was refused for a window: the run never reached a limit".into());
    }
    if kills.kills > 0 && kills.with_in_flight == 0 {
        fail("no kill found a request in flight: the kills never landed mid-load".into());
    }
    if received.is_empty() {
        fail("no client received a signature".into());
    }
    println!("result            {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}
