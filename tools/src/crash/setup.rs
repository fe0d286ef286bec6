//! The data directory a crash run signs in: one soft key (a throwaway keystore with the
//! cheapest KDF, so the many restarts do not wait on argon2), a few destinations, and a
//! policy whose rolling windows are small enough that the load exhausts them again and
//! again, so "no window was exceeded" is something the run actually tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tron_proto::Address;
use tron_signer::keystore::{KdfParams, Keystore};

/// The keystore passphrase variable; the value is not a secret (a harness keystore).
pub const PASSPHRASE_VAR: &str = "TRON_SIGNER_CRASH_PASSPHRASE";
/// The harness keystore's passphrase.
pub const PASSPHRASE: &str = "crash harness passphrase (not secret)";

/// Sun per TRX.
pub const SUN: u64 = 1_000_000;
/// How many destinations the key pays.
pub const DESTINATIONS: usize = 4;
/// Largest single payout, TRX (each destination's `per_tx_max`).
pub const PER_TX_MAX_TRX: u64 = 10;
/// Transactions expire this long after they are built; a retry after a restart reuses them.
pub const TX_TTL_MS: i64 = 20_000;
/// The policy's `clock_skew`.
pub const SKEW_MS: i64 = 2_000;

/// A rolling-window limit of the policy, in base units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `None`: the key's window (every destination); `Some`: one destination's.
    pub destination: Option<Address>,
    pub length_ms: i64,
    pub max_sun: u64,
}

/// What `write` made: where things are and the limits the policy sets.
#[derive(Debug, Clone)]
pub struct Setup {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    pub key: Address,
    pub destinations: Vec<Address>,
    pub windows: Vec<Window>,
}

/// (window text, length ms, max TRX) of the key's windows. At the debug build's signing
/// rate the load reaches them within seconds; a transfer counts for its expiration plus the
/// skew plus the window (37 s and 82 s here), and then the room comes back, so the run
/// reaches them again and again.
const KEY_WINDOWS: [(&str, i64, u64); 2] = [("15s", 15_000, 1_000), ("1m", 60_000, 2_000)];
/// The window of the hot destination (the first, which gets two payouts in five), reached
/// before the key's, and that of each other destination.
const HOT_DESTINATION_WINDOW: (&str, i64, u64) = ("15s", 15_000, 150);
const DESTINATION_WINDOW: (&str, i64, u64) = ("15s", 15_000, 600);

/// The destination index of a draw of `0..=4` (see [`HOT_DESTINATION_WINDOW`]).
pub fn destination_of(draw: u64) -> usize {
    match draw {
        0 | 1 => 0,
        n => (n as usize - 1).min(DESTINATIONS - 1),
    }
}

/// Writes keys.tks, policy.toml and signer.toml (listening on `signer.sock`) into `dir`.
/// `scale` multiplies every window's max: a faster signer (a release build) needs larger
/// windows for as many signatures between refusals.
pub fn write(dir: &Path, uid: u32, scale: u64) -> Result<Setup, Box<dyn std::error::Error>> {
    let scale = scale.max(1);
    std::fs::create_dir_all(dir)?;
    let mut store = Keystore::new(KdfParams::insecure_for_tests());
    let key = store.generate("crash harness key")?;
    store.save(
        &dir.join("keys.tks"),
        &secrecy::SecretString::from(PASSPHRASE),
        true,
    )?;
    let destinations = (0..DESTINATIONS)
        .map(|i| {
            let mut raw = [0u8; 21];
            raw[0] = 0x41;
            raw[1] = 0xc7;
            raw[20] = i as u8 + 1;
            Address::from_bytes(&raw)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut windows = Vec::new();
    let mut policy = format!(
        r#"version = 1
name = "crash harness: small windows the load exhausts"
network = "nile"

[global]
max_fee_limit = "100"
max_expiration = "30s"
clock_skew = "2s"
memo_allowed = false

[[caller]]
name = "crash harness clients"
unix_uid = {uid}
rpcs = ["Sign", "Evaluate", "ListKeys", "GetPolicy"]
all_keys = true

[[key]]
address = "{key}"
label = "crash harness key"
assets = ["TRX"]
windows = [
"#
    );
    for (text, length_ms, max) in KEY_WINDOWS {
        let max = max * scale;
        writeln!(
            policy,
            "  {{ asset = \"TRX\", window = \"{text}\", max = \"{max}\" }},"
        )?;
        windows.push(Window {
            destination: None,
            length_ms,
            max_sun: max * SUN,
        });
    }
    policy.push_str("]\n");
    for (i, d) in destinations.iter().enumerate() {
        write!(
            policy,
            "\n  [[key.destination]]\n  address = \"{d}\"\n  label = \"crash destination {i}\"\n  \
             assets = [\"TRX\"]\n  per_tx_max = {{ TRX = \"{PER_TX_MAX_TRX}\" }}\n  windows = [\n"
        )?;
        let (text, length_ms, max) = if i == 0 {
            HOT_DESTINATION_WINDOW
        } else {
            DESTINATION_WINDOW
        };
        let max = max * scale;
        writeln!(
            policy,
            "    {{ asset = \"TRX\", window = \"{text}\", max = \"{max}\" }},"
        )?;
        windows.push(Window {
            destination: Some(*d),
            length_ms,
            max_sun: max * SUN,
        });
        policy.push_str("  ]\n");
    }
    std::fs::write(dir.join("policy.toml"), policy)?;
    let config = dir.join("signer.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"unix:signer.sock\"\ndata_dir = \"data\"\npolicy = \"policy.toml\"\n\
             [keystore]\npath = \"keys.tks\"\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
        ),
    )?;
    Ok(Setup {
        dir: dir.to_owned(),
        config,
        socket: dir.join("signer.sock"),
        data_dir: dir.join("data"),
        key,
        destinations,
        windows,
    })
}
