//! The bundle file: one JSON document (see the module docs of `crate::audit_bundle` for its
//! fields), parsed with every size bounded before anything is allocated for it.

use serde::{Deserialize, Serialize};

use crate::ledger::{StoredRecord, Stretch};

use super::error::BundleError;

/// The format line: the first field of every bundle.
pub const FORMAT: &str = "tron-signer-audit-bundle/1";
/// The largest bundle file read or written (256 MiB); a longer stretch takes several.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;
/// The largest stored audit record (canonical bytes and hash) a bundle holds. A record is a
/// few KiB; one of a refused reload lists problems and stays far below this.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// The most signatures carried for one policy.
pub const MAX_SIGNATURES_PER_POLICY: usize = 64;
/// The longest administrator public key line (an OpenSSH key with its type).
pub const MAX_KEY_LINE: usize = 1024;

/// A bundle: records `from..=to` of the audit chain, and the policies they name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub from: u64,
    pub to: u64,
    pub stretch: Stretch,
    pub policies: Vec<Policy>,
}

/// A policy text, exactly as archived, and the signatures archived with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub hash: [u8; 32],
    pub text: String,
    pub signatures: Vec<Signature>,
}

/// One administrator's signature over a policy text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The administrator's name when the signer put the policy in force.
    pub admin: String,
    /// The public key the signature was made with, as an OpenSSH line: what a check
    /// without `--config` verifies it with.
    pub key: String,
    /// The armored SSHSIG, as `ssh-keygen -Y sign` wrote it.
    pub signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: String,
    from: u64,
    to: u64,
    anchor: String,
    records: Vec<WireRecord>,
    policies: Vec<WirePolicy>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRecord {
    sequence: u64,
    canonical: String,
    hash: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePolicy {
    hash: String,
    text: String,
    signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    admin: String,
    key: String,
    signature: String,
}

fn malformed(what: impl Into<String>) -> BundleError {
    BundleError::Malformed { what: what.into() }
}

/// A 32-byte value from 64 hex digits.
fn hash32(field: &str, hex_text: &str) -> Result<[u8; 32], BundleError> {
    if hex_text.len() != 64 {
        return Err(malformed(format!(
            "{field} is {} characters, not 64 hex digits",
            hex_text.len()
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|e| malformed(format!("{field} is not hex: {e}")))?;
    Ok(out)
}

impl Bundle {
    /// The bundle as its file holds it: pretty-printed JSON, one field a line.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            format: FORMAT.to_owned(),
            from: self.from,
            to: self.to,
            anchor: hex::encode(self.stretch.anchor),
            records: self
                .stretch
                .records
                .iter()
                .map(|r| WireRecord {
                    sequence: r.sequence,
                    canonical: hex::encode(&r.canonical),
                    hash: hex::encode(r.hash),
                })
                .collect(),
            policies: self
                .policies
                .iter()
                .map(|p| WirePolicy {
                    hash: hex::encode(p.hash),
                    text: p.text.clone(),
                    signatures: p
                        .signatures
                        .iter()
                        .map(|s| WireSignature {
                            admin: s.admin.clone(),
                            key: s.key.clone(),
                            signature: s.signature.clone(),
                        })
                        .collect(),
                })
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&wire).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a bundle file's bytes. Refuses more than [`MAX_BUNDLE_BYTES`] before parsing,
    /// another format, unknown or missing fields, a record count other than `to - from + 1`,
    /// hex of the wrong length, a record over [`MAX_RECORD_BYTES`], the same policy or the
    /// same administrator twice, and more than [`MAX_SIGNATURES_PER_POLICY`] signatures.
    /// Nothing here is verified: see `verify`.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        Bundle::parse_within(bytes, MAX_BUNDLE_BYTES, MAX_RECORD_BYTES)
    }

    /// [`Bundle::parse`] with the bounds given (tests use small ones).
    fn parse_within(
        bytes: &[u8],
        max_bundle: u64,
        max_record: usize,
    ) -> Result<Bundle, BundleError> {
        if bytes.len() as u64 > max_bundle {
            return Err(BundleError::TooLarge {
                what: "the bundle".into(),
                size: bytes.len() as u64,
                max: max_bundle,
            });
        }
        // The format line first, so another file is named as such, not by a field error.
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(borrow)]
            format: Option<std::borrow::Cow<'a, str>>,
        }
        let head: Head<'_> = serde_json::from_slice(bytes)
            .map_err(|e| malformed(format!("not a JSON object: {e}")))?;
        match head.format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => {
                let shown: String = other.chars().take(64).collect();
                return Err(malformed(format!(
                    "format {shown:?}; this signer reads {FORMAT:?}"
                )));
            }
            None => return Err(malformed(format!("no \"format\" field (\"{FORMAT}\")"))),
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if wire.from == 0 || wire.from > wire.to {
            return Err(malformed(format!(
                "records {} to {}: sequence numbers start at 1 and from is at most to",
                wire.from, wire.to
            )));
        }
        let count = wire.to - wire.from + 1;
        if wire.records.len() as u64 != count {
            return Err(malformed(format!(
                "it says records {} to {} ({count}) and holds {}",
                wire.from,
                wire.to,
                wire.records.len()
            )));
        }
        let anchor = hash32("anchor", &wire.anchor)?;
        let mut records = Vec::with_capacity(wire.records.len());
        for (i, r) in wire.records.into_iter().enumerate() {
            let at = |what: &str| format!("record {} (entry {}): {what}", r.sequence, i + 1);
            if r.canonical.len() / 2 + 32 > max_record {
                return Err(malformed(at(&format!("more than {max_record} bytes"))));
            }
            let canonical = hex::decode(&r.canonical)
                .map_err(|e| malformed(at(&format!("canonical is not hex: {e}"))))?;
            let hash = hash32(&at("hash"), &r.hash)?;
            records.push(StoredRecord {
                sequence: r.sequence,
                canonical,
                hash,
            });
        }
        if wire.policies.len() > records.len() {
            return Err(malformed(format!(
                "{} policies for {} records: each policy is named by a record",
                wire.policies.len(),
                records.len()
            )));
        }
        let mut policies: Vec<Policy> = Vec::with_capacity(wire.policies.len());
        for p in wire.policies {
            let hash = hash32("policy hash", &p.hash)?;
            let shown = hex::encode(hash);
            if policies.iter().any(|q| q.hash == hash) {
                return Err(malformed(format!("policy {shown} is in it twice")));
            }
            if p.signatures.len() > MAX_SIGNATURES_PER_POLICY {
                return Err(malformed(format!(
                    "policy {shown} has {} signatures, at most {MAX_SIGNATURES_PER_POLICY}",
                    p.signatures.len()
                )));
            }
            let mut signatures: Vec<Signature> = Vec::with_capacity(p.signatures.len());
            for s in p.signatures {
                let bounded = (1..=64).contains(&s.admin.len())
                    && s.key.len() <= MAX_KEY_LINE
                    && s.signature.len() as u64 <= crate::policy::archive::MAX_SIGNATURE_BYTES;
                if !bounded {
                    return Err(malformed(format!(
                        "policy {shown}: a signature's administrator name (1-64 bytes), key \
                         (at most {MAX_KEY_LINE}) or signature (at most {} bytes) is out of bounds",
                        crate::policy::archive::MAX_SIGNATURE_BYTES
                    )));
                }
                if signatures.iter().any(|t| t.admin == s.admin) {
                    return Err(malformed(format!(
                        "policy {shown}: two signatures by {:?}",
                        s.admin
                    )));
                }
                signatures.push(Signature {
                    admin: s.admin,
                    key: s.key,
                    signature: s.signature,
                });
            }
            policies.push(Policy {
                hash,
                text: p.text,
                signatures,
            });
        }
        Ok(Bundle {
            from: wire.from,
            to: wire.to,
            stretch: Stretch { anchor, records },
            policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            from: 4,
            to: 5,
            stretch: Stretch {
                anchor: [9; 32],
                records: vec![
                    StoredRecord {
                        sequence: 4,
                        canonical: vec![1, 2, 3],
                        hash: [4; 32],
                    },
                    StoredRecord {
                        sequence: 5,
                        canonical: vec![5],
                        hash: [6; 32],
                    },
                ],
            },
            policies: vec![Policy {
                hash: [7; 32],
                text: "version = 1\n\"quoted\" é\n".into(),
                signatures: vec![Signature {
                    admin: "alice".into(),
                    key: "ssh-ed25519 AAAA".into(),
                    signature: "-----BEGIN SSH SIGNATURE-----\nx\n".into(),
                }],
            }],
        }
    }

    fn json() -> serde_json::Value {
        serde_json::from_slice(&bundle().to_json()).unwrap()
    }

    fn refusal(v: &serde_json::Value) -> String {
        let err = Bundle::parse(&serde_json::to_vec(v).unwrap()).unwrap_err();
        assert_eq!(err.code(), "audit_bundle_malformed", "{err}");
        assert!(!err.is_evidence_failure());
        err.to_string()
    }

    #[test]
    fn a_bundle_round_trips_exactly() {
        let b = bundle();
        let bytes = b.to_json();
        assert!(bytes.starts_with(b"{\n  \"format\": \"tron-signer-audit-bundle/1\",\n"));
        assert_eq!(Bundle::parse(&bytes).unwrap(), b);
    }

    /// A change to a bundle's JSON.
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;

    #[test]
    fn every_malformed_bundle_is_refused_before_anything_is_checked() {
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["format"] = "tron-signer-audit-bundle/2".into()),
                "format \"tron-signer-audit-bundle/2\"; this signer reads",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("format");
                }),
                "no \"format\" field",
            ),
            (Box::new(|v| v["extra"] = 1.into()), "unknown field `extra`"),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("anchor");
                }),
                "missing field `anchor`",
            ),
            (
                Box::new(|v| v["from"] = 0.into()),
                "sequence numbers start at 1",
            ),
            (Box::new(|v| v["from"] = 6.into()), "from is at most to"),
            (
                Box::new(|v| v["to"] = 6.into()),
                "it says records 4 to 6 (3) and holds 2",
            ),
            (
                Box::new(|v| v["anchor"] = "ab".into()),
                "anchor is 2 characters, not 64 hex digits",
            ),
            (
                Box::new(|v| v["anchor"] = "zz".repeat(32).into()),
                "anchor is not hex",
            ),
            (
                Box::new(|v| v["records"][1]["canonical"] = "0".into()),
                "record 5 (entry 2): canonical is not hex",
            ),
            (
                Box::new(|v| v["records"][0]["hash"] = "00".into()),
                "record 4 (entry 1): hash is 2 characters",
            ),
            (
                Box::new(|v| v["records"][0]["sequence"] = (-1).into()),
                "invalid value",
            ),
            (
                Box::new(|v| v["policies"][0]["hash"] = "07".into()),
                "policy hash is 2 characters",
            ),
            (
                Box::new(|v| {
                    let p = v["policies"][0].clone();
                    v["policies"].as_array_mut().unwrap().push(p);
                }),
                "is in it twice",
            ),
            (
                Box::new(|v| {
                    let p = v["policies"][0].clone();
                    v["policies"] = vec![p.clone(), p.clone(), p].into();
                }),
                "3 policies for 2 records",
            ),
            (
                Box::new(|v| {
                    let s = v["policies"][0]["signatures"][0].clone();
                    v["policies"][0]["signatures"]
                        .as_array_mut()
                        .unwrap()
                        .push(s);
                }),
                "two signatures by \"alice\"",
            ),
            (
                Box::new(|v| v["policies"][0]["signatures"][0]["admin"] = "".into()),
                "out of bounds",
            ),
            (
                Box::new(|v| {
                    v["policies"][0]["signatures"][0]["key"] = "k".repeat(MAX_KEY_LINE + 1).into()
                }),
                "out of bounds",
            ),
            (
                Box::new(|v| {
                    v["policies"][0]["signatures"][0]["signature"] =
                        "s".repeat(16 * 1024 + 1).into()
                }),
                "out of bounds",
            ),
        ];
        for (edit, want) in cases {
            let mut v = json();
            edit(&mut v);
            let said = refusal(&v);
            assert!(said.contains(want), "{want:?} not in {said:?}");
        }
        // Too many signatures is counted before each is read.
        let mut v = json();
        let s = v["policies"][0]["signatures"][0].clone();
        let many: Vec<serde_json::Value> = (0..=MAX_SIGNATURES_PER_POLICY)
            .map(|i| {
                let mut s = s.clone();
                s["admin"] = format!("a{i}").into();
                s
            })
            .collect();
        v["policies"][0]["signatures"] = many.into();
        assert!(refusal(&v).contains("has 65 signatures, at most 64"));
    }

    #[test]
    fn not_json_and_oversized_input_are_refused() {
        let err = Bundle::parse(b"version = 1\n").unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        let err = Bundle::parse(b"[1, 2]").unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        let bytes = bundle().to_json();
        let len = bytes.len() as u64;
        let err = Bundle::parse_within(&bytes, len - 1, MAX_RECORD_BYTES).unwrap_err();
        assert_eq!(err.code(), "audit_bundle_too_large");
        let want = format!(
            "the bundle is {len} bytes; a bundle is at most {} bytes",
            len - 1
        );
        assert_eq!(err.to_string(), want);
        assert!(Bundle::parse_within(&bytes, len, MAX_RECORD_BYTES).is_ok());
        // A record over the bound is refused by its length, before it is decoded: record 4
        // holds 3 + 32 bytes.
        let err = Bundle::parse_within(&bytes, len, 34).unwrap_err();
        assert!(
            err.to_string()
                .contains("record 4 (entry 1): more than 34 bytes"),
            "{err}"
        );
        assert!(Bundle::parse_within(&bytes, len, 35).is_ok());
    }
}
