//! Audit records and their hash chain.
//!
//! The hash covers a canonical byte encoding that we define here, not a serializer's output, so
//! the chain verifies the same way whatever serde_json version wrote it: a domain tag, then
//! every field in a fixed order, integers big-endian, strings as u32 length + UTF-8, options as
//! a 0/1 tag. The decoded intent is kept as the exact JSON text that was hashed.
//! A stored row is `canonical bytes || sha256(canonical bytes)`.
//!
//! Rows are written in format v4: the caller name, the identity it was recognised by and the
//! peer (since v2), the approvals the decision rested on (since v3), and the HD index a
//! deposit-key or gas-key request named (since v4). Rows of formats v1 (the peer only), v2
//! (no approvals) and v3 (no deposit index) are still read and verified: the stored hash
//! covers the row's own domain tag.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::entry::Reader;
use super::error::LedgerError;

const DOMAIN: &[u8] = b"tron-signer/audit/v4\0";
/// Rows written before the deposit index was recorded.
const DOMAIN_V3: &[u8] = b"tron-signer/audit/v3\0";
/// Rows written before approvals were recorded.
const DOMAIN_V2: &[u8] = b"tron-signer/audit/v2\0";
/// Rows written before callers were named (no caller name or identity, the peer only).
const DOMAIN_V1: &[u8] = b"tron-signer/audit/v1\0";

/// The outcome recorded for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Error,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }

    fn from_str(s: &str) -> Option<Decision> {
        match s {
            "allow" => Some(Decision::Allow),
            "deny" => Some(Decision::Deny),
            "error" => Some(Decision::Error),
            _ => None,
        }
    }
}

/// What the service tells the ledger about one request; the writer adds sequence and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub time_ms: i64,
    /// The policy's name for the caller (`[[caller]] name`); empty when no caller was
    /// recognised (the refusal then says why) or the signer acted itself (a reload).
    pub caller: String,
    /// The exact identity the caller was recognised by (`tls_pin=…`, `tls_san=uri:…`,
    /// `unix_uid=1000`); empty when none was.
    pub identity: String,
    /// What the transport saw: the client key, subject and address of a TLS connection,
    /// uid/gid/pid on the Unix socket, a batch file; never a secret.
    pub peer: String,
    /// "Sign", "Evaluate", "Reload", ...
    pub method: String,
    pub key: Option<String>,
    /// Hex txid, when the bytes decoded far enough to have one.
    pub txid: Option<String>,
    pub payout_id: Option<String>,
    /// The decoded intent as JSON text, when decoding succeeded. Text, not a tree: it is
    /// rendered once on the request's own thread and hashed exactly as given.
    pub intent: Option<String>,
    pub decision: Decision,
    pub reason_code: String,
    pub message: String,
    /// Hex hash of the policy in force for this decision.
    pub policy_hash: String,
    /// The approvals the decision rested on, as JSON text (the statement, and for each
    /// approver their name, key fingerprint, decision and SSH signature), so an export proves
    /// who approved and `audit verify` re-checks the signatures. Hashed exactly as given.
    pub approvals: Option<String>,
    /// The request's `deposit_index` (a deposit key's own index, or the deposit address a
    /// gas key funds), so the record alone says which derived key or address was judged.
    pub deposit_index: Option<u32>,
}

/// A record as stored and exported: the request plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainedRecord {
    pub sequence: u64,
    pub time_ms: i64,
    pub caller: String,
    pub identity: String,
    pub peer: String,
    pub method: String,
    pub key: Option<String>,
    pub txid: Option<String>,
    pub payout_id: Option<String>,
    pub intent: Option<serde_json::Value>,
    pub decision: Decision,
    pub reason_code: String,
    pub message: String,
    pub policy_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposit_index: Option<u32>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The canonical bytes of everything but the chain position (see [`seal_body`]). Built by
    /// the submitting thread, so the single writer thread only hashes and stores.
    pub(crate) fn body(&self) -> Vec<u8> {
        let intent_len = self.intent.as_ref().map_or(0, String::len);
        let approvals_len = self.approvals.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(256 + self.message.len() + intent_len + approvals_len);
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        put_str(&mut out, &self.caller);
        put_str(&mut out, &self.identity);
        put_str(&mut out, &self.peer);
        put_str(&mut out, &self.method);
        put_opt(&mut out, self.key.as_deref());
        put_opt(&mut out, self.txid.as_deref());
        put_opt(&mut out, self.payout_id.as_deref());
        put_opt(&mut out, self.intent.as_deref());
        put_str(&mut out, self.decision.as_str());
        put_str(&mut out, &self.reason_code);
        put_str(&mut out, &self.message);
        put_str(&mut out, &self.policy_hash);
        put_opt(&mut out, self.approvals.as_deref());
        match self.deposit_index {
            None => out.push(0),
            Some(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
        out
    }
}

impl AuditRecord {
    /// The length of [`body`](Self::body) without building it: what this record costs the
    /// audit log, for budgets charged before the write.
    pub fn body_len(&self) -> usize {
        let s = |v: &str| 4 + v.len();
        let o = |v: Option<&str>| 1 + v.map_or(0, s);
        8 + s(&self.caller)
            + s(&self.identity)
            + s(&self.peer)
            + s(&self.method)
            + o(self.key.as_deref())
            + o(self.txid.as_deref())
            + o(self.payout_id.as_deref())
            + o(self.intent.as_deref())
            + s(self.decision.as_str())
            + s(&self.reason_code)
            + s(&self.message)
            + s(&self.policy_hash)
            + o(self.approvals.as_deref())
            + 1
            + self.deposit_index.map_or(0, |_| 4)
    }
}

/// The stored row for a record `body` at `seq` after `prev`, and its hash: the canonical
/// bytes are the domain tag, `seq`, `prev`, then the body; the row appends their SHA-256.
pub(crate) fn seal_body(body: &[u8], seq: u64, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let mut out = Vec::with_capacity(DOMAIN.len() + 8 + 32 + body.len() + 32);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev);
    out.extend_from_slice(body);
    let hash: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&hash);
    (out, hash)
}

/// Canonical row for `rec` at `seq` after `prev`, and its hash.
#[cfg(test)]
pub(crate) fn seal(rec: &AuditRecord, seq: u64, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
    seal_body(&rec.body(), seq, prev)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields longer than 4 GiB cannot occur: the service bounds every input far below that.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// A stored row split into its parts. `hash_ok` says whether the stored hash matches the bytes.
pub(crate) struct Opened {
    pub record: ChainedRecord,
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    pub hash_ok: bool,
}

/// Parses a stored row. A row that does not even parse is reported as modified at `key`.
pub(crate) fn open_row(key: u64, row: &[u8]) -> Result<Opened, LedgerError> {
    let modified = || LedgerError::AuditModified { seq: key };
    if row.len() < DOMAIN.len() + 32 {
        return Err(modified());
    }
    let (body, stored_hash) = row.split_at(row.len() - 32);
    let hash: [u8; 32] = stored_hash.try_into().map_err(|_| modified())?;
    let computed: [u8; 32] = Sha256::digest(body).into();
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    let parsed = (|| -> Result<_, LedgerError> {
        // All three tags have the same length.
        let version = match r.slice(DOMAIN.len())? {
            d if d == DOMAIN => 4,
            d if d == DOMAIN_V3 => 3,
            d if d == DOMAIN_V2 => 2,
            d if d == DOMAIN_V1 => 1,
            _ => return Err(LedgerError::corrupt("domain")),
        };
        let seq = u64::from_be_bytes(r.take::<8>()?);
        let prev = r.take::<32>()?;
        let time_ms = i64::from_be_bytes(r.take::<8>()?);
        let (caller, identity, peer) = if version == 1 {
            (String::new(), String::new(), get_str(&mut r)?)
        } else {
            (get_str(&mut r)?, get_str(&mut r)?, get_str(&mut r)?)
        };
        let method = get_str(&mut r)?;
        let key_s = get_opt(&mut r)?;
        let txid = get_opt(&mut r)?;
        let payout_id = get_opt(&mut r)?;
        let intent = match get_opt(&mut r)? {
            None => None,
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|_| LedgerError::corrupt("intent json"))?)
            }
        };
        let decision = Decision::from_str(&get_str(&mut r)?)
            .ok_or_else(|| LedgerError::corrupt("decision"))?;
        let reason_code = get_str(&mut r)?;
        let message = get_str(&mut r)?;
        let policy_hash = get_str(&mut r)?;
        let approvals = match version {
            3 | 4 => match get_opt(&mut r)? {
                None => None,
                Some(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|_| LedgerError::corrupt("approvals json"))?,
                ),
            },
            _ => None,
        };
        let deposit_index = match version {
            4 => match r.take::<1>()? {
                [0] => None,
                [1] => Some(u32::from_be_bytes(r.take::<4>()?)),
                _ => return Err(LedgerError::corrupt("option tag")),
            },
            _ => None,
        };
        if r.pos != body.len() {
            return Err(LedgerError::corrupt("trailing bytes"));
        }
        Ok(Opened {
            record: ChainedRecord {
                sequence: seq,
                time_ms,
                caller,
                identity,
                peer,
                method,
                key: key_s,
                txid,
                payout_id,
                intent,
                decision,
                reason_code,
                message,
                policy_hash,
                approvals,
                deposit_index,
                prev_hash: hex::encode(prev),
                hash: hex::encode(hash),
            },
            seq,
            prev,
            hash,
            hash_ok: computed == hash,
        })
    })();
    parsed.map_err(|_| modified())
}

fn get_str(r: &mut Reader<'_>) -> Result<String, LedgerError> {
    let len = u32::from_be_bytes(r.take::<4>()?) as usize;
    let bytes = r.slice(len)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| LedgerError::corrupt("utf-8"))
}

fn get_opt(r: &mut Reader<'_>) -> Result<Option<String>, LedgerError> {
    match r.take::<1>()? {
        [0] => Ok(None),
        [1] => get_str(r).map(Some),
        _ => Err(LedgerError::corrupt("option tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_len_is_the_length_of_the_body() {
        let mut rec = AuditRecord {
            time_ms: 1,
            caller: "ops".into(),
            identity: "unix_uid=1".into(),
            peer: "unix:uid=1".into(),
            method: "Sign".into(),
            key: None,
            txid: Some("ab".repeat(32)),
            payout_id: Some("p-1".into()),
            intent: None,
            decision: Decision::Deny,
            reason_code: "frozen".into(),
            message: "é".repeat(3),
            policy_hash: "00".repeat(32),
            approvals: None,
            deposit_index: None,
        };
        assert_eq!(rec.body_len(), rec.body().len());
        rec.key = Some("T".into());
        rec.intent = Some("{}".into());
        rec.approvals = Some("{}".into());
        rec.deposit_index = Some(7);
        assert_eq!(rec.body_len(), rec.body().len());
        let (row, _) = seal(&rec, 1, &[0; 32]);
        let opened = open_row(1, &row).unwrap();
        assert!(opened.hash_ok);
        assert_eq!(opened.record.deposit_index, Some(7));
    }

    /// A v3 row (before the deposit index) opens with its hash intact and no index.
    #[test]
    fn a_v3_row_opens_without_a_deposit_index() {
        let rec = AuditRecord {
            time_ms: 1,
            caller: "ops".into(),
            identity: String::new(),
            peer: "p".into(),
            method: "Sign".into(),
            key: None,
            txid: None,
            payout_id: None,
            intent: None,
            decision: Decision::Allow,
            reason_code: "signed".into(),
            message: String::new(),
            policy_hash: String::new(),
            approvals: None,
            deposit_index: None,
        };
        let body = rec.body();
        // The v3 body is the v4 body without the trailing deposit-index option.
        let mut row = DOMAIN_V3.to_vec();
        row.extend_from_slice(&3u64.to_be_bytes());
        row.extend_from_slice(&[0; 32]);
        row.extend_from_slice(&body[..body.len() - 1]);
        let hash: [u8; 32] = Sha256::digest(&row).into();
        row.extend_from_slice(&hash);
        let opened = open_row(3, &row).unwrap();
        assert!(opened.hash_ok);
        assert_eq!(opened.record.deposit_index, None);
        assert_eq!(opened.record.reason_code, "signed");
    }

    /// A row in the format before callers were named still opens, with its hash intact
    /// and its one caller string read as the peer.
    #[test]
    fn a_v1_row_opens_with_its_peer() {
        let mut body = Vec::new();
        body.extend_from_slice(DOMAIN_V1);
        body.extend_from_slice(&7u64.to_be_bytes());
        body.extend_from_slice(&[3; 32]);
        body.extend_from_slice(&5i64.to_be_bytes());
        for s in ["unix:uid=1000", "Sign"] {
            put_str(&mut body, s);
        }
        for _ in 0..4 {
            put_opt(&mut body, None);
        }
        for s in ["deny", "frozen", "m", &"00".repeat(32)] {
            put_str(&mut body, s);
        }
        let hash: [u8; 32] = Sha256::digest(&body).into();
        let mut row = body.clone();
        row.extend_from_slice(&hash);
        let opened = open_row(7, &row).unwrap();
        assert!(opened.hash_ok);
        assert_eq!(opened.record.peer, "unix:uid=1000");
        assert_eq!(opened.record.caller, "");
        assert_eq!(opened.record.reason_code, "frozen");
        // One changed byte is caught like in any row.
        let last = row.len() - 40;
        row[last] ^= 1;
        assert!(!open_row(7, &row).map(|o| o.hash_ok).unwrap_or(false));
    }
}
