//! Fuzzes the keystore file format without the cost of the KDF: the header parser
//! (`format::Header::parse`, what `SealedKeystore::parse` runs before any passphrase is
//! needed) and the record-list parser of a decrypted blob (`format::parse_lists`).
//!
//! The first byte picks the mode: 0 the file as given, 1 the file with its header checksum
//! made right (so mutations reach the checks behind it), 2 and 3 a decrypted blob of a
//! version 1 or version 2 file. Files whose header passes and whose argon2id cost is the
//! smallest the format allows are opened for real with the passphrase `fuzz` (the seeds are
//! made with it), so the AEAD and key building run too.
//!
//! Properties: a refused file has a `keystore_` code; an accepted header re-encodes to the
//! exact bytes it was read from and accounts for every byte of the file; an accepted record
//! list re-serializes to the exact blob; a keystore that opens seals and reopens to the same
//! keys and HD accounts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tron_signer::keystore::format::{self, Header, Lists};
use tron_signer::keystore::{Keystore, SealedKeystore, HEADER_LEN, VERSION, VERSION_HD};

/// The header checksum is its last 16 bytes: truncated sha256 of the bytes before
/// (docs/KEYSTORE.md).
const CHECKSUM_LEN: usize = 16;
const TAG_LEN: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode & 3 {
        0 => file(rest.to_vec()),
        1 => {
            let mut f = rest.to_vec();
            if f.len() >= HEADER_LEN {
                let at = HEADER_LEN - CHECKSUM_LEN;
                let sum = Sha256::digest(&f[..at]);
                f[at..HEADER_LEN].copy_from_slice(&sum[..CHECKSUM_LEN]);
            }
            file(f)
        }
        2 => lists(rest, VERSION),
        _ => lists(rest, VERSION_HD),
    }
});

fn file(f: Vec<u8>) {
    match Header::parse(&f) {
        Ok((header, body, tag)) => {
            assert_eq!(
                header.encode()[..],
                f[..HEADER_LEN],
                "header does not re-encode"
            );
            assert_eq!(HEADER_LEN + body.len() + tag.len(), f.len());
            assert_eq!(header.ct_len as usize, body.len() + TAG_LEN);
            assert!(header.version == VERSION || header.version == VERSION_HD);
            assert!(header.params.validate().is_ok(), "{:?}", header.params);
            let sealed = match SealedKeystore::parse(&f) {
                Ok(s) => s,
                Err(e) => panic!("header accepted, file refused: {e}"),
            };
            assert_eq!(sealed.params(), header.params);
            let p = header.params;
            if p.m_cost_kib <= 64 && p.t_cost <= 2 && p.p_cost <= 1 {
                open(&f);
            }
        }
        Err(e) => {
            assert!(e.code().starts_with("keystore_"), "{}", e.code());
            assert!(SealedKeystore::parse(&f).is_err());
        }
    }
}

fn open(f: &[u8]) {
    let pass = SecretString::from("fuzz".to_owned());
    match Keystore::open_bytes(f, &pass) {
        Ok(ks) => {
            let sealed = match ks.seal(&pass) {
                Ok(s) => s,
                Err(e) => panic!("an opened keystore does not seal: {e}"),
            };
            match Keystore::open_bytes(&sealed, &pass) {
                Ok(back) => {
                    assert_eq!(back.list(), ks.list());
                    assert_eq!(back.hd_list(), ks.hd_list());
                }
                Err(e) => panic!("a sealed keystore does not reopen: {e}"),
            }
        }
        Err(e) => assert!(e.code().starts_with("keystore_"), "{}", e.code()),
    }
}

fn lists(pt: &[u8], version: u16) {
    match format::parse_lists(pt, version) {
        Ok(Lists { keys, hd }) => {
            assert!(version == VERSION_HD || hd.is_empty());
            let mut out = Vec::with_capacity(pt.len());
            let mut put = |list: &[format::Entry<'_>]| {
                out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                for e in list {
                    assert!(format::validate_label(e.label).is_ok(), "{:?}", e.label);
                    format::push_entry(&mut out, |s| *s = *e.secret, e.created_at, e.label);
                }
            };
            put(&keys);
            if version == VERSION_HD {
                put(&hd);
            }
            assert_eq!(out, pt, "record lists do not re-serialize to the blob");
            let labels = keys.iter().map(|e| e.label);
            let mut len = format::list_len(labels);
            if version == VERSION_HD {
                len += format::list_len(hd.iter().map(|e| e.label));
            }
            assert_eq!(len, pt.len());
        }
        Err(e) => assert_eq!(e.code(), "keystore_malformed_plaintext"),
    }
}
