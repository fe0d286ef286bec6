//! `tron-node-double`: a TEST DOUBLE of a Tron full node's HTTP API, for integration tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tron_node_double::{start, Accounts, ChainParams, Options};

/// A test double of a Tron full node's HTTP API (not a node: no consensus, no network).
#[derive(Parser)]
#[command(name = "tron-node-double", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Time between blocks.
    #[arg(long, default_value_t = 3000)]
    block_interval_ms: u64,
    /// A transaction is solid (visible on /walletsolidity) this many blocks after inclusion.
    #[arg(long, default_value_t = 3)]
    solid_after: u32,
    /// Seed balances: {"trx": {"T…": "sun"}, "trc20": {"T<token>": {"T…": "units"}}}.
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// The TRC-20 contract `/double/pay` pays in when the body names none (it is made a
    /// contract if the seed file does not list it). Default: Nile's USDT address, so a
    /// broadcaster configured for `network = "nile"` watches it without more settings.
    #[arg(long, default_value = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf")]
    usdt_contract: String,
    /// Require this value in the TRON-PRO-API-KEY header (401 otherwise).
    #[arg(long)]
    api_key: Option<String>,
    /// Also write the bound address (host:port) to this file, atomically.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// `getEnergyFee`: sun burnt per unit of energy (mainnet: 100).
    #[arg(long, default_value_t = ChainParams::default().energy_fee)]
    energy_fee: u64,
    /// `getTransactionFee`: sun per bandwidth byte (served; free bandwidth is assumed).
    #[arg(long, default_value_t = ChainParams::default().transaction_fee)]
    transaction_fee: u64,
    /// `getCreateAccountFee`: sun burnt for the bandwidth of an account-creating transfer.
    #[arg(long, default_value_t = ChainParams::default().create_account_fee)]
    create_account_fee: u64,
    /// `getCreateNewAccountFeeInSystemContract`: sun burnt for creating an account.
    #[arg(long, default_value_t = ChainParams::default().create_new_account_fee_in_system_contract)]
    create_new_account_fee: u64,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tron-node-double: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let usdt: tron_proto::Address = args
        .usdt_contract
        .parse()
        .map_err(|e| format!("--usdt-contract: {e}"))?;
    let accounts = match &args.accounts {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Accounts::from_json(&bytes).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Accounts::default(),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let running = start(Options {
            listen: args.listen,
            block_interval: Duration::from_millis(args.block_interval_ms),
            solid_after: args.solid_after,
            accounts,
            api_key: args.api_key,
        })
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        running.app.set_default_token(usdt);
        running.app.with_chain(|c| {
            *c.params_mut() = ChainParams {
                energy_fee: args.energy_fee,
                transaction_fee: args.transaction_fee,
                create_account_fee: args.create_account_fee,
                create_new_account_fee_in_system_contract: args.create_new_account_fee,
            }
        });
        let addr = running.addr.to_string();
        if let Some(p) = &args.port_file {
            write_atomically(p, &addr)?;
        }
        println!("{addr}");
        tracing::warn!(
            "tron-node-double listening on http://{addr}: a TEST DOUBLE, not a Tron node"
        );
        let _ = tokio::signal::ctrl_c().await;
        drop(running);
        Ok(())
    })
}

/// Readers polling for the file never see it half written.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{text}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
