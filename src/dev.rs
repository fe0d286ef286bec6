//! `tron-signer dev`: the quickstart. Runs the real service on embedded defaults (a
//! development keystore holding a publicly known test key, and the Nile example policy)
//! and shows one allowed and one refused payout over gRPC.
//!
//! Nothing here is fit for real funds: the key is a published test vector.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{SecretBox, SecretString};
use serde_json::json;
use tron_proto::signer::SignRequest;
use tron_proto::{Address, U256};

use crate::config::{Config, KeystoreConfig, Listen, TlsConfig};
use crate::decode::{encode, Asset, Decoded, Envelope, Intent, Trc20Transfer};
use crate::dev_pki::{DevPki, DevPkiError};
use crate::keys::soft::keystore::{KdfParams, Keystore, KeystoreError};
use crate::secret_source::SecretSource;
use crate::service::run::{self, StartError};

/// The Nile example policy, compiled in.
pub const NILE_POLICY: &str = include_str!("../policies/nile.toml");
/// Published test vector; its address, TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1, is the
/// development key in `policies/nile.toml`.
const DEV_SECRET: &str = "279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e";
/// Named in the written config, so `serve --config <dir>/signer.toml` works too.
pub const DEV_PASSPHRASE_VAR: &str = "TRON_SIGNER_DEV_PASSPHRASE";
/// Not a secret: it protects only the publicly known development key.
pub const DEV_PASSPHRASE: &str = "tron-signer development keystore";

/// Why the quickstart could not run.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("dev directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dev keystore: {0}")]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("demo client: {0}")]
    Demo(String),
    #[error(transparent)]
    Pki(#[from] DevPkiError),
}

/// Writes (once) the development keystore, policy and config under `dir`.
pub fn prepare(dir: &Path, listen: Listen) -> Result<Config, DevError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DevError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let policy = dir.join("policy.toml");
    if !policy.exists() {
        std::fs::write(&policy, NILE_POLICY).map_err(io(&policy))?;
    }
    let keystore = dir.join("dev-keystore.tks");
    let passphrase = SecretString::from(DEV_PASSPHRASE);
    if !keystore.exists() {
        let mut store = Keystore::new(KdfParams::default());
        let mut secret = [0u8; 32];
        hex::decode_to_slice(DEV_SECRET, &mut secret)
            .map_err(|e| DevError::Demo(format!("embedded dev key: {e}")))?;
        store.import(
            "development key (published test vector, testnet only)",
            SecretBox::new(Box::new(secret)),
        )?;
        store.save(&keystore, &passphrase, false)?;
    }
    // On TCP the quickstart serves mutual TLS like a deployment, with a throwaway PKI.
    let tls = match &listen {
        Listen::Tcp(addr) => {
            let pki = DevPki::ensure(dir, addr.ip())?;
            Some(TlsConfig {
                cert: pki.server_cert,
                key: pki.server_key,
                client_ca: Some(pki.ca),
                client_pins: Vec::new(),
            })
        }
        Listen::Unix(_) => None,
    };
    Ok(Config {
        listen,
        data_dir: dir.join("data"),
        policy,
        unix_socket: Default::default(),
        keystore: Some(KeystoreConfig {
            path: keystore,
            passphrase: SecretSource::Env(DEV_PASSPHRASE_VAR.into()),
        }),
        pkcs11: None,
        audit_budget: None,
        metrics: None,
        ledger: Default::default(),
        clock: Default::default(),
        connections: Default::default(),
        tls,
        insecure_plaintext: false,
        policy_admins: None,
        source_path: None,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An unsigned USDT transfer as a broadcaster would build it (TAPOS fields are examples).
fn usdt_transfer(owner: Address, token: Address, to: Address, units: u64) -> Vec<u8> {
    let now = now_ms();
    encode(&Decoded {
        envelope: Envelope {
            txid: [0; 32],
            ref_block_bytes: [(now >> 8) as u8, now as u8],
            ref_block_hash: now.to_be_bytes(),
            expiration: now + 60_000,
            timestamp: now,
            fee_limit: 30_000_000,
            memo: Vec::new(),
            permission_id: 0,
        },
        intent: Intent::Trc20(Trc20Transfer {
            owner,
            token,
            to,
            amount: U256::from(units),
        }),
    })
}

/// A client for the dev signer: over mutual TLS with the dev client certificate on TCP.
async fn dev_client(
    endpoint: &str,
    pki: Option<&DevPki>,
) -> Result<tron_proto::signer::signer_client::SignerClient<tonic::transport::Channel>, DevError> {
    let channel = match pki {
        Some(pki) => {
            tron_proto::client::connect_tls(endpoint, "localhost", pki.client_config()?).await
        }
        None => tron_proto::client::connect(endpoint).await,
    };
    channel
        .map(tron_proto::signer::signer_client::SignerClient::new)
        .map_err(|e| DevError::Demo(e.to_string()))
}

/// Sends one payout the policy allows and one it refuses; prints both as JSON lines.
pub async fn demo(
    endpoint: &str,
    pki: Option<&DevPki>,
    core: &crate::service::Core,
) -> Result<(), DevError> {
    let policy = core.policy();
    let (key, token, allowed_to) = policy
        .policy
        .keys
        .iter()
        .filter(|k| core.keys().get(&k.address).is_some())
        .find_map(|k| {
            k.destinations.iter().find_map(|d| {
                d.assets.iter().find_map(|a| match a.asset {
                    Asset::Token(t) => Some((k.address, t, d.address)),
                    Asset::Trx => None,
                })
            })
        })
        .ok_or_else(|| {
            DevError::Demo("the policy allows no token payout for a loaded key".into())
        })?;
    let mut client = dev_client(endpoint, pki).await?;
    let run = now_ms();
    let not_allowlisted = Address::from_evm([0x5a; 20]);
    for (label, to, payout) in [
        ("allowed", allowed_to, format!("demo-{run}-allowed")),
        ("refused", not_allowlisted, format!("demo-{run}-refused")),
    ] {
        let req = SignRequest {
            key: key.to_base58(),
            raw_data: usdt_transfer(key, token, to, 10_000_000),
            payout_id: payout,
            approvals: vec![],
            deposit_index: None,
        };
        let line = match client.sign(req).await {
            Ok(r) => {
                let r = r.into_inner();
                let d = r.decision.unwrap_or_default();
                json!({
                    "demo": label, "result": "signed", "to": to.to_base58(), "amount": "10 USDT",
                    "txid": hex::encode(&r.txid), "signature": hex::encode(&r.signature),
                    "rule": d.rule, "audit_sequence": d.audit_sequence,
                })
            }
            Err(st) => json!({
                "demo": label, "result": "refused", "to": to.to_base58(), "amount": "10 USDT",
                "grpc_code": format!("{:?}", st.code()),
                "reason_code": st.metadata().get("reason-code").and_then(|v| v.to_str().ok()).unwrap_or(""),
                "message": st.message(),
            }),
        };
        println!("{line}");
    }
    Ok(())
}

/// Prepares the dev directory, starts the service, runs the demo, and keeps serving
/// (unless `exit_after_demo`).
pub async fn run_dev(dir: &Path, listen: Listen, exit_after_demo: bool) -> Result<(), DevError> {
    let cfg = prepare(dir, listen)?;
    let core = run::build_core_with(&cfg, SecretString::from(DEV_PASSPHRASE)).await?;
    let (endpoint, pki) = match &cfg.listen {
        Listen::Tcp(a) => (a.to_string(), Some(DevPki::ensure(dir, a.ip())?)),
        Listen::Unix(p) => (format!("unix:{}", p.display()), None),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = run::termination() => {},
            _ = stop_rx => {},
        }
    };
    let server = {
        let cfg = cfg.clone();
        let core = Arc::clone(&core);
        tokio::spawn(async move {
            let tls = run::prepare_transport(&cfg)?;
            run::run(&cfg, core, tls, shutdown).await
        })
    };
    eprintln!(
        "tron-signer dev: serving on {endpoint} (data in {})",
        dir.display()
    );
    if let Some(pki) = &pki {
        eprintln!(
            "tron-signer dev: mutual TLS with a throwaway CA; call it with\n  {}",
            pki.grpcurl(&endpoint)
        );
    }
    // Wait until the server answers, then show the two outcomes.
    let mut ready = false;
    for _ in 0..100 {
        if dev_client(&endpoint, pki.as_ref()).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if ready {
        demo(&endpoint, pki.as_ref(), &core).await?;
    }
    if exit_after_demo || !ready {
        let _ = stop_tx.send(());
    } else {
        eprintln!("tron-signer dev: Ctrl-C to stop");
    }
    match server.await {
        Ok(r) => r.map_err(DevError::from),
        Err(e) => Err(DevError::Demo(format!("server task: {e}"))),
    }
}
