//! Large synthetic policies: a policy text with many `[[key.destination]]` sections, for the
//! policy-load benchmark, the load generator and the loader's large-allowlist tests.
//!
//! The caller writes the head of the policy (version, `[global]`, tokens, the `[[key]]`
//! section) and a [`Destinations`] describes the allowlist appended to it. Each section is
//! written as a blank line, then `[[key.destination]]` and its fields.

use std::fmt::Write as _;

use tron_proto::Address;

/// One rolling window of a destination: `{ asset, window, max }`.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub asset: &'a str,
    pub window: &'a str,
    pub max: &'a str,
}

/// A run of generated destinations, all with the same assets and limits.
#[derive(Debug, Clone)]
pub struct Destinations<'a> {
    /// How many sections to write.
    pub count: usize,
    /// Bytes 8..20 of every address body (bytes 0..8 are the index plus one, big-endian):
    /// different callers pick different tails so their address sets never meet.
    pub tail: [u8; 12],
    /// Labels are `"{label} {i}"`, `i` counting from 0.
    pub label: &'a str,
    /// Symbols in `assets`.
    pub assets: &'a [&'a str],
    /// `(symbol, amount)` pairs of `per_tx_max`.
    pub per_tx_max: &'a [(&'a str, &'a str)],
    /// Windows of each destination; none writes no `windows` line.
    pub windows: &'a [Window<'a>],
}

impl Destinations<'_> {
    /// The tail a caller sets only its last byte of.
    pub const fn tail_byte(last: u8) -> [u8; 12] {
        let mut tail = [0u8; 12];
        tail[11] = last;
        tail
    }

    /// The address of destination `i`.
    pub fn address(&self, i: usize) -> Address {
        let mut body = [0u8; 20];
        body[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        body[8..].copy_from_slice(&self.tail);
        Address::from_evm(body)
    }

    /// Every destination address, in the order written.
    pub fn addresses(&self) -> impl Iterator<Item = Address> + '_ {
        (0..self.count).map(|i| self.address(i))
    }

    /// Appends every section to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.reserve(self.count * self.section_len_estimate());
        let assets = self
            .assets
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let per_tx = self
            .per_tx_max
            .iter()
            .map(|(a, max)| format!("{a} = \"{max}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let windows = self
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{{ asset = \"{}\", window = \"{}\", max = \"{}\" }}",
                    w.asset, w.window, w.max
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        for i in 0..self.count {
            // Writing into a String cannot fail.
            let _ = write!(
                out,
                "\n[[key.destination]]\naddress = \"{}\"\nlabel = \"{} {i}\"\nassets = [{assets}]\nper_tx_max = {{ {per_tx} }}\n",
                self.address(i),
                self.label
            );
            if !self.windows.is_empty() {
                let _ = writeln!(out, "windows = [{windows}]");
            }
        }
    }

    /// `head` followed by every section.
    pub fn policy(&self, head: &str) -> String {
        let mut out = String::with_capacity(head.len() + self.count * self.section_len_estimate());
        out.push_str(head);
        self.write_to(&mut out);
        out
    }

    fn section_len_estimate(&self) -> usize {
        160 + self.label.len()
            + 16 * self.assets.len()
            + 24 * self.per_tx_max.len()
            + 56 * self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sections_with_distinct_addresses() {
        let d = Destinations {
            count: 2,
            tail: Destinations::tail_byte(0x5a),
            label: "customer",
            assets: &["TRX", "USDT"],
            per_tx_max: &[("TRX", "5"), ("USDT", "10")],
            windows: &[Window {
                asset: "USDT",
                window: "24h",
                max: "1000",
            }],
        };
        let text = d.policy("head\n");
        let a0 = d.address(0);
        assert_eq!(
            text.lines().take(7).collect::<Vec<_>>(),
            [
                "head",
                "",
                "[[key.destination]]",
                &format!("address = \"{a0}\""),
                "label = \"customer 0\"",
                "assets = [\"TRX\", \"USDT\"]",
                "per_tx_max = { TRX = \"5\", USDT = \"10\" }",
            ]
        );
        assert!(
            text.ends_with("windows = [{ asset = \"USDT\", window = \"24h\", max = \"1000\" }]\n")
        );
        assert_ne!(d.address(0), d.address(1));
        assert_eq!(d.addresses().count(), 2);
        let no_windows = Destinations { windows: &[], ..d };
        assert!(!no_windows.policy("").contains("windows"));
    }
}
