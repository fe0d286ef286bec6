use std::path::{Path, PathBuf};

use secrecy::{SecretBox, SecretString};
use sha2::{Digest, Sha256};

use super::crypto::UnlockKey;
use super::format::Header;
use super::*;

const VECTOR_HEX: &str = "279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e";
const VECTOR_ADDR: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
const N_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

fn pass(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn secret(hex_str: &str) -> SecretBox<[u8; 32]> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut b).unwrap();
    SecretBox::new(Box::new(b))
}

fn cheap() -> KdfParams {
    KdfParams::insecure_for_tests()
}

fn code(r: Result<Keystore, KeystoreError>) -> &'static str {
    r.unwrap_err().code()
}

/// A saved keystore with a few keys, its bytes, and the directory holding it.
fn fixture() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.tks");
    let mut ks = Keystore::new(cheap());
    ks.import("vector", secret(VECTOR_HEX)).unwrap();
    for i in 0..3 {
        ks.generate(&format!("hot-{i}")).unwrap();
    }
    ks.save(&path, &pass("pw"), false).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (dir, path, bytes)
}

fn open(bytes: &[u8]) -> Result<Keystore, KeystoreError> {
    Keystore::open_bytes(bytes, &pass("pw"))
}

/// Re-seals the header checksum after a deliberate edit, as a malicious writer would.
fn rechecksum(bytes: &mut [u8]) {
    let sum = Sha256::digest(&bytes[..116]);
    bytes[116..132].copy_from_slice(&sum[..16]);
}

#[test]
fn known_vector_import_and_round_trip() {
    let (_dir, path, _) = fixture();
    let ks = Keystore::open(&path, &pass("pw")).unwrap();
    let (info, key) = ks.signing_keys().next().unwrap();
    assert_eq!(info.label, "vector");
    assert_eq!(info.address.to_base58(), VECTOR_ADDR);
    assert_eq!(key.address().to_base58(), VECTOR_ADDR);
    let addr: Address = VECTOR_ADDR.parse().unwrap();
    assert!(ks.get(&addr).is_some());
}

#[test]
fn round_trip_many_keys() {
    // Above PARALLEL_MIN so the threaded loader is exercised.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.tks");
    let mut ks = Keystore::new(cheap());
    for i in 0..600 {
        ks.generate(&format!("key-{i:04}")).unwrap();
    }
    ks.import("vector", secret(VECTOR_HEX)).unwrap();
    ks.save(&path, &pass("pw"), false).unwrap();

    let back = Keystore::open(&path, &pass("pw")).unwrap();
    assert_eq!(back.len(), 601);
    assert_eq!(back.list(), ks.list());
    assert_eq!(back.params(), cheap());
    let txid = tron_proto::txid(b"round trip");
    for ((a_info, a_key), (b_info, b_key)) in ks.signing_keys().zip(back.signing_keys()) {
        assert_eq!(a_info, b_info);
        assert_eq!(b_key.address(), b_info.address);
        assert_eq!(
            a_key.sign_txid(&txid).unwrap(),
            b_key.sign_txid(&txid).unwrap()
        );
    }
    // Keys added after loading go into new chunks and stay reachable.
    let mut back = back;
    let extra = back.generate("after-load").unwrap();
    assert_eq!(back.get(&extra).unwrap().0.label, "after-load");
    assert_eq!(back.signing_keys().count(), 602);
}

#[test]
fn memory_is_locked_when_the_limit_allows() {
    let (_dir, path, _) = fixture();
    let ks = Keystore::open(&path, &pass("pw")).unwrap();
    let limit_ok = std::process::Command::new("sh")
        .args(["-c", "ulimit -l"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "unlimited")
        .unwrap_or(false);
    eprintln!(
        "SoftKey is {} bytes; keys locked: {}",
        std::mem::size_of::<SoftKey>(),
        ks.memory_locked()
    );
    if limit_ok {
        assert!(ks.memory_locked());
    }
}

#[test]
fn empty_keystore_round_trips() {
    let ks = Keystore::new(cheap());
    let bytes = ks.seal(&pass("pw")).unwrap();
    assert!(open(&bytes).unwrap().is_empty());
}

#[test]
fn each_save_uses_fresh_salt_and_nonce() {
    let mut ks = Keystore::new(cheap());
    ks.generate("a").unwrap();
    let a = ks.seal(&pass("pw")).unwrap();
    let b = ks.seal(&pass("pw")).unwrap();
    assert_ne!(a[24..80], b[24..80]);
}

/// Issue 11 item 11: a keystore that group or others can read is refused before it is
/// decrypted, naming the mode; the owner-only file the signer writes opens.
#[test]
fn keystore_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, _) = fixture();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "saved owner-only");
    assert!(Keystore::open(&path, &pass("pw")).is_ok());
    for bad in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        let e = Keystore::open(&path, &pass("pw")).unwrap_err();
        assert_eq!(e.code(), "keystore_too_open", "{bad:o}");
        assert!(e.to_string().contains(&format!("{bad:04o}")), "{e}");
    }
}

#[test]
fn wrong_passphrase() {
    let (_dir, path, _) = fixture();
    let r = Keystore::open(&path, &pass("Pw"));
    assert_eq!(code(r), "keystore_wrong_passphrase");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = Keystore::open(&dir.path().join("none"), &pass("pw"));
    assert_eq!(code(r), "keystore_not_found");
    // A directory is unreadable as a file: an I/O error, not "not found".
    let r = Keystore::open(dir.path(), &pass("pw"));
    assert_eq!(code(r), "keystore_io");
}

#[test]
fn truncated_at_several_lengths() {
    let (_dir, _, bytes) = fixture();
    let n = bytes.len();
    for cut in [
        0,
        1,
        5,
        6,
        7,
        8,
        40,
        115,
        131,
        132,
        133,
        150,
        n - 17,
        n - 16,
        n - 1,
    ] {
        let r = open(&bytes[..cut]);
        assert_eq!(code(r), "keystore_truncated", "cut at {cut}");
    }
}

#[test]
fn trailing_bytes_refused() {
    let (_dir, _, mut bytes) = fixture();
    bytes.push(0);
    assert_eq!(code(open(&bytes)), "keystore_trailing_data");
}

#[test]
fn one_flipped_bit_anywhere_is_a_specific_error() {
    let (_dir, _, bytes) = fixture();
    let n = bytes.len();
    let cases: &[(usize, &str)] = &[
        (0, "keystore_bad_magic"),
        (5, "keystore_bad_magic"),
        (7, "keystore_unsupported_version"),
        (8, "keystore_header_corrupt"),   // kdf id
        (13, "keystore_header_corrupt"),  // m_cost
        (17, "keystore_header_corrupt"),  // t_cost
        (30, "keystore_header_corrupt"),  // salt
        (60, "keystore_header_corrupt"),  // nonce
        (82, "keystore_header_corrupt"),  // ciphertext length
        (90, "keystore_header_corrupt"),  // passphrase check value
        (120, "keystore_header_corrupt"), // the checksum itself
        (132, "keystore_tampered"),       // first ciphertext byte
        (n / 2 + 66, "keystore_tampered"),
        (n - 17, "keystore_tampered"), // last ciphertext byte
        (n - 16, "keystore_tampered"), // tag
        (n - 1, "keystore_tampered"),
    ];
    for &(at, want) in cases {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[at] ^= bit;
            assert_eq!(code(open(&b)), want, "byte {at} bit {bit:#x}");
        }
    }
}

#[test]
fn rewritten_header_with_valid_checksum() {
    let (_dir, _, bytes) = fixture();
    // Nonce changed and checksum fixed up: the passphrase check passes, AEAD catches it.
    let mut b = bytes.clone();
    b[60] ^= 1;
    rechecksum(&mut b);
    assert_eq!(code(open(&b)), "keystore_tampered");
    // Salt or cost changed: a different key comes out, indistinguishable from a wrong
    // passphrase (documented in docs/KEYSTORE.md).
    for at in [30, 15] {
        let mut b = bytes.clone();
        b[at] ^= 1;
        rechecksum(&mut b);
        assert_eq!(code(open(&b)), "keystore_wrong_passphrase", "byte {at}");
    }
    // Check value swapped for another file's: refused as wrong passphrase, never decrypted.
    let mut b = bytes.clone();
    b[84..116].copy_from_slice(&[0x55; 32]);
    rechecksum(&mut b);
    assert_eq!(code(open(&b)), "keystore_wrong_passphrase");
}

#[test]
fn header_fields_validated_before_kdf() {
    let (_dir, _, bytes) = fixture();
    type Edit = fn(&mut Vec<u8>);
    let edits: &[(&str, Edit)] = &[
        ("unknown kdf", |b| b[8] = 2),
        ("unknown aead", |b| b[9] = 7),
        ("reserved", |b| b[11] = 1),
        ("m_cost too large", |b| {
            b[12..16].copy_from_slice(&(MAX_M_COST_KIB + 1).to_be_bytes())
        }),
        ("t_cost too large", |b| {
            b[16..20].copy_from_slice(&1000u32.to_be_bytes())
        }),
        ("p_cost zero", |b| {
            b[20..24].copy_from_slice(&0u32.to_be_bytes())
        }),
    ];
    for (what, edit) in edits {
        let mut b = bytes.clone();
        edit(&mut b);
        rechecksum(&mut b);
        let c = code(open(&b));
        assert!(
            c == "keystore_malformed_header" || c == "keystore_invalid_kdf_params",
            "{what}: {c}"
        );
    }
    let mut b = bytes.clone();
    b[80..84].copy_from_slice(&3u32.to_be_bytes());
    rechecksum(&mut b);
    assert_eq!(code(open(&b)), "keystore_malformed_header");
}

#[test]
fn bad_magic_and_unsupported_version() {
    assert_eq!(
        code(open(b"hello, this is not a keystore")),
        "keystore_bad_magic"
    );
    assert_eq!(code(open(b"{\"crypto\": {}}")), "keystore_bad_magic");
    assert_eq!(code(open(b"TRONKX")), "keystore_bad_magic");
    let (_dir, _, bytes) = fixture();
    let mut b = bytes.clone();
    b[6..8].copy_from_slice(&3u16.to_be_bytes());
    match open(&b) {
        Err(KeystoreError::UnsupportedVersion(3)) => {}
        other => panic!("expected version 3 refusal, got {other:?}"),
    }
}

#[test]
fn file_layout_matches_the_documentation() {
    let mut ks = Keystore::new(KdfParams {
        m_cost_kib: 16,
        t_cost: 2,
        p_cost: 1,
    });
    ks.import("ab", secret(VECTOR_HEX)).unwrap();
    let b = ks.seal(&pass("pw")).unwrap();
    assert_eq!(&b[..6], b"TRONKS");
    assert_eq!(b[6..8], [0, 1]);
    assert_eq!(b[8..12], [1, 1, 0, 0]);
    assert_eq!(b[12..16], 16u32.to_be_bytes());
    assert_eq!(b[16..20], 2u32.to_be_bytes());
    assert_eq!(b[20..24], 1u32.to_be_bytes());
    let pt_len = 4 + 32 + 8 + 1 + 2;
    assert_eq!(b[80..84], ((pt_len + 16) as u32).to_be_bytes());
    assert_eq!(b.len(), 132 + pt_len + 16);
    assert_eq!(b[116..132], Sha256::digest(&b[..116])[..16]);
    // The documented derivation reproduces the check value and decrypts the blob.
    let (header, body, tag) = Header::parse(&b).unwrap();
    let key = UnlockKey::derive(&pass("pw"), &header.salt, &header.params).unwrap();
    assert_eq!(key.check_value()[..], b[84..116]);
    let mut pt = body.to_vec();
    key.open(&header.nonce, &b[..132], &mut pt, &tag).unwrap();
    assert_eq!(pt[..4], [0, 0, 0, 1]);
    assert_eq!(hex::encode(&pt[4..36]), VECTOR_HEX);
    assert_eq!(pt[44], 2);
    assert_eq!(&pt[45..], b"ab");
}

/// Seals an arbitrary plaintext with a valid header, to reach the plaintext parser.
fn seal_raw(plaintext: &[u8]) -> Vec<u8> {
    seal_raw_as(plaintext, VERSION)
}

/// [`seal_raw`] under a header of `version`.
fn seal_raw_as(plaintext: &[u8], version: u16) -> Vec<u8> {
    let salt = [7u8; 32];
    let nonce = [9u8; 24];
    let key = UnlockKey::derive(&pass("pw"), &salt, &cheap()).unwrap();
    let header = Header {
        version,
        params: cheap(),
        salt,
        nonce,
        ct_len: (plaintext.len() + 16) as u32,
        check: *key.check_value(),
    }
    .encode();
    let mut buf = plaintext.to_vec();
    let tag = key.seal(&nonce, &header, &mut buf).unwrap();
    [&header[..], &buf, &tag].concat()
}

fn record(secret_hex: &str, label: &str) -> Vec<u8> {
    let mut r = hex::decode(secret_hex).unwrap();
    r.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    r.push(label.len() as u8);
    r.extend_from_slice(label.as_bytes());
    r
}

#[test]
fn malformed_plaintext_refused() {
    let one = "00".repeat(31) + "01";
    let two = "00".repeat(31) + "02";
    let good = [vec![0, 0, 0, 2], record(&one, "a"), record(&two, "b")].concat();
    assert_eq!(seal_raw(&good).len(), 132 + good.len() + 16);
    assert_eq!(open(&seal_raw(&good)).unwrap().len(), 2);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "count too high",
            [vec![0, 0, 0, 3], record(&one, "a"), record(&two, "b")].concat(),
        ),
        (
            "count too low",
            [vec![0, 0, 0, 1], record(&one, "a"), record(&two, "b")].concat(),
        ),
        (
            "duplicate key",
            [vec![0, 0, 0, 2], record(&one, "a"), record(&one, "b")].concat(),
        ),
        (
            "duplicate label",
            [vec![0, 0, 0, 2], record(&one, "a"), record(&two, "a")].concat(),
        ),
        (
            "zero scalar",
            [vec![0, 0, 0, 1], record(&"00".repeat(32), "a")].concat(),
        ),
        (
            "scalar = n",
            [vec![0, 0, 0, 1], record(N_HEX, "a")].concat(),
        ),
        ("empty label", [vec![0, 0, 0, 1], record(&one, "")].concat()),
        (
            "control char label",
            [vec![0, 0, 0, 1], record(&one, "a\nb")].concat(),
        ),
        ("label not utf8", {
            let mut r = [vec![0, 0, 0, 1], record(&one, "ab")].concat();
            let n = r.len();
            r[n - 1] = 0xff;
            r
        }),
        ("label cut short", {
            let mut r = [vec![0, 0, 0, 1], record(&one, "abc")].concat();
            r.pop();
            r
        }),
    ];
    for (what, pt) in cases {
        assert_eq!(
            code(open(&seal_raw(&pt))),
            "keystore_malformed_plaintext",
            "{what}"
        );
    }
}

#[test]
fn no_overwrite_without_force() {
    let (_dir, path, before) = fixture();
    let ks = Keystore::new(cheap());
    let e = ks.save(&path, &pass("pw"), false).unwrap_err();
    assert_eq!(e.code(), "keystore_already_exists");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    ks.save(&path, &pass("pw"), true).unwrap();
    assert!(open(&std::fs::read(&path).unwrap()).unwrap().is_empty());
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn interrupted_save_leaves_the_old_file() {
    let (dir, path, before) = fixture();
    let mut ks = Keystore::open(&path, &pass("pw")).unwrap();
    ks.generate("new").unwrap();
    let crash = || Err(std::io::Error::other("simulated crash before rename"));
    let e = ks
        .save_with_hook(&path, &pass("pw"), true, &crash)
        .unwrap_err();
    assert_eq!(e.code(), "keystore_io");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(dir_entries(dir.path()), vec!["keys.tks".to_string()]);
    // The same save without the crash goes through.
    ks.save(&path, &pass("pw"), true).unwrap();
    assert_eq!(Keystore::open(&path, &pass("pw")).unwrap().len(), 5);
    assert_eq!(dir_entries(dir.path()), vec!["keys.tks".to_string()]);
}

#[cfg(unix)]
#[test]
fn read_only_directory_fails_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path, before) = fixture();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores directory permissions; the check is meaningful only without it.
    let privileged = std::fs::write(dir.path().join("probe"), b"x").is_ok();
    if !privileged {
        let ks = Keystore::new(cheap());
        let e = ks.save(&path, &pass("pw"), true).unwrap_err();
        assert_eq!(e.code(), "keystore_io");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(unix)]
#[test]
fn saved_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, _) = fixture();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0);
}

#[test]
fn invalid_scalars_refused_on_import() {
    let n_plus_1 = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364142";
    let mut ks = Keystore::new(cheap());
    for bad in [&"00".repeat(32), N_HEX, n_plus_1, &"ff".repeat(32)] {
        let e = ks.import("x", secret(bad)).unwrap_err();
        assert_eq!(e.code(), "keystore_invalid_key", "{bad}");
    }
    // n - 1 is the largest valid scalar.
    let n_minus_1 = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140";
    ks.import("x", secret(n_minus_1)).unwrap();
}

#[test]
fn duplicates_and_bad_labels_refused() {
    let mut ks = Keystore::new(cheap());
    ks.import("first", secret(VECTOR_HEX)).unwrap();
    let e = ks.import("second", secret(VECTOR_HEX)).unwrap_err();
    assert_eq!(e.code(), "keystore_duplicate_address");
    let e = ks.generate("first").unwrap_err();
    assert_eq!(e.code(), "keystore_duplicate_label");
    let e = ks
        .import("first", secret(&("00".repeat(31) + "05")))
        .unwrap_err();
    assert_eq!(e.code(), "keystore_duplicate_label");
    for bad in ["", "tab\there", " padded", &"x".repeat(129)] {
        let e = ks.generate(bad).unwrap_err();
        assert_eq!(e.code(), "keystore_invalid_label", "{bad:?}");
    }
    ks.generate(&"x".repeat(128)).unwrap();
    ks.generate("ünïcode label").unwrap();
    assert_eq!(ks.len(), 3);
}

#[test]
fn debug_output_has_no_secrets() {
    let mut ks = Keystore::new(cheap());
    ks.import("vector", secret(VECTOR_HEX)).unwrap();
    let bytes = ks.seal(&pass("pw")).unwrap();
    let sealed = SealedKeystore::parse(&bytes).unwrap();
    let key = sealed.derive_key(&pass("pw")).unwrap();
    let pt = sealed.decrypt(&key).unwrap();
    let texts = [
        format!("{ks:?}"),
        format!("{:?}", ks.list()),
        format!("{key:?}"),
        format!("{pt:?}"),
        format!("{:?}", ks.import("again", secret(VECTOR_HEX)).unwrap_err()),
    ];
    assert!(texts[0].contains(VECTOR_ADDR) && texts[0].contains("vector"));
    let upper = VECTOR_HEX.to_uppercase();
    for t in &texts {
        assert!(!t.contains(&VECTOR_HEX[..16]), "{t}");
        assert!(!t.contains(&upper[..16]), "{t}");
        assert!(!t.contains("pw\""), "{t}");
    }
}

#[test]
fn hd_accounts_round_trip_and_make_the_file_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks");
    let mut ks = Keystore::new(cheap());
    let key = ks.generate("payout").unwrap();
    ks.save(&path, &pass("pw"), false).unwrap();
    let v1 = std::fs::read(&path).unwrap();
    assert_eq!(
        &v1[6..8],
        &VERSION.to_be_bytes(),
        "no HD account: still version 1"
    );

    let xpub = ks.generate_hd("deposits").unwrap();
    assert!(xpub.starts_with("xpub"), "{xpub}");
    let e = ks.generate_hd("payout").unwrap_err();
    assert_eq!(
        e.code(),
        "keystore_duplicate_label",
        "labels are shared with keys"
    );
    let e = ks.generate("deposits").unwrap_err();
    assert_eq!(e.code(), "keystore_duplicate_label");
    ks.save(&path, &pass("pw"), true).unwrap();
    let v2 = std::fs::read(&path).unwrap();
    assert_eq!(&v2[6..8], &VERSION_HD.to_be_bytes());

    let back = Keystore::open(&path, &pass("pw")).unwrap();
    assert!(back.get(&key).is_some());
    let hd = back.hd_list();
    assert_eq!(hd.len(), 1);
    assert_eq!(
        (hd[0].label.as_str(), hd[0].xpub.as_str()),
        ("deposits", xpub.as_str())
    );
    let (_, account) = back.hd_accounts().next().unwrap();
    let (_, before) = ks.hd_accounts().next().unwrap();
    for i in [0u32, 5, 99_999] {
        assert_eq!(
            account.derive(i).unwrap().address(),
            before.derive(i).unwrap().address()
        );
    }
    let shown = format!("{back:?}");
    assert!(
        shown.contains("deposits") && shown.contains(&xpub),
        "{shown}"
    );
}

#[test]
fn a_version_2_plaintext_must_hold_both_lists() {
    // Version 2 with only the key list: the HD list's count is missing.
    let keys_only = 0u32.to_be_bytes();
    let e = Keystore::open_bytes(&seal_raw_as(&keys_only, VERSION_HD), &pass("pw")).unwrap_err();
    assert!(
        matches!(e, KeystoreError::MalformedPlaintext("missing key count")),
        "{e:?}"
    );
    // Version 1 with a second list after the keys: bytes after the last record.
    let two_lists = [0u32.to_be_bytes(), 0u32.to_be_bytes()].concat();
    let e = Keystore::open_bytes(&seal_raw_as(&two_lists, VERSION), &pass("pw")).unwrap_err();
    assert!(
        matches!(
            e,
            KeystoreError::MalformedPlaintext("bytes after the last record")
        ),
        "{e:?}"
    );
    // The same HD seed twice.
    let mut pt = 0u32.to_be_bytes().to_vec();
    pt.extend_from_slice(&2u32.to_be_bytes());
    for label in ["a", "b"] {
        pt.extend_from_slice(&[3u8; 32]);
        pt.extend_from_slice(&0u64.to_be_bytes());
        pt.push(1);
        pt.extend_from_slice(label.as_bytes());
    }
    let e = Keystore::open_bytes(&seal_raw_as(&pt, VERSION_HD), &pass("pw")).unwrap_err();
    assert!(
        matches!(
            e,
            KeystoreError::MalformedPlaintext("duplicate HD account or label")
        ),
        "{e:?}"
    );
    // Another version is still refused by number.
    let e = Keystore::open_bytes(&seal_raw_as(&keys_only, 3), &pass("pw")).unwrap_err();
    assert_eq!(e.code(), "keystore_unsupported_version");
}
