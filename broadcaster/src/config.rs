//! The broadcaster's TOML config: which network, which node, which signer, which key.
//!
//! Everything the process connects to is named here and nowhere else: the node and the
//! signer are its only outbound connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tron_proto::Address;

use crate::deposit_address::AccountXpub;
use crate::duration;
use crate::secret::{Secret, SecretError, SecretSource};
use crate::signer_tls::SignerTls;

/// Tron's protocol limit on how far ahead a transaction's expiration may lie.
pub const MAX_EXPIRATION: Duration = Duration::from_secs(24 * 3600);
/// The network's maximum `fee_limit`, in TRX.
pub const MAX_FEE_LIMIT_TRX: u64 = 15_000;
/// Sun per TRX.
pub const SUN_PER_TRX: u64 = 1_000_000;

/// A network preset: the public node and the USDT contract on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Mainnet,
    Nile,
    Shasta,
}

impl Network {
    /// The name batch files carry, so a file made for one chain is not imported on another.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Nile => "nile",
            Network::Shasta => "shasta",
        }
    }

    /// The TronGrid endpoint for this network.
    pub fn default_node_url(self) -> &'static str {
        match self {
            Network::Mainnet => "https://api.trongrid.io",
            Network::Nile => "https://nile.trongrid.io",
            Network::Shasta => "https://api.shasta.trongrid.io",
        }
    }

    /// The USDT (TRC-20) contract, where it is known well enough to ship as a default.
    /// Shasta has no USDT contract we could verify, so it must be configured explicitly.
    pub fn default_usdt_contract(self) -> Option<&'static str> {
        match self {
            Network::Mainnet => Some("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"),
            Network::Nile => Some("TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"),
            Network::Shasta => None,
        }
    }
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub network: Network,
    pub node_url: Option<String>,
    pub node_api_key: Option<SecretSource>,
    pub usdt_contract: Option<String>,
    /// Signer endpoint (`host:port`, `http://host:port` or `unix:/path`). Absent: air-gap
    /// only, payouts wait for `batch export`.
    pub signer: Option<String>,
    pub key: String,
    pub database: PathBuf,
    /// The API key file; default: `<database>.api-keys.json`.
    pub api_keys: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    /// TRX, for TRC-20 calls only.
    pub fee_limit: Option<u64>,
    pub expiration: Option<String>,
    pub batch_expiration: Option<String>,
    pub poll_interval: Option<String>,
    pub solidity_margin: Option<String>,
    pub node_timeout: Option<String>,
    pub signer_timeout: Option<String>,
    pub max_backoff: Option<String>,
    /// Mutual TLS to a signer on TCP.
    pub signer_tls: Option<SignerTls>,
    /// The exporter's Ed25519 SSH private key (owner-only, unencrypted): `batch export`
    /// signs each file with it.
    pub batch_signing_key: Option<PathBuf>,
    /// The receive side (invoices, deposit addresses, chain watcher); off when absent.
    pub receive: Option<RawReceive>,
    /// The Prometheus metrics listener; off when absent.
    pub metrics: Option<RawMetrics>,
}

/// `[metrics]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Where `GET /metrics` is served: its own address, never the API's.
    pub listen: SocketAddr,
}

/// `[receive]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceive {
    /// The account-level extended public key (`m/44'/195'/0'`) deposit addresses derive from.
    pub xpub: String,
    /// How much less than the amount still counts as paid (and how much more is not yet
    /// overpaid), as a decimal; default "0".
    pub invoice_tolerance: Option<String>,
    /// Lifetime of an invoice whose request names none; default "1h".
    pub invoice_expiry: Option<String>,
    /// Where each tenant's events are POSTed.
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    /// First retry delay of a failed delivery, doubled each time; default "5s".
    pub webhook_min_backoff: Option<String>,
    /// Longest retry delay; default "1h".
    pub webhook_max_backoff: Option<String>,
    /// A delivery still failing this long after its first attempt is given up (recorded,
    /// redeliverable by API); default "3d".
    pub webhook_give_up_after: Option<String>,
    /// Sweeping paid invoices' addresses to the collection address; off when absent.
    pub sweep: Option<RawSweep>,
}

/// `[receive.sweep]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    /// The signer key that funds deposit addresses with TRX for the sweep's energy (the
    /// policy's `gas_for` key).
    pub gas_key: String,
    /// Where sweeps send (the policy's `collection`). Only used to build transactions:
    /// the signer refuses any other destination for a deposit key.
    pub collection: String,
    /// Smallest balance worth sweeping, per asset, as decimals: `{ USDT = "10" }`. An
    /// asset not listed is not swept.
    pub min_amount: std::collections::BTreeMap<String, String>,
    /// Extra energy budget, in percent of the estimate (default 0).
    pub energy_margin_percent: Option<u32>,
}

/// The validated `[receive.sweep]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepConfig {
    pub gas_key: Address,
    pub collection: Address,
    /// Base units per asset; an asset without an entry is not swept.
    pub min_usdt_units: Option<u64>,
    pub min_trx_sun: Option<u64>,
    pub energy_margin_percent: u32,
}

impl SweepConfig {
    /// The smallest balance of `asset` worth sweeping, if that asset is swept.
    pub fn min_units(&self, asset: crate::model::Asset) -> Option<u64> {
        match asset {
            crate::model::Asset::Usdt => self.min_usdt_units,
            crate::model::Asset::Trx => self.min_trx_sun,
        }
    }
}

/// One `[[receive.webhooks]]` endpoint as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// Stable name: deliveries are tracked under it, so renaming starts over.
    pub name: String,
    pub tenant: String,
    pub url: String,
    /// One secret, or two while rotating (the first is the new one); every delivery is
    /// signed with each, so a receiver holding either verifies it.
    pub secrets: Vec<SecretSource>,
}

/// A validated webhook endpoint. Its secrets never show in `Debug`.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub tenant: String,
    pub url: String,
    pub secrets: Vec<Secret>,
}

/// The receive side's validated settings.
#[derive(Debug, Clone)]
pub struct Receive {
    pub xpub: AccountXpub,
    pub tolerance_units: u64,
    pub default_expiry: Duration,
    pub webhooks: Vec<Webhook>,
    pub webhook_min_backoff: Duration,
    pub webhook_max_backoff: Duration,
    pub webhook_give_up_after: Duration,
    pub sweep: Option<SweepConfig>,
}

/// The longest an invoice may stay open.
pub const MAX_INVOICE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// The validated config the rest of the crate uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub network: Network,
    pub node_url: String,
    pub node_api_key: Option<Secret>,
    pub usdt_contract: Address,
    pub signer: Option<String>,
    pub key: Address,
    pub database: PathBuf,
    /// The API key file (outside the database, so keys change while `serve` runs).
    pub api_keys: PathBuf,
    pub listen: SocketAddr,
    pub fee_limit_sun: i64,
    /// Lifetime of transactions signed online (gRPC).
    pub expiration: Duration,
    /// Lifetime of transactions exported for the air gap: the whole round trip must fit.
    pub batch_expiration: Duration,
    pub poll_interval: Duration,
    /// How long past a transaction's expiration (by the node's head block time) we keep
    /// looking for it on the solidified chain before building a replacement. Covers the
    /// solidification lag (~19 blocks, about a minute on Tron).
    pub solidity_margin: Duration,
    pub node_timeout: Duration,
    pub signer_timeout: Duration,
    pub max_backoff: Duration,
    /// Mutual TLS to the signer; required when `signer` is a TCP address.
    pub signer_tls: Option<SignerTls>,
    /// The exporter key batch files are signed with; `batch export` needs it.
    pub batch_signing_key: Option<PathBuf>,
    pub receive: Option<Receive>,
    /// The metrics listener's address (`[metrics] listen`); `None`: no metrics served.
    pub metrics_listen: Option<SocketAddr>,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("config: node_api_key: {0}")]
    Secret(#[from] SecretError),
}

impl ConfigError {
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_unreadable",
            ConfigError::Parse { .. } => "config_syntax",
            ConfigError::Invalid { .. } => "config_invalid",
            ConfigError::Secret(e) => e.code(),
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

fn dur(field: &'static str, v: &Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let s = v.as_deref().unwrap_or(default);
    duration::parse(s).map_err(|e| invalid(field, e.to_string()))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.into(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        Config::from_raw(raw)
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let node_url = raw
            .node_url
            .clone()
            .unwrap_or_else(|| raw.network.default_node_url().to_owned());
        if !(node_url.starts_with("http://") || node_url.starts_with("https://")) {
            return Err(invalid("node_url", "must start with http:// or https://"));
        }
        let usdt = match (&raw.usdt_contract, raw.network.default_usdt_contract()) {
            (Some(s), _) => s.clone(),
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                return Err(invalid(
                    "usdt_contract",
                    "this network has no built-in USDT contract; set usdt_contract",
                ))
            }
        };
        let usdt_contract = Address::from_base58(&usdt)
            .map_err(|e| invalid("usdt_contract", format!("{usdt:?}: {e}")))?;
        let key = raw
            .key
            .parse::<Address>()
            .map_err(|e| invalid("key", format!("{:?}: {e}", raw.key)))?;
        let fee_trx = raw.fee_limit.unwrap_or(30);
        if fee_trx == 0 || fee_trx > MAX_FEE_LIMIT_TRX {
            return Err(invalid(
                "fee_limit",
                format!("{fee_trx} TRX is outside 1..={MAX_FEE_LIMIT_TRX}"),
            ));
        }
        let expiration = dur("expiration", &raw.expiration, "10m")?;
        let batch_expiration = dur("batch_expiration", &raw.batch_expiration, "12h")?;
        for (field, d) in [
            ("expiration", expiration),
            ("batch_expiration", batch_expiration),
        ] {
            if d < Duration::from_secs(60) || d > MAX_EXPIRATION {
                return Err(invalid(field, "must be between 1m and 24h"));
            }
        }
        let poll_interval = dur("poll_interval", &raw.poll_interval, "3s")?;
        if poll_interval.is_zero() {
            return Err(invalid("poll_interval", "must be positive"));
        }
        let node_api_key = raw.node_api_key.as_ref().map(|s| s.read()).transpose()?;
        if let Some(s) = &raw.signer {
            if s.trim().is_empty() {
                return Err(invalid("signer", "empty endpoint"));
            }
            let unix = s.starts_with("unix:");
            match (&raw.signer_tls, unix) {
                (Some(_), true) => {
                    return Err(invalid(
                        "signer_tls",
                        "applies to a TCP signer; a Unix socket is plaintext",
                    ))
                }
                (None, false) if !loopback_endpoint(s) => {
                    return Err(invalid(
                        "signer",
                        format!(
                            "{s:?} is TCP without [signer_tls]; a signer off this host is \
                             reached over mutual TLS only"
                        ),
                    ))
                }
                _ => {}
            }
        }
        let receive = match &raw.receive {
            None => None,
            Some(r) => {
                // The message never quotes the key: it may be a pasted xprv.
                let xpub = AccountXpub::parse(&r.xpub)
                    .map_err(|e| invalid("receive.xpub", format!("{} ({})", e, e.code())))?;
                let tolerance_units = crate::amount::parse_allowing_zero(
                    r.invoice_tolerance.as_deref().unwrap_or("0"),
                )
                .map_err(|e| invalid("receive.invoice_tolerance", e.to_string()))?;
                let default_expiry = dur("receive.invoice_expiry", &r.invoice_expiry, "1h")?;
                if default_expiry < Duration::from_secs(60) || default_expiry > MAX_INVOICE_EXPIRY {
                    return Err(invalid(
                        "receive.invoice_expiry",
                        "must be between 1m and 30d",
                    ));
                }
                let mut webhooks: Vec<Webhook> = Vec::new();
                for w in &r.webhooks {
                    if w.name.is_empty()
                        || w.name.len() > 64
                        || !w
                            .name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        return Err(invalid(
                            "receive.webhooks.name",
                            "1-64 of A-Z, a-z, 0-9, '-', '_'",
                        ));
                    }
                    if webhooks.iter().any(|o| o.name == w.name) {
                        return Err(invalid(
                            "receive.webhooks.name",
                            format!("{:?} appears twice", w.name),
                        ));
                    }
                    if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                        return Err(invalid(
                            "receive.webhooks.url",
                            "must start with https:// or http://",
                        ));
                    }
                    if w.secrets.is_empty() || w.secrets.len() > 2 {
                        return Err(invalid(
                            "receive.webhooks.secrets",
                            "one secret, or two while rotating",
                        ));
                    }
                    let secrets = w
                        .secrets
                        .iter()
                        .map(SecretSource::read)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| {
                            invalid("receive.webhooks.secrets", format!("{e} ({})", e.code()))
                        })?;
                    webhooks.push(Webhook {
                        name: w.name.clone(),
                        tenant: w.tenant.clone(),
                        url: w.url.clone(),
                        secrets,
                    });
                }
                let webhook_min_backoff =
                    dur("receive.webhook_min_backoff", &r.webhook_min_backoff, "5s")?;
                let webhook_max_backoff =
                    dur("receive.webhook_max_backoff", &r.webhook_max_backoff, "1h")?;
                if webhook_min_backoff.is_zero() || webhook_max_backoff < webhook_min_backoff {
                    return Err(invalid(
                        "receive.webhook_max_backoff",
                        "backoffs must be positive, the maximum at least the minimum",
                    ));
                }
                let sweep = match &r.sweep {
                    None => None,
                    Some(s) => Some(sweep_config(s, raw.signer.is_some())?),
                };
                Some(Receive {
                    sweep,
                    xpub,
                    tolerance_units,
                    default_expiry,
                    webhooks,
                    webhook_min_backoff,
                    webhook_max_backoff,
                    webhook_give_up_after: dur(
                        "receive.webhook_give_up_after",
                        &r.webhook_give_up_after,
                        "3d",
                    )?,
                })
            }
        };
        let listen = raw
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let metrics_listen = raw.metrics.as_ref().map(|m| m.listen);
        if let Some(m) = metrics_listen.filter(|m| same_socket(*m, listen)) {
            return Err(invalid(
                "metrics.listen",
                format!(
                    "{m} shares its port with the payout API (listen = {listen}): metrics are \
                     served on their own address, never on the API's socket"
                ),
            ));
        }
        Ok(Config {
            network: raw.network,
            node_url: node_url.trim_end_matches('/').to_owned(),
            node_api_key,
            usdt_contract,
            signer: raw.signer,
            key,
            api_keys: raw.api_keys.unwrap_or_else(|| {
                let mut p = raw.database.clone().into_os_string();
                p.push(".api-keys.json");
                PathBuf::from(p)
            }),
            database: raw.database,
            listen,
            fee_limit_sun: (fee_trx * SUN_PER_TRX) as i64,
            expiration,
            batch_expiration,
            poll_interval,
            solidity_margin: dur("solidity_margin", &raw.solidity_margin, "90s")?,
            node_timeout: dur("node_timeout", &raw.node_timeout, "10s")?,
            signer_timeout: dur("signer_timeout", &raw.signer_timeout, "30s")?,
            max_backoff: dur("max_backoff", &raw.max_backoff, "60s")?,
            signer_tls: raw.signer_tls,
            batch_signing_key: raw.batch_signing_key,
            receive,
            metrics_listen,
        })
    }
}

/// Whether two listen addresses would be the same socket: the same port (not 0, which
/// picks a fresh one) on the same address, or on any address where one is unspecified.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Validates `[receive.sweep]`; `online`: a signer endpoint is configured.
fn sweep_config(s: &RawSweep, online: bool) -> Result<SweepConfig, ConfigError> {
    if !online {
        return Err(invalid(
            "receive.sweep",
            "sweeps are signed online (their requests name a deposit index, which batch \
             files do not carry): set signer",
        ));
    }
    let address = |field: &'static str, text: &str| {
        text.parse::<Address>()
            .map_err(|e| invalid(field, format!("{text:?}: {e}")))
    };
    let gas_key = address("receive.sweep.gas_key", &s.gas_key)?;
    let collection = address("receive.sweep.collection", &s.collection)?;
    if gas_key == collection {
        return Err(invalid(
            "receive.sweep.collection",
            "the collection address must not be the gas key",
        ));
    }
    let mut min_usdt_units = None;
    let mut min_trx_sun = None;
    for (asset, text) in &s.min_amount {
        let units = crate::amount::parse(text).map_err(|e| {
            invalid(
                "receive.sweep.min_amount",
                format!("{asset}: {e} ({})", e.code()),
            )
        })?;
        match crate::model::Asset::parse(asset) {
            Some(crate::model::Asset::Usdt) => min_usdt_units = Some(units),
            Some(crate::model::Asset::Trx) => min_trx_sun = Some(units),
            None => {
                return Err(invalid(
                    "receive.sweep.min_amount",
                    format!("{asset:?} is not an asset (USDT, TRX)"),
                ))
            }
        }
    }
    if min_usdt_units.is_none() && min_trx_sun.is_none() {
        return Err(invalid(
            "receive.sweep.min_amount",
            "name at least one asset to sweep, e.g. { USDT = \"10\" }",
        ));
    }
    let energy_margin_percent = s.energy_margin_percent.unwrap_or(0);
    if energy_margin_percent > crate::sweep::MAX_MARGIN_PERCENT {
        return Err(invalid(
            "receive.sweep.energy_margin_percent",
            format!("must be 0..={}", crate::sweep::MAX_MARGIN_PERCENT),
        ));
    }
    Ok(SweepConfig {
        gas_key,
        collection,
        min_usdt_units,
        min_trx_sun,
        energy_margin_percent,
    })
}

/// Whether a TCP signer endpoint (`host:port`, `http://host:port`) is on this host.
fn loopback_endpoint(endpoint: &str) -> bool {
    let hostport = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    match hostport.parse::<SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => hostport
            .rsplit_once(':')
            .is_some_and(|(h, _)| h == "localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

    fn base(extra: &str) -> String {
        format!("network = \"nile\"\nkey = \"{KEY}\"\ndatabase = \"/tmp/x.redb\"\n{extra}")
    }

    #[test]
    fn presets() {
        let c = Config::parse(&base("")).unwrap();
        assert_eq!(c.node_url, "https://nile.trongrid.io");
        assert_eq!(
            c.usdt_contract.to_base58(),
            "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
        );
        assert_eq!(c.fee_limit_sun, 30_000_000);
        assert_eq!(c.expiration, Duration::from_secs(600));
        let m = Config::parse(&base("").replace("nile", "mainnet")).unwrap();
        assert_eq!(m.node_url, "https://api.trongrid.io");
        assert_eq!(
            m.usdt_contract.to_base58(),
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
        );
        let o = Config::parse(&base("node_url = \"http://127.0.0.1:9/\"")).unwrap();
        assert_eq!(o.node_url, "http://127.0.0.1:9");
    }

    #[test]
    fn a_signer_off_this_host_needs_mutual_tls() {
        let tls = "[signer_tls]\nca = \"ca.pem\"\ncert = \"b.pem\"\nkey = \"b.key\"\n";
        for far in ["10.0.0.5:50051", "http://signer.example:50051"] {
            let e = Config::parse(&base(&format!("signer = \"{far}\"\n"))).unwrap_err();
            assert!(e.to_string().contains("mutual TLS"), "{e}");
            let ok = Config::parse(&base(&format!("signer = \"{far}\"\n{tls}"))).unwrap();
            assert_eq!(
                ok.signer_tls.map(|t| t.server_name().to_owned()).as_deref(),
                Some("localhost")
            );
        }
        for near in ["127.0.0.1:50051", "localhost:50051", "unix:/run/s.sock"] {
            assert!(
                Config::parse(&base(&format!("signer = \"{near}\"\n"))).is_ok(),
                "{near}"
            );
        }
        let e = Config::parse(&base(&format!("signer = \"unix:/run/s.sock\"\n{tls}"))).unwrap_err();
        assert!(e.to_string().contains("Unix socket"), "{e}");
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_never_the_api_socket() {
        assert_eq!(Config::parse(&base("")).unwrap().metrics_listen, None);
        let c = Config::parse(&base(
            "listen = \"127.0.0.1:8080\"\n[metrics]\nlisten = \"127.0.0.1:9464\"\n",
        ))
        .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        for (api, metrics) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "[::]:8080"),
        ] {
            let e = Config::parse(&base(&format!(
                "listen = \"{api}\"\n[metrics]\nlisten = \"{metrics}\"\n"
            )))
            .unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{api} {metrics}");
            assert!(e.to_string().contains("metrics.listen"), "{e}");
            assert!(e.to_string().contains("shares its port"), "{e}");
        }
        // The default API address counts too.
        let e = Config::parse(&base("[metrics]\nlisten = \"127.0.0.1:8080\"\n")).unwrap_err();
        assert_eq!(e.code(), "config_invalid");
        // Same port on two specific addresses is two sockets; port 0 picks a fresh one.
        for (api, metrics) in [
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            assert!(
                Config::parse(&base(&format!(
                    "listen = \"{api}\"\n[metrics]\nlisten = \"{metrics}\"\n"
                )))
                .is_ok(),
                "{api} {metrics}"
            );
        }
        let e = Config::parse(&base(
            "[metrics]\nlisten = \"127.0.0.1:1\"\npath = \"/x\"\n",
        ))
        .unwrap_err();
        assert_eq!(e.code(), "config_syntax");
    }

    #[test]
    fn api_key_file_defaults_beside_the_database() {
        let c = Config::parse(&base("")).unwrap();
        assert_eq!(c.api_keys, PathBuf::from("/tmp/x.redb.api-keys.json"));
        let o = Config::parse(&base("api_keys = \"/etc/b/keys.json\"")).unwrap();
        assert_eq!(o.api_keys, PathBuf::from("/etc/b/keys.json"));
    }

    /// The published BIP-39 test seed's account key, and its xprv.
    fn account_keys() -> (String, String) {
        use bip32::{DerivationPath, Prefix, XPrv};
        let seed = hex::decode(
            "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
             9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4",
        )
        .unwrap();
        let path: DerivationPath = "m/44'/195'/0'".parse().unwrap();
        let x = XPrv::derive_from_path(seed, &path).unwrap();
        (
            x.public_key().to_string(Prefix::XPUB),
            x.to_string(Prefix::XPRV).to_string(),
        )
    }

    #[test]
    fn the_receive_section() {
        let (xpub, xprv) = account_keys();
        let c = Config::parse(&base(&format!("[receive]\nxpub = \"{xpub}\"\n"))).unwrap();
        let r = c.receive.unwrap();
        assert_eq!(r.tolerance_units, 0);
        assert_eq!(r.default_expiry, Duration::from_secs(3600));
        let c = Config::parse(&base(&format!(
            "[receive]\nxpub = \"{xpub}\"\ninvoice_tolerance = \"0.01\"\ninvoice_expiry = \"2h\"\n"
        )))
        .unwrap();
        let r = c.receive.unwrap();
        assert_eq!(
            (r.tolerance_units, r.default_expiry),
            (10_000, Duration::from_secs(7200))
        );
        assert!(Config::parse(&base("")).unwrap().receive.is_none());

        let refused = |extra: &str, field: &str| {
            let e = Config::parse(&base(&format!("[receive]\n{extra}"))).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{extra}");
            assert!(e.to_string().contains(field), "{extra}: {e}");
            e.to_string()
        };
        let msg = refused(&format!("xpub = \"{xprv}\"\n"), "receive.xpub");
        assert!(
            msg.contains("xpub_is_private") && !msg.contains(&xprv[4..20]),
            "{msg}"
        );
        refused("xpub = \"xpub123\"\n", "receive.xpub");
        for bad in ["\"-1\"", "\"0.0000001\"", "\"x\""] {
            refused(
                &format!("xpub = \"{xpub}\"\ninvoice_tolerance = {bad}\n"),
                "receive.invoice_tolerance",
            );
        }
        for bad in ["30s", "31d", "soon"] {
            refused(
                &format!("xpub = \"{xpub}\"\ninvoice_expiry = \"{bad}\"\n"),
                "receive.invoice_expiry",
            );
        }
        let e = Config::parse(&base(&format!("[receive]\nxpub = \"{xpub}\"\nstart = 1\n")))
            .unwrap_err();
        assert_eq!(e.code(), "config_syntax");
    }

    #[test]
    fn webhook_endpoints() {
        let (xpub, _) = account_keys();
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("hook.secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let one = format!("{{ file = \"{}\" }}", secret.display());
        let hook = |name: &str, url: &str, secrets: &str| {
            format!(
                "[receive]\nxpub = \"{xpub}\"\n[[receive.webhooks]]\nname = \"{name}\"\n\
                 tenant = \"shop\"\nurl = \"{url}\"\nsecrets = [{secrets}]\n"
            )
        };
        let c = Config::parse(&base(&hook("h1", "https://m.example/h", &one))).unwrap();
        let r = c.receive.unwrap();
        assert_eq!(r.webhooks.len(), 1);
        assert_eq!(r.webhooks[0].secrets[0].expose(), "s3cret");
        assert_eq!(r.webhook_min_backoff, Duration::from_secs(5));
        assert_eq!(r.webhook_give_up_after, Duration::from_secs(3 * 86_400));
        assert!(
            !format!("{:?}", r.webhooks).contains("s3cret"),
            "secrets stay out of Debug"
        );
        let refused = |text: String, field: &str| {
            let e = Config::parse(&base(&text)).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{text}");
            assert!(e.to_string().contains(field), "{text}: {e}");
            e.to_string()
        };
        refused(
            hook("bad name", "https://m.example/h", &one),
            "receive.webhooks.name",
        );
        refused(
            hook("h1", "ftp://m.example/h", &one),
            "receive.webhooks.url",
        );
        refused(
            hook("h1", "https://m.example/h", ""),
            "receive.webhooks.secrets",
        );
        refused(
            hook("h1", "https://m.example/h", &format!("{one}, {one}, {one}")),
            "receive.webhooks.secrets",
        );
        let msg = refused(
            hook(
                "h1",
                "https://m.example/h",
                "{ env = \"TRON_BC_TEST_NO_SUCH_HOOK\" }",
            ),
            "receive.webhooks.secrets",
        );
        assert!(msg.contains("secret_env_missing"), "{msg}");
        let twice = format!(
            "{}[[receive.webhooks]]\nname = \"h1\"\ntenant = \"t\"\nurl = \"https://x\"\nsecrets = [{one}]\n",
            hook("h1", "https://m.example/h", &one)
        );
        let msg = refused(twice, "receive.webhooks.name");
        assert!(msg.contains("appears twice"), "{msg}");
        refused(
            format!(
                "[receive]\nxpub = \"{xpub}\"\nwebhook_min_backoff = \"10s\"\nwebhook_max_backoff = \"1s\"\n"
            ),
            "receive.webhook_max_backoff",
        );
    }

    #[test]
    fn the_sweep_section() {
        let (xpub, _) = account_keys();
        const GAS: &str = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK";
        const COLLECT: &str = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH";
        let section = |signer: bool, body: &str| {
            let signer = if signer {
                "signer = \"unix:/run/s.sock\"\n"
            } else {
                ""
            };
            base(&format!(
                "{signer}[receive]\nxpub = \"{xpub}\"\n[receive.sweep]\n{body}"
            ))
        };
        let good = format!(
            "gas_key = \"{GAS}\"\ncollection = \"{COLLECT}\"\nmin_amount = {{ USDT = \"10\" }}\n"
        );
        let c = Config::parse(&section(true, &good)).unwrap();
        let s = c.receive.unwrap().sweep.unwrap();
        assert_eq!(s.min_usdt_units, Some(10_000_000));
        assert_eq!(s.min_units(crate::model::Asset::Trx), None);
        assert_eq!(s.energy_margin_percent, 0);
        assert_eq!(s.collection.to_base58(), COLLECT);
        let both = format!(
            "gas_key = \"{GAS}\"\ncollection = \"{COLLECT}\"\nmin_amount = {{ USDT = \"1\", TRX = \"5.5\" }}\nenergy_margin_percent = 20\n"
        );
        let s = Config::parse(&section(true, &both))
            .unwrap()
            .receive
            .unwrap()
            .sweep
            .unwrap();
        assert_eq!(
            (s.min_trx_sun, s.energy_margin_percent),
            (Some(5_500_000), 20)
        );

        let refused = |text: String, field: &str| {
            let e = Config::parse(&text).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{text}");
            assert!(e.to_string().contains(field), "{text}: {e}");
            e.to_string()
        };
        let msg = refused(section(false, &good), "receive.sweep");
        assert!(msg.contains("set signer"), "{msg}");
        refused(
            section(true, &good.replace(GAS, "Tnope")),
            "receive.sweep.gas_key",
        );
        refused(
            section(true, &good.replace(COLLECT, "Tnope")),
            "receive.sweep.collection",
        );
        refused(
            section(true, &good.replace(COLLECT, GAS)),
            "receive.sweep.collection",
        );
        for bad in [
            "{}",
            "{ USDT = \"0\" }",
            "{ USDT = \"x\" }",
            "{ EUR = \"1\" }",
            "{ USDT = \"0.0000001\" }",
        ] {
            refused(
                section(
                    true,
                    &format!(
                        "gas_key = \"{GAS}\"\ncollection = \"{COLLECT}\"\nmin_amount = {bad}\n"
                    ),
                ),
                "receive.sweep.min_amount",
            );
        }
        refused(
            section(true, &format!("{good}energy_margin_percent = 101\n")),
            "receive.sweep.energy_margin_percent",
        );
        let e = Config::parse(&section(true, &format!("{good}surprise = 1\n"))).unwrap_err();
        assert_eq!(e.code(), "config_syntax");
    }

    #[test]
    fn shasta_needs_usdt_override() {
        let s = base("").replace("nile", "shasta");
        let e = Config::parse(&s).unwrap_err();
        assert!(e.to_string().contains("usdt_contract"), "{e}");
        let ok = format!("{s}usdt_contract = \"TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf\"\n");
        assert_eq!(
            Config::parse(&ok).unwrap().node_url,
            "https://api.shasta.trongrid.io"
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            ("fee_limit = 0", "fee_limit"),
            ("fee_limit = 15001", "fee_limit"),
            ("expiration = \"25h\"", "expiration"),
            ("expiration = \"10s\"", "expiration"),
            ("batch_expiration = \"2d\"", "batch_expiration"),
            ("poll_interval = \"0s\"", "poll_interval"),
            ("node_url = \"ftp://x\"", "node_url"),
            ("usdt_contract = \"Tnope\"", "usdt_contract"),
            ("signer = \" \"", "signer"),
        ];
        for (extra, field) in cases {
            let e = Config::parse(&base(extra)).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{extra}");
            assert!(e.to_string().contains(field), "{extra}: {e}");
        }
        let e = Config::parse(&base("surprise = 1")).unwrap_err();
        assert_eq!(e.code(), "config_syntax");
        let e = Config::parse(&base("").replace(KEY, "Tbad")).unwrap_err();
        assert!(e.to_string().contains("key"), "{e}");
        let e = Config::parse(&base("node_api_key = { env = \"TRON_BC_TEST_NOPE\" }")).unwrap_err();
        assert_eq!(e.code(), "secret_env_missing");
    }
}
