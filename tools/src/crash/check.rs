//! The end-of-run checks: what the clients received against what the signer recorded
//! (`audit export` and the ledger), and every rolling window against the policy's limits
//! over the whole run. Each failure is one precise message naming the txid or payout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde_json::Value;
use tron_proto::Address;
use tron_signer::ledger::{Ledger, Lookup};

use super::setup::{Window, SKEW_MS};

/// One OK answer a client received.
#[derive(Debug, Clone)]
pub struct Received {
    pub txid: [u8; 32],
    pub signature: Vec<u8>,
    pub payout_id: String,
    pub amount_sun: u64,
    pub destination: Address,
    pub replayed: bool,
}

/// A `signed` audit record, as `audit export` wrote it.
#[derive(Debug, Clone)]
pub struct SignedRecord {
    pub sequence: u64,
    pub time_ms: i64,
    pub txid: String,
    pub payout_id: String,
    pub amount_sun: u64,
    pub destination: Address,
    pub expiration_ms: i64,
}

/// What the export holds: the signed records in chain order and every other outcome by
/// reason code.
#[derive(Debug, Default)]
pub struct Export {
    pub signed: Vec<SignedRecord>,
    pub outcomes: BTreeMap<String, u64>,
}

/// Reads `audit export` output (one JSON object per line).
pub fn read_export(text: &str) -> Result<Export, String> {
    let mut export = Export::default();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("export line {}: {e}", n + 1))?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let reason = field("reason_code").to_owned();
        if reason == "signed" {
            export
                .signed
                .push(signed_record(&v).ok_or_else(|| format!("export line {}: a signed record without its sequence, time, txid, payout id or decoded transfer", n + 1))?);
        }
        *export.outcomes.entry(reason).or_default() += 1;
    }
    export.signed.sort_by_key(|r| r.sequence);
    Ok(export)
}

fn signed_record(v: &Value) -> Option<SignedRecord> {
    let intent = v.get("intent")?;
    Some(SignedRecord {
        sequence: v.get("sequence")?.as_u64()?,
        time_ms: v.get("time_ms")?.as_i64()?,
        txid: v.get("txid")?.as_str()?.to_owned(),
        payout_id: v.get("payout_id")?.as_str()?.to_owned(),
        amount_sun: intent.get("amount")?.as_str()?.parse().ok()?,
        destination: intent.get("to")?.as_str()?.parse().ok()?,
        expiration_ms: intent.get("expiration")?.as_i64()?,
    })
}

/// The figures the checks produce, and every violation found.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<String>,
    /// Distinct txids the clients received a signature for.
    pub received_txids: usize,
    /// Received signatures whose ledger entry holds the same bytes.
    pub in_ledger: usize,
    /// Signed records in the export with no answer at any client (killed before it left).
    pub signed_never_received: usize,
    /// For each window (in the order given), the highest use it reached, base units.
    pub peak_use: Vec<u64>,
}

impl Findings {
    fn violation(&mut self, text: String) {
        self.violations.push(text);
    }
}

/// Checks the run. `ledger_dir` is the signer's data directory; the signer must be stopped.
pub fn check(
    received: &[Received],
    export: &Export,
    windows: &[Window],
    ledger_dir: &Path,
) -> Findings {
    let mut f = Findings::default();
    let mut by_txid: HashMap<&str, &SignedRecord> = HashMap::new();
    for r in &export.signed {
        if let Some(first) = by_txid.insert(&r.txid, r) {
            f.violation(format!(
                "txid {} has two signed records (sequences {} and {}): signed twice",
                r.txid, first.sequence, r.sequence
            ));
        }
    }
    double_payouts(export, &mut f);
    received_against_records(received, &by_txid, &mut f);
    ledger_signatures(received, export, ledger_dir, &mut f);
    let got: HashSet<String> = received.iter().map(|r| hex::encode(r.txid)).collect();
    f.received_txids = got.len();
    f.signed_never_received = export
        .signed
        .iter()
        .filter(|r| !got.contains(&r.txid))
        .count();
    windows_held(&export.signed, windows, &mut f);
    f
}

/// No payout id has two different transactions signed.
fn double_payouts(export: &Export, f: &mut Findings) {
    let mut txids: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in &export.signed {
        txids.entry(&r.payout_id).or_default().push(&r.txid);
    }
    let mut doubles: Vec<_> = txids.into_iter().filter(|(_, t)| t.len() > 1).collect();
    doubles.sort();
    for (payout, t) in doubles {
        f.violation(format!(
            "payout {payout:?} was signed as {} different transactions: {}",
            t.len(),
            t.join(", ")
        ));
    }
}

/// Every answer a client got is a signed record for the same payout, amount and destination,
/// and one txid never came back with two different signatures.
fn received_against_records(
    received: &[Received],
    by_txid: &HashMap<&str, &SignedRecord>,
    f: &mut Findings,
) {
    let mut signature_of: HashMap<[u8; 32], &[u8]> = HashMap::new();
    for r in received {
        let txid = hex::encode(r.txid);
        if let Some(earlier) = signature_of.insert(r.txid, &r.signature) {
            if earlier != r.signature.as_slice() {
                f.violation(format!(
                    "txid {txid} was answered with two different signatures"
                ));
            }
        }
        match by_txid.get(txid.as_str()) {
            None => f.violation(format!(
                "txid {txid} (payout {:?}) was signed for a client but has no signed record in \
                 the audit export",
                r.payout_id
            )),
            Some(rec) => {
                if rec.payout_id != r.payout_id
                    || rec.amount_sun != r.amount_sun
                    || rec.destination != r.destination
                {
                    f.violation(format!(
                        "txid {txid}: the client asked payout {:?}, {} sun to {}; the signed \
                         record says payout {:?}, {} sun to {}",
                        r.payout_id,
                        r.amount_sun,
                        r.destination,
                        rec.payout_id,
                        rec.amount_sun,
                        rec.destination
                    ));
                }
            }
        }
    }
}

/// Every received signature is the one the ledger holds for its txid, and every signed record
/// has a ledger entry.
fn ledger_signatures(received: &[Received], export: &Export, dir: &Path, f: &mut Findings) {
    // Retention longer than any window the harness uses: every entry of the run is loaded.
    let ledger = match Ledger::open(dir, 2 * 3_600_000, crate::tx::now_ms()) {
        Ok(l) => l,
        Err(e) => {
            f.violation(format!(
                "the ledger in {} cannot be opened: {e}",
                dir.display()
            ));
            return;
        }
    };
    let state = ledger.state();
    let lookup = |txid: &[u8; 32]| match state.find_txid(txid) {
        Ok(Some(Lookup::Committed(entry))) => Ok(entry),
        Ok(Some(Lookup::InFlight)) => Err("is still reserved, not committed".to_owned()),
        Ok(None) => Err("has no entry".to_owned()),
        Err(e) => Err(format!("cannot be read: {e}")),
    };
    let mut seen = HashSet::new();
    for r in received.iter().filter(|r| seen.insert(r.txid)) {
        match lookup(&r.txid) {
            Ok(entry) if entry.signature.as_slice() == r.signature.as_slice() => f.in_ledger += 1,
            Ok(_) => f.violation(format!(
                "txid {}: the client received a signature other than the one in the ledger",
                hex::encode(r.txid)
            )),
            Err(e) => f.violation(format!(
                "txid {} was signed for a client but in the ledger it {e}",
                hex::encode(r.txid)
            )),
        }
    }
    for rec in &export.signed {
        let txid = hex::decode(&rec.txid)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        let Some(txid) = txid else {
            f.violation(format!(
                "signed record {} has txid {:?}, not 32 bytes of hex",
                rec.sequence, rec.txid
            ));
            continue;
        };
        if let Err(e) = lookup(&txid) {
            f.violation(format!(
                "txid {} has a signed audit record (sequence {}) but in the ledger it {e}",
                rec.txid, rec.sequence
            ));
        }
    }
}

/// The policy's rule, checked at every signature of the run (use only grows when something
/// is signed, so these are the moments a limit can be passed): a signed transfer counts
/// toward a window of length W at time t while it can still land at some moment of the
/// window, i.e. while expiration + skew >= t - W (policies/README.md). At each signature,
/// the sum over everything signed so far that still counts, this one included, must be at
/// most the window's max.
fn windows_held(signed: &[SignedRecord], windows: &[Window], f: &mut Findings) {
    f.peak_use = vec![0; windows.len()];
    for (i, r) in signed.iter().enumerate() {
        for (w, window) in windows.iter().enumerate() {
            if window.destination.is_some_and(|d| d != r.destination) {
                continue;
            }
            let counted = signed[..=i].iter().filter(|s| {
                window.destination.is_none_or(|d| d == s.destination)
                    && s.expiration_ms + SKEW_MS >= r.time_ms - window.length_ms
            });
            let used: u64 = counted.map(|s| s.amount_sun).sum();
            f.peak_use[w] = f.peak_use[w].max(used);
            if used > window.max_sun {
                let scope = match window.destination {
                    None => "the key".to_owned(),
                    Some(d) => format!("destination {d}"),
                };
                f.violation(format!(
                    "window overrun: signing txid {} (sequence {}, payout {:?}) at {} brought the \
                     {} ms window of {scope} to {} sun, over its max {}",
                    r.txid,
                    r.sequence,
                    r.payout_id,
                    r.time_ms,
                    window.length_ms,
                    used,
                    window.max_sun
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, t: i64, payout: &str, amount: u64, to: Address) -> SignedRecord {
        SignedRecord {
            sequence: seq,
            time_ms: t,
            txid: format!("{seq:064x}"),
            payout_id: payout.into(),
            amount_sun: amount,
            destination: to,
            expiration_ms: t + 1_000,
        }
    }

    #[test]
    fn an_overrun_and_a_double_payout_are_found() {
        let to: Address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"
            .parse()
            .expect("address");
        let w = [Window {
            destination: None,
            length_ms: 10_000,
            max_sun: 10,
        }];
        // 6 + 5 at t=0 and t=5s: over 10. Far apart (the first expired long ago): fine.
        let over = [rec(1, 0, "a", 6, to), rec(2, 5_000, "b", 5, to)];
        let mut f = Findings::default();
        windows_held(&over, &w, &mut f);
        assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
        assert_eq!(f.peak_use, vec![11]);
        let apart = [rec(1, 0, "a", 6, to), rec(2, 14_000, "b", 5, to)];
        let mut f = Findings::default();
        windows_held(&apart, &w, &mut f);
        assert!(f.violations.is_empty(), "{:?}", f.violations);

        let export = Export {
            signed: vec![rec(1, 0, "a", 1, to), rec(2, 1, "a", 1, to)],
            outcomes: BTreeMap::new(),
        };
        let mut f = Findings::default();
        double_payouts(&export, &mut f);
        assert_eq!(f.violations.len(), 1);
        assert!(
            f.violations[0].contains("payout \"a\""),
            "{}",
            f.violations[0]
        );
    }

    #[test]
    fn a_received_signature_without_its_record_or_with_another_payout_is_found() {
        let to: Address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"
            .parse()
            .expect("address");
        let record = rec(1, 0, "a", 5, to);
        let got = |txid_byte: u8, payout: &str, signature: u8| Received {
            txid: {
                let mut t = [0u8; 32];
                t[31] = txid_byte;
                t
            },
            signature: vec![signature; 65],
            payout_id: payout.into(),
            amount_sun: 5,
            destination: to,
            replayed: false,
        };
        let by_txid: HashMap<&str, &SignedRecord> = [(record.txid.as_str(), &record)].into();
        let mut f = Findings::default();
        received_against_records(&[got(1, "a", 7), got(1, "a", 7)], &by_txid, &mut f);
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        // Not recorded; recorded for another payout; one txid with two signatures.
        received_against_records(
            &[got(2, "a", 7), got(1, "b", 7), got(1, "a", 8)],
            &by_txid,
            &mut f,
        );
        assert_eq!(f.violations.len(), 3, "{:?}", f.violations);
        assert!(
            f.violations[0].contains("no signed record"),
            "{}",
            f.violations[0]
        );
        assert!(
            f.violations[1].contains("payout \"b\""),
            "{}",
            f.violations[1]
        );
        assert!(
            f.violations[2].contains("two different signatures"),
            "{}",
            f.violations[2]
        );
    }
}
