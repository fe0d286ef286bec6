//! Helpers shared by unit tests.

use tron_proto::Address;

/// A mainnet address whose 20 account bytes are all `b`.
pub(crate) fn addr(b: u8) -> Address {
    let mut raw = [b; 21];
    raw[0] = 0x41;
    match Address::from_bytes(&raw) {
        Ok(a) => a,
        Err(e) => panic!("0x41 prefix makes a valid address: {e}"),
    }
}

/// An `ssh-ed25519` public key line whose 32 key bytes decode to no point on the curve: it
/// parses as an OpenSSH key but could never verify a signature.
pub(crate) fn off_curve_ed25519_line() -> String {
    let Some(bytes) = (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
    else {
        panic!("about half of all encodings are off the curve");
    };
    let data = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(bytes));
    match ssh_key::PublicKey::new(data, "off curve").to_openssh() {
        Ok(line) => line,
        Err(e) => panic!("any 32 bytes encode as a key line: {e}"),
    }
}
