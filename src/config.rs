//! The service configuration file (TOML).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use tron_proto::duration::Rules;

#[cfg(feature = "pkcs11")]
use crate::keys::pkcs11::Pkcs11Config;
use crate::secret_source::SecretSource;

/// Where the gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    /// `host:port` for TCP, `unix:/path/to.sock` for a Unix socket.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|e| format!("{s:?} is neither host:port nor unix:/path ({e})"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who may connect to the Unix socket: its mode and group, set explicitly at start, never
/// left to the umask. Until callers are named in the policy, the socket's permissions are
/// the gate, so others may never have access.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "UnixSocketRepr")]
pub struct UnixSocketConfig {
    /// Permission bits, `0600` (owner only) unless configured.
    pub mode: u32,
    /// A group name (from /etc/group) or a numeric gid; `None` keeps the signer's own group.
    pub group: Option<String>,
}

impl Default for UnixSocketConfig {
    fn default() -> Self {
        UnixSocketConfig {
            mode: 0o600,
            group: None,
        }
    }
}

/// `[unix_socket]` as written: `mode = "0660"`, `group = "tron-broadcaster"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnixSocketRepr {
    mode: Option<String>,
    group: Option<String>,
}

impl TryFrom<UnixSocketRepr> for UnixSocketConfig {
    type Error = String;

    fn try_from(r: UnixSocketRepr) -> Result<Self, String> {
        let mode = match r.mode {
            None => 0o600,
            Some(text) => {
                let mode = u32::from_str_radix(&text, 8)
                    .ok()
                    .filter(|m| *m <= 0o777 && text.len() == 4 && text.starts_with('0'))
                    .ok_or_else(|| {
                        format!("unix_socket.mode {text:?} is not four octal digits like \"0660\"")
                    })?;
                if mode & 0o007 != 0 {
                    return Err(format!(
                        "unix_socket.mode {text:?} gives others access; the socket is the gate \
                         to signing: use a group (\"0660\" with unix_socket.group)"
                    ));
                }
                mode
            }
        };
        if r.group.as_deref() == Some("") {
            return Err("unix_socket.group is empty".into());
        }
        Ok(UnixSocketConfig {
            mode,
            group: r.group,
        })
    }
}

/// The encrypted keystore and how to get its passphrase.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreConfig {
    pub path: PathBuf,
    pub passphrase: SecretSource,
}

/// The `[pkcs11]` section: the token and keys ([`Pkcs11Config`]) plus where the user PIN
/// comes from. Kept apart from `Pkcs11Config` so the backend never sees a config format.
#[cfg(feature = "pkcs11")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Section {
    pub token: Pkcs11Config,
    pub pin: SecretSource,
}

/// In a build without the `pkcs11` feature no `[pkcs11]` section can exist: reading one
/// fails with [`NO_PKCS11`], so a config meant for an HSM never starts without its keys.
#[cfg(not(feature = "pkcs11"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkcs11Section {}

/// Why a `[pkcs11]` section is refused by a build without PKCS#11 support.
#[cfg(not(feature = "pkcs11"))]
pub const NO_PKCS11: &str =
    "[pkcs11]: this tron-signer was built without PKCS#11 support (the `pkcs11` feature)";

#[cfg(not(feature = "pkcs11"))]
impl<'de> Deserialize<'de> for Pkcs11Section {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        serde::de::IgnoredAny::deserialize(d)?;
        Err(D::Error::custom(NO_PKCS11))
    }
}

#[cfg(feature = "pkcs11")]
impl<'de> Deserialize<'de> for Pkcs11Section {
    /// `pin` is taken out and the rest must be a valid `Pkcs11Config` (unknown keys refused).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let pin = table
            .remove("pin")
            .ok_or_else(|| D::Error::missing_field("pin"))?;
        let pin = SecretSource::deserialize(pin)
            .map_err(|e| D::Error::custom(format!("pin: {}", e.message())))?;
        let token = Pkcs11Config::deserialize(toml::Value::Table(table))
            .map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(Pkcs11Section { token, pin })
    }
}

/// `tron-signer serve --config FILE`. At least one key source (`[keystore]`, `[pkcs11]`)
/// is required; both may be used at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    /// Ledger and audit log live here.
    pub data_dir: PathBuf,
    /// The policy file; re-read on SIGHUP.
    pub policy: PathBuf,
    /// Mode and group of the Unix socket (when `listen` is one).
    #[serde(default)]
    pub unix_socket: UnixSocketConfig,
    #[serde(default)]
    pub keystore: Option<KeystoreConfig>,
    #[serde(default)]
    pub pkcs11: Option<Pkcs11Section>,
    /// Audit bytes each caller may cause (`audit_budget_exceeded`); the defaults when absent.
    #[serde(default)]
    pub audit_budget: Option<AuditBudgetConfig>,
    /// How far the clock may move between signatures before signing stops (`clock_jump`).
    #[serde(default)]
    pub clock: ClockConfig,
    /// Limits on the connections the server holds; the defaults when absent.
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// Mutual TLS on a TCP listener. Required for TCP, unless `insecure_plaintext`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Plaintext gRPC on TCP, accepted only for a loopback address and only when set to true
    /// in so many words: anything that can reach the port could then ask for signatures.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// `[policy_admins]`: when present, a policy goes into force only with a quorum of these
    /// administrators' signatures over its exact bytes (see `crate::governance`).
    #[serde(default)]
    pub policy_admins: Option<PolicyAdmins>,
    /// `[metrics]`: the opt-in Prometheus listener, on its own address.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// `[ledger]`: where signatures and the audit chain are recorded; the embedded file in
    /// `data_dir` when absent.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// The file this config was loaded from (SIGHUP re-reads its `[tls]` section); `None`
    /// for a config built in code.
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

/// The policy administrators, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PolicyAdminsRepr")]
pub struct PolicyAdmins(pub crate::governance::AdminSet);

/// `[policy_admins]` as written: `threshold = 2` and
/// `admins = [{ name = "alice", key = "ssh-ed25519 AAAA… alice" }, …]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyAdminsRepr {
    threshold: usize,
    admins: Vec<AdminRepr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminRepr {
    name: String,
    key: String,
}

impl TryFrom<PolicyAdminsRepr> for PolicyAdmins {
    type Error = String;

    fn try_from(r: PolicyAdminsRepr) -> Result<Self, String> {
        let entries: Vec<(String, String)> =
            r.admins.into_iter().map(|a| (a.name, a.key)).collect();
        crate::governance::AdminSet::new(&entries, r.threshold)
            .map(PolicyAdmins)
            .map_err(|e| format!("policy_admins: {e}"))
    }
}

/// `[tls]`: the TCP listener speaks TLS 1.3 and requires a client certificate, trusted
/// either through a CA bundle or by pinning each client's public key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, SEC1 or PKCS#1), unencrypted; readable by its owner
    /// only, like the keystore.
    pub key: PathBuf,
    /// Client trust, either: the CA bundle (PEM) whose certificates clients must chain to ...
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// ... or the SHA-256 of each accepted client's SubjectPublicKeyInfo, 64 hex digits
    /// (`openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`).
    #[serde(default)]
    pub client_pins: Vec<String>,
}

/// `[clock]`: the signer records the latest time it signed at and refuses to sign while its
/// clock is behind that by more than the policy's clock skew, or ahead of it by more than
/// `max_advance` (`clock_jump`). A signer that legitimately stood idle longer than
/// `max_advance` needs it raised for its first signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ClockRepr")]
pub struct ClockConfig {
    /// Milliseconds; [`ClockConfig::DEFAULT_MAX_ADVANCE_MS`] unless configured.
    pub max_advance_ms: u64,
}

impl ClockConfig {
    /// 31 days: the longest window a policy may use. A clock further ahead would have made
    /// every earlier signature fall out of every window.
    pub const DEFAULT_MAX_ADVANCE_MS: u64 = 31 * 24 * 3600 * 1000;
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            max_advance_ms: Self::DEFAULT_MAX_ADVANCE_MS,
        }
    }
}

/// `[connections]`: how many connections the server holds and for how long, so that no
/// client can take all of them (issue 11, item 4). Every field is optional; the defaults
/// are the `DEFAULT_*` constants below, and why each is what it is is said there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConnectionsRepr")]
pub struct ConnectionsConfig {
    /// Connections held at once, all peers together.
    pub max: usize,
    /// Connections held at once from one peer: a TCP peer's IP address, a Unix peer's uid.
    pub max_per_peer: usize,
    /// Time a new connection has to send the whole HTTP/2 client preface.
    pub handshake_timeout: Duration,
    /// A connection with no open stream for this long is closed.
    pub idle_timeout: Duration,
    /// The server pings each connection this often (HTTP/2 PING) ...
    pub keepalive_interval: Duration,
    /// ... and closes it when a ping is not answered within this.
    pub keepalive_timeout: Duration,
    /// Streams (requests) one connection may have open at once, advertised to the client
    /// as SETTINGS_MAX_CONCURRENT_STREAMS; a stream over it is refused (REFUSED_STREAM).
    pub max_streams_per_connection: u32,
}

/// 512 connections in all: many times what the signer's callers open (a broadcaster holds
/// one HTTP/2 connection, the load generator 4 to 8), and with the signer's own files it
/// stays under 1024, the smallest usual open-file limit (checked at start).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// 32 per peer: a sixteenth of the total, so one client, however many sockets it opens,
/// leaves the rest to the others.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 32;
/// 10 s for the 24-byte preface and the first SETTINGS frame, which a client sends at once.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// 5 min without a request: a client that pauses longer reconnects (a gRPC channel does so
/// by itself on its next call), a forgotten or hostile connection is gone.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A ping a minute finds a vanished peer (a half-open TCP connection) while a stream of it
/// is still open, where the idle timeout does not apply.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// 20 s for the ping's answer (also the HTTP/2 library's own default).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// 100 streams per connection, the floor RFC 9113 (section 5.1.2) recommends: the load
/// generator's 256 requests in flight over 8 connections are 32 each.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 100;

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max: DEFAULT_MAX_CONNECTIONS,
            max_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
        }
    }
}

/// `[clock]` as written: `max_advance = "31d"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRepr {
    max_advance: Option<String>,
}

impl TryFrom<ClockRepr> for ClockConfig {
    type Error = String;

    fn try_from(r: ClockRepr) -> Result<Self, String> {
        let max_advance_ms = match r.max_advance {
            None => Self::DEFAULT_MAX_ADVANCE_MS,
            Some(text) => tron_proto::duration::parse(&text, tron_proto::duration::Rules::CONFIG)
                .map_err(|e| format!("clock.max_advance {text:?}: {e}"))?,
        };
        if max_advance_ms == 0 {
            return Err("clock.max_advance must be longer than zero".into());
        }
        Ok(ClockConfig { max_advance_ms })
    }
}

/// `[connections]` as written: counts as integers, durations as strings ("10s", "5m").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsRepr {
    max: Option<u64>,
    max_per_peer: Option<u64>,
    handshake_timeout: Option<String>,
    idle_timeout: Option<String>,
    keepalive_interval: Option<String>,
    keepalive_timeout: Option<String>,
    max_streams_per_connection: Option<u64>,
}

impl TryFrom<ConnectionsRepr> for ConnectionsConfig {
    type Error = String;

    fn try_from(r: ConnectionsRepr) -> Result<Self, String> {
        let d = ConnectionsConfig::default();
        let count = |name: &str, v: Option<u64>, default: u64| -> Result<u64, String> {
            match v {
                None => Ok(default),
                Some(0) => Err(format!("connections.{name} must be at least 1")),
                Some(n) => Ok(n),
            }
        };
        // Durations use the config grammar of `tron_proto::duration` (so "500ms" is
        // accepted); zero is refused, since a zero timeout would close every connection.
        let duration = |name: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(text) => match tron_proto::duration::parse(&text, Rules::CONFIG) {
                Ok(0) => Err(format!(
                    "connections.{name} {text:?} must be greater than zero"
                )),
                Ok(ms) => Ok(Duration::from_millis(ms)),
                Err(e) => Err(format!("connections.{name} {text:?}: {e}")),
            },
        };
        let too_big = |name: &str| format!("connections.{name} is too large");
        let max =
            usize::try_from(count("max", r.max, d.max as u64)?).map_err(|_| too_big("max"))?;
        let max_per_peer = usize::try_from(count(
            "max_per_peer",
            r.max_per_peer,
            d.max_per_peer as u64,
        )?)
        .map_err(|_| too_big("max_per_peer"))?;
        if max_per_peer > max {
            return Err(format!(
                "connections.max_per_peer ({max_per_peer}) is above connections.max ({max})"
            ));
        }
        let streams = count(
            "max_streams_per_connection",
            r.max_streams_per_connection,
            u64::from(d.max_streams_per_connection),
        )?;
        Ok(ConnectionsConfig {
            max,
            max_per_peer,
            handshake_timeout: duration(
                "handshake_timeout",
                r.handshake_timeout,
                d.handshake_timeout,
            )?,
            idle_timeout: duration("idle_timeout", r.idle_timeout, d.idle_timeout)?,
            keepalive_interval: duration(
                "keepalive_interval",
                r.keepalive_interval,
                d.keepalive_interval,
            )?,
            keepalive_timeout: duration(
                "keepalive_timeout",
                r.keepalive_timeout,
                d.keepalive_timeout,
            )?,
            max_streams_per_connection: u32::try_from(streams)
                .map_err(|_| too_big("max_streams_per_connection"))?,
        })
    }
}

/// `[ledger]`: the embedded redb ledger (the default, one signer) or a PostgreSQL database
/// shared by several signers serving at once (docs/HA.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    pub postgres: Option<PostgresLedgerConfig>,
}

/// `postgres = { url = { env = "TRON_SIGNER_PG_URL" }, pool_size = 16 }`. The connection
/// string may hold a password, so it comes from a secret source, never the config itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresLedgerConfig {
    pub url: SecretSource,
    /// Connections for requests (the writer has its own); a request holds one while its
    /// key's turn lasts.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    16
}

/// `[metrics]`: where `GET /metrics` is served (plain HTTP, its own TCP address; never the
/// signing listener).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: std::net::SocketAddr,
}

/// `[audit_budget]`: token buckets per caller (a Unix uid or a TCP peer address), one of
/// audit record bytes and one of records that sign nothing (Evaluate answers, refusals,
/// replays). Each value left out keeps the service's default; values below 1 count as 1.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditBudgetConfig {
    /// Average rate, in bytes per second.
    pub bytes_per_second: Option<u64>,
    /// Most bytes at once.
    pub burst_bytes: Option<u64>,
    /// Average rate of records that sign nothing, per second.
    pub unsigned_per_second: Option<u64>,
    /// Most such records at once.
    pub unsigned_burst: Option<u64>,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config {path} names no keys: add a [keystore] or a [pkcs11] section (or both)")]
    NoKeySource { path: PathBuf },
    /// TCP without `[tls]`, on an address that is not loopback or without
    /// `insecure_plaintext = true`.
    #[error("config {path}: {message}")]
    PlaintextTcp { path: PathBuf, message: String },
}

impl ConfigError {
    /// Stable code, for scripts that start the service.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_unreadable",
            ConfigError::Invalid { .. } => "config_invalid",
            ConfigError::NoKeySource { .. } => "config_no_key_source",
            ConfigError::PlaintextTcp { .. } => "config_plaintext_tcp",
        }
    }
}

impl Config {
    /// Reads a config; relative paths inside it are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks config `text` as if it had been read from `path` (relative paths are taken
    /// from its directory; nothing is read from disk): the whole of [`Config::load`] after
    /// the read, so the parsing can be tested and fuzzed without files.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: describe(text, &e),
        })?;
        if cfg.keystore.is_none() && cfg.pkcs11.is_none() {
            return Err(ConfigError::NoKeySource {
                path: path.to_owned(),
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rel(&mut cfg.data_dir);
        rel(&mut cfg.policy);
        if let Listen::Unix(p) = &mut cfg.listen {
            rel(p);
        }
        if let Some(tls) = &mut cfg.tls {
            rel(&mut tls.cert);
            rel(&mut tls.key);
            if let Some(ca) = &mut tls.client_ca {
                rel(ca);
            }
        }
        cfg.check_transport(path)?;
        if let (Some(m), Listen::Tcp(signing)) = (&cfg.metrics, &cfg.listen) {
            if m.listen.port() == signing.port() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "[metrics] listen {} shares its port with the signing listener {signing}; metrics are served on their own port only",
                        m.listen
                    ),
                });
            }
        }
        cfg.source_path = Some(path.to_owned());
        if let Some(SecretSource::File(p)) = cfg.ledger.postgres.as_mut().map(|p| &mut p.url) {
            rel(p);
        }
        if let Some(ks) = &mut cfg.keystore {
            rel(&mut ks.path);
            if let SecretSource::File(p) = &mut ks.passphrase {
                rel(p);
            }
        }
        // The module path is left as written: a bare name is for the dynamic loader to find.
        #[cfg(feature = "pkcs11")]
        if let Some(SecretSource::File(p)) = cfg.pkcs11.as_mut().map(|p| &mut p.pin) {
            rel(p);
        }
        Ok(cfg)
    }
}

impl Config {
    /// The listener and its transport security agree: TLS only on TCP, with exactly one kind
    /// of client trust; plaintext TCP only on loopback with `insecure_plaintext = true`.
    /// Checked when the file is loaded and again when the server starts.
    pub fn check_transport(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            message: message.to_owned(),
        };
        let plaintext = |message: String| ConfigError::PlaintextTcp {
            path: path.to_owned(),
            message,
        };
        match (&self.listen, &self.tls) {
            (Listen::Unix(_), Some(_)) => Err(invalid(
                "[tls] applies to a TCP listener; the Unix socket stays plaintext, its callers \
                 known by their uid",
            )),
            (Listen::Tcp(_), Some(tls))
                if tls.client_ca.is_some() != tls.client_pins.is_empty() =>
            {
                Err(invalid(
                    "[tls] needs exactly one kind of client trust: client_ca (a CA bundle) or \
                     client_pins (SHA-256 of clients' public keys)",
                ))
            }
            (Listen::Tcp(_), Some(_)) if self.insecure_plaintext => Err(invalid(
                "insecure_plaintext = true and [tls] contradict each other",
            )),
            (Listen::Tcp(addr), None) if !addr.ip().is_loopback() => Err(plaintext(format!(
                "listen = \"{addr}\" is TCP without [tls]; plaintext is accepted only on a \
                 loopback address with insecure_plaintext = true. Configure [tls] (cert, key, \
                 and client_ca or client_pins)"
            ))),
            (Listen::Tcp(addr), None) if !self.insecure_plaintext => Err(plaintext(format!(
                "listen = \"{addr}\" is plaintext TCP: configure [tls] (cert, key, and \
                 client_ca or client_pins), or, on this loopback address only, set \
                 insecure_plaintext = true"
            ))),
            _ => Ok(()),
        }
    }
}

/// The parser's message and line, without the excerpt of the file that `toml` would quote:
/// a secret pasted into the config by mistake must not reach the logs.
fn describe(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("line {line}: {}", e.message().trim_end())
        }
        None => e.message().trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            "127.0.0.1:50051".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:50051".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/s.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/s.sock".into()))
        );
        assert!("unix:".parse::<Listen>().is_err());
        assert!("localhost".parse::<Listen>().is_err());
    }

    #[test]
    fn loads_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        std::fs::write(
            &path,
            r#"
listen = "unix:signer.sock"
data_dir = "data"
policy = "/etc/tron-signer/policy.toml"
[keystore]
path = "keys.tks"
passphrase = { env = "TRON_SIGNER_PASSPHRASE" }
"#,
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.listen, Listen::Unix(dir.path().join("signer.sock")));
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.policy, PathBuf::from("/etc/tron-signer/policy.toml"));
        assert_eq!(c.keystore.unwrap().path, dir.path().join("keys.tks"));
        assert!(c.pkcs11.is_none());
    }

    /// `[unix_socket]`: owner-only by default; a group mode is allowed; anything that gives
    /// others access, or is not written as four octal digits, is refused with its reason.
    #[test]
    fn unix_socket_mode_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        let load = |section: &str| {
            std::fs::write(
                &path,
                format!(
                    "listen = \"unix:s.sock\"\ndata_dir = \"d\"\npolicy = \"p.toml\"\n{section}\n\
                     [keystore]\npath = \"k.tks\"\npassphrase = \"prompt\"\n"
                ),
            )
            .unwrap();
            Config::load(&path)
        };
        assert_eq!(load("").unwrap().unix_socket, UnixSocketConfig::default());
        assert_eq!(load("").unwrap().unix_socket.mode, 0o600);
        let c = load("[unix_socket]\nmode = \"0660\"\ngroup = \"tron-broadcaster\"").unwrap();
        assert_eq!(
            c.unix_socket,
            UnixSocketConfig {
                mode: 0o660,
                group: Some("tron-broadcaster".into())
            }
        );
        for (bad, why) in [
            ("mode = \"0666\"", "gives others access"),
            ("mode = \"0602\"", "gives others access"),
            ("mode = \"660\"", "four octal digits"),
            ("mode = \"0680\"", "four octal digits"),
            ("mode = \"4660\"", "four octal digits"),
            ("group = \"\"", "group is empty"),
            ("owner = \"root\"", "unknown field"),
        ] {
            let e = load(&format!("[unix_socket]\n{bad}")).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    /// `[connections]`: the defaults when absent, any field on its own, and every value
    /// that cannot be a limit refused with its reason.
    #[test]
    fn connections_defaults_fields_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        let load = |section: &str| {
            std::fs::write(
                &path,
                format!(
                    "listen = \"127.0.0.1:1\"\ninsecure_plaintext = true\ndata_dir = \"d\"\npolicy = \"p.toml\"\n{section}\n\
                     [keystore]\npath = \"k.tks\"\npassphrase = \"prompt\"\n"
                ),
            )
            .unwrap();
            Config::load(&path)
        };
        let d = ConnectionsConfig::default();
        assert_eq!(load("").unwrap().connections, d);
        assert_eq!(load("[connections]").unwrap().connections, d);
        assert_eq!(d.max, 512);
        assert_eq!(d.max_per_peer, 32);
        assert_eq!(d.idle_timeout, Duration::from_secs(300));
        assert_eq!(d.max_streams_per_connection, 100);
        let c = load(
            "[connections]\nmax = 8\nmax_per_peer = 2\nhandshake_timeout = \"500ms\"\n\
             idle_timeout = \"2s\"\nkeepalive_interval = \"1m\"\nkeepalive_timeout = \"5s\"\n\
             max_streams_per_connection = 3",
        )
        .unwrap()
        .connections;
        assert_eq!(
            c,
            ConnectionsConfig {
                max: 8,
                max_per_peer: 2,
                handshake_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(2),
                keepalive_interval: Duration::from_secs(60),
                keepalive_timeout: Duration::from_secs(5),
                max_streams_per_connection: 3,
            }
        );
        let c = load("[connections]\nidle_timeout = \"1h\"")
            .unwrap()
            .connections;
        assert_eq!(c.idle_timeout, Duration::from_secs(3600));
        assert_eq!(c.max, d.max, "the other fields keep their defaults");
        for (bad, why) in [
            ("max = 0", "connections.max must be at least 1"),
            ("max_per_peer = 0", "max_per_peer must be at least 1"),
            (
                "max = 4\nmax_per_peer = 5",
                "max_per_peer (5) is above connections.max (4)",
            ),
            ("max_streams_per_connection = 0", "at least 1"),
            ("max_streams_per_connection = 4294967296", "too large"),
            ("idle_timeout = \"0s\"", "greater than zero"),
            (
                "handshake_timeout = \"10\"",
                "expected a whole number and a unit",
            ),
            ("keepalive_interval = \"1h30m\"", "keepalive_interval"),
            ("keepalive_timeout = 20", "invalid type"),
            ("max = -1", "invalid value"),
            ("max_connections = 5", "unknown field"),
        ] {
            let e = load(&format!("[connections]\n{bad}")).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn pkcs11_section_alone_or_beside_the_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        let head = "listen = \"127.0.0.1:1\"\ninsecure_plaintext = true\ndata_dir = \"d\"\npolicy = \"p\"\n";
        let pkcs11 = r#"
[pkcs11]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "payouts"
keys = [{ label = "hot-1" }, { id = "41aa" }]
sessions = 3
pin = { file = "pin.txt" }
"#;
        std::fs::write(&path, format!("{head}{pkcs11}")).unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.keystore.is_none());
        let p = c.pkcs11.unwrap();
        assert_eq!(p.pin, SecretSource::File(dir.path().join("pin.txt")));
        assert_eq!(p.token.token_label, "payouts");
        assert_eq!(p.token.pool_size(), 3);
        assert_eq!(
            p.token.module,
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );

        let both = format!(
            "{head}[keystore]\npath = \"k\"\npassphrase = \"prompt\"\n{}",
            pkcs11.replace("{ file = \"pin.txt\" }", "{ env = \"PIN\" }")
        );
        std::fs::write(&path, both).unwrap();
        let c = Config::load(&path).unwrap();
        assert!(c.keystore.is_some());
        assert_eq!(c.pkcs11.unwrap().pin, SecretSource::Env("PIN".into()));
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn pkcs11_section_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        let head = "listen = \"127.0.0.1:1\"\ninsecure_plaintext = true\ndata_dir = \"d\"\npolicy = \"p\"\n";
        std::fs::write(&path, head).unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!(e.code(), "config_no_key_source");
        for (section, needle) in [
            // No PIN source.
            ("module = \"m\"\ntoken_label = \"t\"\nkeys = []\n", "pin"),
            // A PIN written into the config is not a source.
            (
                "module = \"m\"\ntoken_label = \"t\"\nkeys = []\npin = \"5678\"\n",
                "pin",
            ),
            // Unknown field.
            (
                "module = \"m\"\ntoken_label = \"t\"\nkeys = []\npin = \"prompt\"\nslot = 0\n",
                "slot",
            ),
            // Missing token label.
            (
                "module = \"m\"\nkeys = []\npin = \"prompt\"\n",
                "token_label",
            ),
        ] {
            std::fs::write(&path, format!("{head}[pkcs11]\n{section}")).unwrap();
            let e = Config::load(&path).unwrap_err();
            assert_eq!(e.code(), "config_invalid", "{section}");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(!e.to_string().contains("5678"), "{e}");
        }
    }

    #[cfg(not(feature = "pkcs11"))]
    #[test]
    fn pkcs11_section_refused_without_the_feature() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        let body = "listen = \"127.0.0.1:1\"\ninsecure_plaintext = true\ndata_dir = \"d\"\npolicy = \"p\"\n\
                    [pkcs11]\nmodule = \"m\"\ntoken_label = \"t\"\nkeys = []\npin = \"prompt\"\n";
        std::fs::write(&path, body).unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!(e.code(), "config_invalid");
        assert!(e.to_string().contains(NO_PKCS11), "{e}");
    }

    #[test]
    fn refuses_unknown_keys_and_bad_listen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for body in [
            "listen = \"x\"\ndata_dir=\"d\"\npolicy=\"p\"\n[keystore]\npath=\"k\"\npassphrase=\"prompt\"\n",
            "listen = \"127.0.0.1:1\"\ninsecure_plaintext = true\ndata_dir=\"d\"\npolicy=\"p\"\nextra=1\n[keystore]\npath=\"k\"\npassphrase=\"prompt\"\n",
        ] {
            std::fs::write(&path, body).unwrap();
            assert!(matches!(
                Config::load(&path),
                Err(ConfigError::Invalid { .. })
            ));
        }
        assert!(matches!(
            Config::load(&dir.path().join("missing.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
