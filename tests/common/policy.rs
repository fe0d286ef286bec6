//! Test policies written once: the shared preamble and a small builder for `[[key]]` and
//! `[[key.destination]]` sections, so each test states only its keys, limits and
//! destinations. The output is ordinary policy TOML, laid out as in `policies/`.

use std::fmt::Display;
use std::fmt::Write as _;

use super::NILE_USDT;

/// The uid the tests run as: the Unix socket recognises the test process by it.
pub fn test_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The `[[caller]]` every test policy has: this process on the Unix socket and anyone on a
/// plaintext loopback listener, with every RPC for every key. Tests of who may ask add
/// callers of their own (a caller section may sit anywhere in the file).
pub fn test_caller() -> String {
    format!(
        r#"
[[caller]]
name = "test suite"
unix_uid = {}
insecure_loopback = true
rpcs = ["Sign", "Evaluate", "ListKeys", "GetPolicy", "ReadPolicyText", "Freeze"]
all_keys = true
"#,
        test_uid()
    )
}

/// The part every test policy shares: format version, name, the Nile network, the global
/// envelope rules, the Nile USDT token and the test caller ([`test_caller`]). Callers
/// append their `[[key]]` sections.
pub fn policy_preamble(name: &str, clock_skew: &str) -> String {
    policy_preamble_for(name, clock_skew, &test_caller())
}

/// The preamble with `callers` (`[[caller]]` sections) instead of the test caller.
pub fn policy_preamble_for(name: &str, clock_skew: &str, callers: &str) -> String {
    format!(
        r#"version = 1
name = "{name}"
network = "nile"

[global]
frozen = false
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "{clock_skew}"
memo_allowed = false

[[token]]
symbol = "USDT"
contract = "{NILE_USDT}"
decimals = 6
{callers}"#
    )
}

/// A rolling-window limit: `max` of `asset` in any `window`.
struct Window {
    asset: String,
    window: String,
    max: String,
}

impl Window {
    fn inline(&self) -> String {
        format!(
            "{{ asset = \"{}\", window = \"{}\", max = \"{}\" }}",
            self.asset, self.window, self.max
        )
    }
}

fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A whole test policy: the preamble, then its keys in order.
pub struct PolicyText {
    name: String,
    clock_skew: String,
    keys: Vec<Key>,
    /// Extra `[[caller]]` sections, after the test caller.
    callers: String,
    /// Whether the test caller is included (it is unless a test of who may ask says not).
    test_caller: bool,
}

impl PolicyText {
    /// A policy named `name` with the preamble's global rules and a 60 s clock skew.
    pub fn new(name: &str) -> PolicyText {
        PolicyText {
            name: name.into(),
            clock_skew: "60s".into(),
            keys: Vec::new(),
            callers: String::new(),
            test_caller: true,
        }
    }

    /// Leaves out the test caller: only the callers added with [`PolicyText::callers`].
    pub fn without_test_caller(mut self) -> PolicyText {
        self.test_caller = false;
        self
    }

    /// Adds `[[caller]]` sections (as TOML text) besides the test caller.
    pub fn callers(mut self, sections: &str) -> PolicyText {
        self.callers.push_str(sections);
        self
    }

    pub fn clock_skew(mut self, skew: &str) -> PolicyText {
        self.clock_skew = skew.into();
        self
    }

    pub fn key(mut self, key: Key) -> PolicyText {
        self.keys.push(key);
        self
    }

    /// The TOML text; the last `[[key]]` is the file's last table header but its
    /// destinations', so appended `[[key.destination]]` sections join that key.
    pub fn text(&self) -> String {
        let mine = if self.test_caller {
            test_caller()
        } else {
            String::new()
        };
        let callers = format!("{mine}{}", self.callers);
        let mut out = policy_preamble_for(&self.name, &self.clock_skew, &callers);
        for key in &self.keys {
            key.write(&mut out);
        }
        out
    }
}

/// One `[[key]]` section.
pub struct Key {
    address: String,
    label: String,
    settings: Vec<String>,
    assets: Vec<String>,
    windows: Vec<Window>,
    destinations: Vec<Destination>,
}

impl Key {
    /// A key allowed to send `assets`, with no windows or destinations yet.
    pub fn new(address: impl Display, label: &str, assets: &[&str]) -> Key {
        Key {
            address: address.to_string(),
            label: label.into(),
            settings: Vec::new(),
            assets: assets.iter().map(|a| a.to_string()).collect(),
            windows: Vec::new(),
            destinations: Vec::new(),
        }
    }

    /// A `field = value` line of the key's own table, as written (`"frozen = true"`).
    pub fn setting(mut self, line: &str) -> Key {
        self.settings.push(line.into());
        self
    }

    pub fn window(mut self, asset: &str, window: &str, max: &str) -> Key {
        self.windows.push(Window {
            asset: asset.into(),
            window: window.into(),
            max: max.into(),
        });
        self
    }

    pub fn destination(mut self, d: Destination) -> Key {
        self.destinations.push(d);
        self
    }

    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "\n[[key]]\naddress = \"{}\"\nlabel = \"{}\"\n",
            self.address, self.label
        );
        for line in &self.settings {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "assets = {}", quoted_list(&self.assets));
        if !self.windows.is_empty() {
            out.push_str("windows = [\n");
            for w in &self.windows {
                let _ = writeln!(out, "  {},", w.inline());
            }
            out.push_str("]\n");
        }
        for d in &self.destinations {
            d.write(out);
        }
    }
}

/// One `[[key.destination]]` section of the key it is added to.
pub struct Destination {
    address: String,
    label: String,
    assets: Vec<String>,
    per_tx_max: Vec<(String, String)>,
    windows: Vec<Window>,
}

impl Destination {
    /// A destination for `assets`, with no per-transaction limits or windows yet.
    pub fn new(address: impl Display, label: &str, assets: &[&str]) -> Destination {
        Destination {
            address: address.to_string(),
            label: label.into(),
            assets: assets.iter().map(|a| a.to_string()).collect(),
            per_tx_max: Vec::new(),
            windows: Vec::new(),
        }
    }

    pub fn per_tx_max(mut self, asset: &str, max: &str) -> Destination {
        self.per_tx_max.push((asset.into(), max.into()));
        self
    }

    pub fn window(mut self, asset: &str, window: &str, max: &str) -> Destination {
        self.windows.push(Window {
            asset: asset.into(),
            window: window.into(),
            max: max.into(),
        });
        self
    }

    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "  [[key.destination]]\n  address = \"{}\"\n  label = \"{}\"\n  assets = {}\n",
            self.address,
            self.label,
            quoted_list(&self.assets)
        );
        if !self.per_tx_max.is_empty() {
            let limits: Vec<String> = self
                .per_tx_max
                .iter()
                .map(|(asset, max)| format!("{asset} = \"{max}\""))
                .collect();
            let _ = writeln!(out, "  per_tx_max = {{ {} }}", limits.join(", "));
        }
        if !self.windows.is_empty() {
            let windows: Vec<String> = self.windows.iter().map(Window::inline).collect();
            let _ = writeln!(out, "  windows = [ {} ]", windows.join(", "));
        }
    }
}

/// The smallest useful policy: `KEY1` may send up to 5 TRX a transfer, 10 TRX a day, to
/// destination `0xa1` only. For tests about everything but the policy.
pub fn one_trx_key(name: &str) -> String {
    one_trx_key_with_daily_max(name, "10")
}

/// [`one_trx_key`] with `max` TRX a day instead of 10: for tests that sign many transfers.
pub fn one_trx_key_with_daily_max(name: &str, max: &str) -> String {
    PolicyText::new(name)
        .key(
            Key::new(super::KEY1, "hot 1", &["TRX"])
                .window("TRX", "24h", max)
                .destination(
                    Destination::new(super::dest(0xa1), "exchange", &["TRX"])
                        .per_tx_max("TRX", "5"),
                ),
        )
        .text()
}
