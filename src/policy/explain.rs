//! A plain-language summary of a loaded policy, for auditors who do not read TOML.
//!
//! Written from the validated model, not the text: what it says is what the signer enforces.
//! Every limit is shown in token units and in base units (what the signer compares), so a
//! wrong `decimals` cannot hide behind a familiar number.

use std::fmt::Write as _;

use tron_proto::U256;

use super::amount::format_amount;
use super::caller::{KeyGrant, Recognition, Rpc};
use super::duration::format_duration;
use super::model::{AssetInfo, Policy, Window};
use super::LoadedPolicy;
use crate::decode::Asset;

impl LoadedPolicy {
    /// The summary printed by `tron-signer policy explain`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write_explain(&mut out, self);
        out
    }
}

fn write_explain(o: &mut String, lp: &LoadedPolicy) -> std::fmt::Result {
    let p = &lp.policy;
    writeln!(o, "Policy {:?} (format version {})", lp.name, lp.version)?;
    writeln!(o, "File: {}", lp.path.display())?;
    writeln!(o, "sha256: {}", lp.hash_hex())?;
    writeln!(
        o,
        "Network: {} (batches for another network are refused)",
        p.network
    )?;
    writeln!(o)?;
    writeln!(
        o,
        "Rule: anything not explicitly allowed below is refused (default deny)."
    )?;
    if p.frozen {
        writeln!(
            o,
            "GLOBAL FREEZE IS ON: every request for every key is refused."
        )?;
    } else {
        writeln!(o, "Global freeze: off.")?;
    }
    writeln!(o)?;
    writeln!(o, "Assets:")?;
    for a in &p.assets {
        match a.asset {
            Asset::Trx => writeln!(
                o,
                "  TRX: the native coin, {} decimals (amounts in sun)",
                a.decimals
            )?,
            Asset::Token(c) => writeln!(
                o,
                "  {}: TRC-20 token at contract {c}, {} decimals",
                a.symbol, a.decimals
            )?,
        }
    }
    for k in &p.keys {
        writeln!(o)?;
        writeln!(o, "Key {} ({:?})", k.address, k.label)?;
        if k.frozen {
            writeln!(o, "  FROZEN: every request for this key is refused.")?;
        }
        let names: Vec<&str> = k.assets.iter().map(|a| symbol(p, &a.asset)).collect();
        writeln!(
            o,
            "  May send only: {} (only to the destinations listed below)",
            names.join(", ")
        )?;
        for a in &k.assets {
            let info = p.asset_info(&a.asset);
            writeln!(
                o,
                "  Total {} sent by this key, to all destinations: {}",
                symbol(p, &a.asset),
                windows(&a.windows, info)
            )?;
        }
        let e = &k.envelope;
        writeln!(
            o,
            "  Fee limit: at most {} per transaction.",
            trx(e.max_fee_limit.into())
        )?;
        writeln!(
            o,
            "  Expiration: at most {} after the signer's clock; timestamps and expirations may be off by up to {} (clock skew).",
            format_duration(e.max_expiration_ms),
            format_duration(e.clock_skew_ms)
        )?;
        if e.memo_allowed {
            writeln!(o, "  Memos: allowed, up to {} bytes.", e.max_memo_len)?;
        } else {
            writeln!(o, "  Memos: not allowed.")?;
        }
        if k.destinations.is_empty() {
            writeln!(o, "  Destinations: none, so this key can send nothing.")?;
        } else {
            writeln!(o, "  Destinations ({}):", k.destinations.len())?;
        }
        for d in &k.destinations {
            writeln!(o, "    {:?} {}", d.label, d.address)?;
            for a in &d.assets {
                let info = p.asset_info(&a.asset);
                let sym = symbol(p, &a.asset);
                let mut line = format!(
                    "      {sym}: at most {} per transaction",
                    amount(a.per_tx_max, info)
                );
                if !a.windows.is_empty() {
                    let _ = write!(line, "; {}", windows(&a.windows, info));
                }
                writeln!(o, "{line}")?;
            }
        }
        if let Some(g) = &k.gas_for {
            writeln!(
                o,
                "  Gas key: may also send TRX to any address of deposit account {:?} that the request names by index, at most {} per transaction, inside this key's TRX windows.",
                g.account,
                amount(g.per_tx_max, p.asset_info(&Asset::Trx))
            )?;
        }
    }
    write_deposit_accounts(o, p)?;
    write_callers(o, p)?;
    write_approvals(o, p)?;
    write_admins(o, p)
}

/// The HD accounts whose deposit keys may sweep, and where to.
fn write_deposit_accounts(o: &mut String, p: &Policy) -> std::fmt::Result {
    for a in &p.deposit_accounts {
        writeln!(o)?;
        writeln!(o, "Deposit account {:?}", a.name)?;
        writeln!(o, "  Account key: {}", a.xpub.to_text())?;
        writeln!(
            o,
            "  Deposit keys m/44'/195'/0'/0/i for i from {} to {}, derived by the signer from this account's seed.",
            a.first_index, a.last_index
        )?;
        let assets: Vec<&str> = a.assets.iter().map(|x| symbol(p, x)).collect();
        writeln!(
            o,
            "  They may send {} only to the collection address {}, with no per-transaction or window limit.",
            assets.join(", "),
            a.collection
        )?;
    }
    Ok(())
}

/// Who signs the next policy once this one is in force.
fn write_admins(o: &mut String, p: &Policy) -> std::fmt::Result {
    writeln!(o)?;
    let Some(set) = &p.admins else {
        return writeln!(
            o,
            "Policy administrators: the signer config's (this policy names none)."
        );
    };
    writeln!(
        o,
        "Policy administrators once this policy is in force (the next policy needs {} of their signatures; any one of them can freeze):",
        set.threshold
    )?;
    for a in &set.admins {
        writeln!(o, "  {:?}, key {}", a.name, a.fingerprint)?;
    }
    Ok(())
}

/// Who must approve what, and who the approvers are.
fn write_approvals(o: &mut String, p: &Policy) -> std::fmt::Result {
    writeln!(o)?;
    if p.approval_rules.is_empty() {
        return writeln!(o, "Approvals: none required.");
    }
    writeln!(
        o,
        "Approvals: a transfer a rule below applies to is signed only with the approvals it names, and only if every rule above allows it too (approvals lift no limit). Where several rules apply, each group's largest count is needed."
    )?;
    for r in &p.approval_rules {
        let info = p.asset_info(&r.asset);
        let mut scope = format!("{} above {}", symbol(p, &r.asset), amount(r.above, info));
        if let Some(k) = &r.key {
            let _ = write!(scope, " sent by key {k}");
        }
        if let Some(d) = &r.destination {
            let _ = write!(scope, " to {d}");
        }
        let needs: Vec<String> = r
            .require
            .iter()
            .map(|(g, n)| format!("{n} of {g:?}"))
            .collect();
        writeln!(
            o,
            "  {} ({}): needs {}.",
            scope,
            r.label,
            needs.join(" and ")
        )?;
    }
    writeln!(
        o,
        "Approvers (each approval an SSH signature, checkable with ssh-keygen -Y verify):"
    )?;
    for a in &p.approvers {
        let mut line = format!(
            "  {:?}, in {}, key {} ({})",
            a.name,
            a.groups.join(", "),
            a.fingerprint,
            a.key.data().algorithm()
        );
        if let Some(c) = &a.caller {
            let _ = write!(line, "; never approves requests of caller {c:?}");
        }
        writeln!(o, "{line}")?;
    }
    Ok(())
}

/// Who may ask for what, one paragraph per caller.
fn write_callers(o: &mut String, p: &Policy) -> std::fmt::Result {
    writeln!(o)?;
    writeln!(
        o,
        "Callers: only these may ask anything; any other connection, batch file or process is refused (caller_unknown)."
    )?;
    for c in &p.callers {
        writeln!(o)?;
        writeln!(o, "Caller {:?}", c.name)?;
        for r in &c.recognised_by {
            writeln!(o, "  Recognised by {}", recognition(r))?;
        }
        let rpcs: Vec<&str> = c.rpcs.iter().map(|r| r.as_str()).collect();
        writeln!(o, "  May call: {}.", rpcs.join(", "))?;
        let verb = if c.may_call(Rpc::Sign) {
            "May ask signatures (within the limits above) of"
        } else if c.may_call(Rpc::Evaluate) {
            "May ask decisions (never signatures) about"
        } else {
            "Sees"
        };
        match &c.keys {
            KeyGrant::All => writeln!(o, "  {verb}: every key of this policy.")?,
            KeyGrant::Listed(keys) if keys.is_empty() => writeln!(o, "  Keys: none.")?,
            KeyGrant::Listed(keys) => {
                writeln!(o, "  {verb}:")?;
                for k in keys {
                    let label = p.key(k).map_or("", |k| k.label.as_str());
                    writeln!(o, "    {k} ({label:?})")?;
                }
            }
        }
        for a in &c.deposit_accounts {
            writeln!(o, "  May sweep with the deposit keys of {a:?}.")?;
        }
    }
    Ok(())
}

fn recognition(r: &Recognition) -> String {
    match r {
        Recognition::TlsPin(pin) => format!(
            "the TLS client key whose SubjectPublicKeyInfo has SHA-256 {}",
            hex::encode(pin)
        ),
        Recognition::TlsSubject(s) => format!(
            "a TLS client certificate from the configured client CA with subject {s:?}"
        ),
        Recognition::TlsSan(s) => format!(
            "a TLS client certificate from the configured client CA naming {s:?} among its alternative names"
        ),
        Recognition::UnixUid(uid) => format!("a process of uid {uid} on the Unix socket"),
        Recognition::InsecureLoopback => {
            "ANY process that reaches the plaintext loopback TCP listener (insecure_plaintext)".into()
        }
        Recognition::BatchKey(k) => format!(
            "batch files signed with the Ed25519 key {} (as ssh-keygen -l shows it)",
            super::caller::ed25519_fingerprint(k)
        ),
    }
}

fn symbol<'p>(p: &'p Policy, asset: &Asset) -> &'p str {
    p.asset_info(asset).map_or("?", |i| i.symbol.as_str())
}

fn windows(ws: &[Window], info: Option<&AssetInfo>) -> String {
    ws.iter()
        .map(|w| format!("at most {} in any {}", amount(w.max, info), w.label))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `10000 (10000000000 base units)`: token units as written, then what the signer compares.
fn amount(v: U256, info: Option<&AssetInfo>) -> String {
    let (dec, unit) = match info {
        Some(AssetInfo {
            asset: Asset::Trx,
            decimals,
            ..
        }) => (*decimals, "sun"),
        Some(i) => (i.decimals, "base units"),
        None => (0, "base units"),
    };
    format!("{} ({v} {unit})", format_amount(v, dec))
}

/// A TRX amount in sun, shown as `50 TRX (50000000 sun)`.
fn trx(sun: U256) -> String {
    format!(
        "{} TRX ({sun} sun)",
        format_amount(sun, super::load::TRX_DECIMALS)
    )
}
