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
