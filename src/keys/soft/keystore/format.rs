//! The byte layout of a keystore file, versions 1 and 2 (docs/KEYSTORE.md is the normative
//! text). Version 2 adds a second record list, the HD account seeds, after the keys; a file
//! without HD accounts is still written as version 1, so older readers keep reading it.
//!
//! Parsing checks everything that can be checked without the passphrase, in an order that
//! gives the most specific error: magic, version, length, header checksum, algorithms,
//! parameters, then the exact file length.

use sha2::{Digest, Sha256};

use super::crypto::{KdfParams, CHECK_LEN, NONCE_LEN, SALT_LEN, TAG_LEN};
use super::crypto::{MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST};
use super::error::KeystoreError;

pub const MAGIC: &[u8; 6] = b"TRONKS";
/// Keys only.
pub const VERSION: u16 = 1;
/// Keys, then HD account seeds.
pub const VERSION_HD: u16 = 2;
pub const KDF_ARGON2ID_V13: u8 = 1;
pub const AEAD_XCHACHA20_POLY1305: u8 = 1;

const OFF_VERSION: usize = 6;
const OFF_KDF: usize = 8;
const OFF_AEAD: usize = 9;
const OFF_RESERVED: usize = 10;
const OFF_M_COST: usize = 12;
const OFF_T_COST: usize = 16;
const OFF_P_COST: usize = 20;
const OFF_SALT: usize = 24;
const OFF_NONCE: usize = OFF_SALT + SALT_LEN; // 56
const OFF_CT_LEN: usize = OFF_NONCE + NONCE_LEN; // 80
const OFF_CHECK: usize = OFF_CT_LEN + 4; // 84
const OFF_CHECKSUM: usize = OFF_CHECK + CHECK_LEN; // 116
const CHECKSUM_LEN: usize = 16;
/// Bytes before the ciphertext; all of them are the AEAD associated data.
pub const HEADER_LEN: usize = OFF_CHECKSUM + CHECKSUM_LEN; // 132

/// Most keys one file may hold; bounds allocation while parsing.
pub const MAX_KEYS: usize = 1 << 20;
pub const MAX_LABEL_LEN: usize = 128;
/// secret (32) + created_at (8) + label length (1) + at least one label byte.
const MIN_ENTRY_LEN: usize = 32 + 8 + 1 + 1;

/// What the header says, after every passphrase-free check passed.
#[derive(Debug, Clone)]
pub struct Header {
    /// [`VERSION`] or [`VERSION_HD`]: which record lists the plaintext holds.
    pub version: u16,
    pub params: KdfParams,
    pub salt: [u8; SALT_LEN],
    pub nonce: [u8; NONCE_LEN],
    pub ct_len: u32,
    pub check: [u8; CHECK_LEN],
}

fn be_u16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

fn be_u32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn checksum(prefix: &[u8]) -> [u8; CHECKSUM_LEN] {
    let d = Sha256::digest(prefix);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&d[..CHECKSUM_LEN]);
    out
}

fn truncated(len: usize, needed: usize) -> KeystoreError {
    KeystoreError::Truncated {
        len: len as u64,
        needed: needed as u64,
    }
}

impl Header {
    /// Serializes the 132-byte header (checksum included).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..6].copy_from_slice(MAGIC);
        h[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&self.version.to_be_bytes());
        h[OFF_KDF] = KDF_ARGON2ID_V13;
        h[OFF_AEAD] = AEAD_XCHACHA20_POLY1305;
        h[OFF_M_COST..OFF_M_COST + 4].copy_from_slice(&self.params.m_cost_kib.to_be_bytes());
        h[OFF_T_COST..OFF_T_COST + 4].copy_from_slice(&self.params.t_cost.to_be_bytes());
        h[OFF_P_COST..OFF_P_COST + 4].copy_from_slice(&self.params.p_cost.to_be_bytes());
        h[OFF_SALT..OFF_NONCE].copy_from_slice(&self.salt);
        h[OFF_NONCE..OFF_CT_LEN].copy_from_slice(&self.nonce);
        h[OFF_CT_LEN..OFF_CHECK].copy_from_slice(&self.ct_len.to_be_bytes());
        h[OFF_CHECK..OFF_CHECKSUM].copy_from_slice(&self.check);
        let sum = checksum(&h[..OFF_CHECKSUM]);
        h[OFF_CHECKSUM..].copy_from_slice(&sum);
        h
    }

    /// Validates `file` up to the point where the passphrase is needed. Returns the header
    /// and the ciphertext with its tag split off.
    pub fn parse(file: &[u8]) -> Result<(Header, &[u8], [u8; TAG_LEN]), KeystoreError> {
        let len = file.len();
        let magic_seen = len.min(MAGIC.len());
        if file[..magic_seen] != MAGIC[..magic_seen] {
            return Err(KeystoreError::BadMagic);
        }
        if len < OFF_VERSION + 2 {
            return Err(truncated(len, HEADER_LEN));
        }
        let version = be_u16(file, OFF_VERSION);
        if version != VERSION && version != VERSION_HD {
            return Err(KeystoreError::UnsupportedVersion(version));
        }
        if len < HEADER_LEN {
            return Err(truncated(len, HEADER_LEN));
        }
        let h = &file[..HEADER_LEN];
        if checksum(&h[..OFF_CHECKSUM])[..] != h[OFF_CHECKSUM..] {
            return Err(KeystoreError::HeaderCorrupt);
        }
        if h[OFF_KDF] != KDF_ARGON2ID_V13 {
            return Err(KeystoreError::MalformedHeader("unknown KDF algorithm"));
        }
        if h[OFF_AEAD] != AEAD_XCHACHA20_POLY1305 {
            return Err(KeystoreError::MalformedHeader("unknown AEAD algorithm"));
        }
        if h[OFF_RESERVED..OFF_M_COST] != [0, 0] {
            return Err(KeystoreError::MalformedHeader(
                "reserved bytes are not zero",
            ));
        }
        let params = KdfParams {
            m_cost_kib: be_u32(h, OFF_M_COST),
            t_cost: be_u32(h, OFF_T_COST),
            p_cost: be_u32(h, OFF_P_COST),
        };
        if params.m_cost_kib > MAX_M_COST_KIB
            || params.t_cost > MAX_T_COST
            || params.p_cost > MAX_P_COST
        {
            return Err(KeystoreError::MalformedHeader(
                "KDF parameters exceed the accepted maximum",
            ));
        }
        params.validate()?;
        let ct_len = be_u32(h, OFF_CT_LEN);
        let ct_total = ct_len as usize;
        if ct_total < TAG_LEN + 4 {
            return Err(KeystoreError::MalformedHeader(
                "ciphertext length is too short",
            ));
        }
        let needed = HEADER_LEN + ct_total;
        if len < needed {
            return Err(truncated(len, needed));
        }
        if len > needed {
            return Err(KeystoreError::TrailingData((len - needed) as u64));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&h[OFF_SALT..OFF_NONCE]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&h[OFF_NONCE..OFF_CT_LEN]);
        let mut check = [0u8; CHECK_LEN];
        check.copy_from_slice(&h[OFF_CHECK..OFF_CHECKSUM]);
        let body = &file[HEADER_LEN..needed - TAG_LEN];
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&file[needed - TAG_LEN..needed]);
        Ok((
            Header {
                version,
                params,
                salt,
                nonce,
                ct_len,
                check,
            },
            body,
            tag,
        ))
    }
}

/// One record inside the decrypted blob (a key's scalar, or an HD account's 32-byte seed).
/// `secret` borrows the locked plaintext buffer.
pub struct Entry<'a> {
    pub secret: &'a [u8; 32],
    pub created_at: u64,
    pub label: &'a str,
}

/// Labels are shown to operators and used as identifiers in configs.
pub fn validate_label(label: &str) -> Result<(), KeystoreError> {
    if label.is_empty() {
        return Err(KeystoreError::InvalidLabel("empty"));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(KeystoreError::InvalidLabel("longer than 128 bytes"));
    }
    if label.chars().any(char::is_control) {
        return Err(KeystoreError::InvalidLabel("contains control characters"));
    }
    if label.trim() != label {
        return Err(KeystoreError::InvalidLabel(
            "leading or trailing whitespace",
        ));
    }
    Ok(())
}

/// Exact size of one record list with these labels.
pub fn list_len<'a>(labels: impl Iterator<Item = &'a str>) -> usize {
    4 + labels.map(|l| 32 + 8 + 1 + l.len()).sum::<usize>()
}

/// Appends one record. The caller writes the secret straight into `buf`'s locked memory
/// through `write_secret`, so no other copy is made here.
pub fn push_entry(
    buf: &mut Vec<u8>,
    write_secret: impl FnOnce(&mut [u8; 32]),
    created_at: u64,
    label: &str,
) {
    let at = buf.len();
    buf.resize(at + 32, 0);
    if let Some(slot) = buf[at..].first_chunk_mut::<32>() {
        write_secret(slot);
    }
    buf.extend_from_slice(&created_at.to_be_bytes());
    // validate_label bounds the length to 128, which fits in a byte.
    buf.push(label.len() as u8);
    buf.extend_from_slice(label.as_bytes());
}

/// The record lists of a decrypted blob: the keys, and (version 2) the HD account seeds.
pub struct Lists<'a> {
    pub keys: Vec<Entry<'a>>,
    pub hd: Vec<Entry<'a>>,
}

/// Walks the decrypted blob of a file of `version`. Every structural problem is
/// `MalformedPlaintext`; a file that passed AEAD but fails here was written by a broken or
/// foreign writer.
pub fn parse_lists(pt: &[u8], version: u16) -> Result<Lists<'_>, KeystoreError> {
    let (keys, rest) = parse_list(pt)?;
    let (hd, rest) = if version == VERSION_HD {
        parse_list(rest)?
    } else {
        (Vec::new(), rest)
    };
    if !rest.is_empty() {
        return Err(KeystoreError::MalformedPlaintext(
            "bytes after the last record",
        ));
    }
    Ok(Lists { keys, hd })
}

/// One record list: a count, then the records. Returns what follows it.
fn parse_list(pt: &[u8]) -> Result<(Vec<Entry<'_>>, &[u8]), KeystoreError> {
    let bad = KeystoreError::MalformedPlaintext;
    if pt.len() < 4 {
        return Err(bad("missing key count"));
    }
    let count = be_u32(pt, 0) as usize;
    if count > MAX_KEYS {
        return Err(bad("key count exceeds the maximum"));
    }
    if count.saturating_mul(MIN_ENTRY_LEN) > pt.len() - 4 {
        return Err(bad("key count larger than the data"));
    }
    let mut out = Vec::with_capacity(count);
    let mut rest = &pt[4..];
    for _ in 0..count {
        let (secret, tail) = rest
            .split_first_chunk::<32>()
            .ok_or(bad("record cut short"))?;
        let (created, tail) = tail
            .split_first_chunk::<8>()
            .ok_or(bad("record cut short"))?;
        let (&label_len, tail) = tail.split_first().ok_or(bad("record cut short"))?;
        let label_len = label_len as usize;
        if tail.len() < label_len {
            return Err(bad("record cut short"));
        }
        let (label, tail) = tail.split_at(label_len);
        let label = std::str::from_utf8(label).map_err(|_| bad("label is not UTF-8"))?;
        validate_label(label).map_err(|_| bad("label is not acceptable"))?;
        out.push(Entry {
            secret,
            created_at: u64::from_be_bytes(*created),
            label,
        });
        rest = tail;
    }
    Ok((out, rest))
}
