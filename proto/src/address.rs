//! Tron addresses: 21 bytes `0x41 || keccak256(pubkey)[12..]`, shown as Base58Check (`T…`)
//! or hex (`41…`).

use std::fmt;
use std::str::FromStr;

use sha3::{Digest, Keccak256};

/// The mainnet/testnet address prefix byte.
pub const ADDRESS_PREFIX: u8 = 0x41;
/// Length of a binary address, prefix included.
pub const ADDRESS_LEN: usize = 21;
/// Characters of a Base58Check address: 21 bytes plus the 4-byte checksum always spell 34.
pub const BASE58_ADDRESS_LEN: usize = 34;
/// Hex digits of an address (21 bytes), not counting an optional `0x`.
pub const HEX_ADDRESS_LEN: usize = 2 * ADDRESS_LEN;
/// The longest text any address parser looks at, in characters: 42 hex digits after an
/// optional `0x`. Anything longer is refused by its length alone, before a character is
/// decoded (Base58 decoding is quadratic in the input, so an unbounded string would cost
/// unbounded CPU). Lengths are counted in characters, at most one past the limit.
pub const MAX_ADDRESS_TEXT_LEN: usize = HEX_ADDRESS_LEN + 2;

/// A Tron account or contract address; the prefix byte is always 0x41.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address([u8; ADDRESS_LEN]);

/// Why an address string or byte string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("invalid character {character:?} at position {index}")]
    BadCharacter { character: char, index: usize },
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("wrong length: {len} bytes, expected 21")]
    BadLength { len: usize },
    #[error("wrong prefix byte 0x{prefix:02x}, expected 0x41")]
    BadPrefix { prefix: u8 },
    #[error("empty address")]
    Empty,
    /// Longer than any spelling of an address; refused before decoding.
    #[error(
        "a text of {len} bytes, longer than a Tron address (34 Base58 characters, or 42 hex \
         digits after an optional 0x)"
    )]
    TooLong { len: usize },
}

impl AddressError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AddressError::BadCharacter { .. } => "address_bad_character",
            AddressError::BadChecksum => "address_bad_checksum",
            AddressError::BadLength { .. } => "address_bad_length",
            AddressError::BadPrefix { .. } => "address_bad_prefix",
            AddressError::Empty => "address_empty",
            AddressError::TooLong { .. } => "address_too_long",
        }
    }
}

impl Address {
    /// Accepts exactly 21 bytes starting with 0x41.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AddressError> {
        let arr: [u8; ADDRESS_LEN] = bytes
            .try_into()
            .map_err(|_| AddressError::BadLength { len: bytes.len() })?;
        if arr[0] != ADDRESS_PREFIX {
            return Err(AddressError::BadPrefix { prefix: arr[0] });
        }
        Ok(Address(arr))
    }

    /// Builds the address from the 20-byte account id (as in EVM ABI words).
    pub fn from_evm(body: [u8; 20]) -> Self {
        let mut a = [0u8; ADDRESS_LEN];
        a[0] = ADDRESS_PREFIX;
        a[1..].copy_from_slice(&body);
        Address(a)
    }

    /// Derives the address of an uncompressed SEC1 public key (65 bytes, `0x04 || x || y`).
    pub fn from_uncompressed_pubkey(point: &[u8; 65]) -> Self {
        let hash = Keccak256::digest(&point[1..]);
        let mut body = [0u8; 20];
        body.copy_from_slice(&hash[12..]);
        Address::from_evm(body)
    }

    /// Derives the address of a secp256k1 verifying key.
    pub fn from_verifying_key(key: &k256::ecdsa::VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        let mut bytes = [0u8; 65];
        bytes.copy_from_slice(point.as_bytes());
        Address::from_uncompressed_pubkey(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
        &self.0
    }

    /// The 20 bytes after the prefix, as they appear in TRC-20 ABI words.
    pub fn evm_bytes(&self) -> &[u8] {
        &self.0[1..]
    }

    /// Parses Base58Check (`T…`, 34 characters).
    ///
    /// Errors in this order: text longer than 34 bytes, characters, length, checksum, prefix.
    pub fn from_base58(s: &str) -> Result<Self, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        // Before any decoding: its cost grows with the square of the length.
        if longer_than(s, BASE58_ADDRESS_LEN) {
            return Err(AddressError::TooLong { len: s.len() });
        }
        let payload = match bs58::decode(s).with_check(None).into_vec() {
            Ok(payload) => payload,
            // Too short to hold a checksum at all.
            Err(bs58::decode::Error::NoChecksum) => return Err(AddressError::BadLength { len: 0 }),
            // A wrong length is reported as such, before the checksum it also fails: only
            // this error path decodes a second time, without the check, to learn it.
            Err(bs58::decode::Error::InvalidChecksum { .. }) => {
                let len = bs58::decode(s)
                    .into_vec()
                    .map_or(0, |raw| raw.len().saturating_sub(4));
                return Err(if len == ADDRESS_LEN {
                    AddressError::BadChecksum
                } else {
                    AddressError::BadLength { len }
                });
            }
            Err(e) => return Err(decode_error(s, e)),
        };
        if payload.len() != ADDRESS_LEN {
            return Err(AddressError::BadLength { len: payload.len() });
        }
        Address::from_bytes(&payload)
    }

    /// Parses 42 hex digits starting with `41` (an optional `0x` is accepted, so at most
    /// 44 characters; a longer text is refused by its length before it is read).
    pub fn from_hex(s: &str) -> Result<Self, AddressError> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.is_empty() {
            return Err(AddressError::Empty);
        }
        if longer_than(digits, HEX_ADDRESS_LEN) {
            return Err(AddressError::TooLong { len: s.len() });
        }
        let offset = s.len() - digits.len();
        if let Some((index, character)) =
            digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit())
        {
            return Err(AddressError::BadCharacter {
                character,
                index: index + offset,
            });
        }
        if digits.len() % 2 != 0 {
            return Err(AddressError::BadLength {
                len: digits.len() / 2,
            });
        }
        let bytes = hex::decode(digits).map_err(|_| AddressError::BadLength {
            len: digits.len() / 2,
        })?;
        Address::from_bytes(&bytes)
    }

    /// Base58Check with the 4-byte double-SHA-256 checksum (`T…`).
    pub fn to_base58(&self) -> String {
        bs58::encode(self.0).with_check().into_string()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Whether `s` has more than `max` characters; looks at no more than `max + 1` of them.
fn longer_than(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().nth(max).is_some()
}

/// Maps the character errors of a Base58 decode (the others cannot happen for a string).
fn decode_error(s: &str, e: bs58::decode::Error) -> AddressError {
    match e {
        bs58::decode::Error::InvalidCharacter { character, index } => {
            AddressError::BadCharacter { character, index }
        }
        bs58::decode::Error::NonAsciiCharacter { index } => AddressError::BadCharacter {
            character: s[index..].chars().next().unwrap_or('\u{fffd}'),
            index,
        },
        // Not produced when decoding a string into a vector; map to the closest meaning.
        _ => AddressError::BadLength { len: 0 },
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Base58Check when it starts with `T`, hex otherwise. A text longer than
    /// [`MAX_ADDRESS_TEXT_LEN`] is refused before either parser sees it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if longer_than(s, MAX_ADDRESS_TEXT_LEN) {
            return Err(AddressError::TooLong { len: s.len() });
        }
        if s.starts_with('T') {
            Address::from_base58(s)
        } else {
            Address::from_hex(s)
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_base58())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
    const HEX: &str = "4194a15629b2b2bbd3a5453e6d6696b2875278633b";

    #[test]
    fn base58_and_hex_round_trip() {
        let a = Address::from_base58(ADDR).unwrap();
        assert_eq!(a.to_hex(), HEX);
        assert_eq!(Address::from_hex(HEX).unwrap(), a);
        assert_eq!(Address::from_hex(&format!("0x{HEX}")).unwrap(), a);
        assert_eq!(a.to_base58(), ADDR);
        assert_eq!(ADDR.parse::<Address>().unwrap(), a);
        assert_eq!(HEX.parse::<Address>().unwrap(), a);
    }

    #[test]
    fn bad_character() {
        // '0', 'O', 'I' and 'l' are not in the Base58 alphabet.
        let s = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w0";
        assert_eq!(
            Address::from_base58(s),
            Err(AddressError::BadCharacter {
                character: '0',
                index: 33
            })
        );
        assert!(matches!(
            Address::from_hex("41zz"),
            Err(AddressError::BadCharacter {
                character: 'z',
                index: 2
            })
        ));
        assert!(matches!(
            Address::from_base58("TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5wé"),
            Err(AddressError::BadCharacter {
                character: 'é', ..
            })
        ));
    }

    #[test]
    fn bad_checksum() {
        // Change one character: the payload decodes but the checksum no longer matches.
        let s = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w2";
        assert_eq!(Address::from_base58(s), Err(AddressError::BadChecksum));
    }

    #[test]
    fn bad_length() {
        assert!(matches!(
            Address::from_base58("TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5"),
            Err(AddressError::BadLength { .. })
        ));
        // Odd and short: 41 digits.
        assert_eq!(
            Address::from_hex("4194a15629b2b2bbd3a5453e6d6696b2875278633"),
            Err(AddressError::BadLength { len: 20 })
        );
        assert_eq!(
            Address::from_hex("4194a15629b2b2bbd3a5453e6d6696b2875278"),
            Err(AddressError::BadLength { len: 19 })
        );
        // Longer than 42 digits is refused by its length alone (see `too_long_...`).
        assert_eq!(
            Address::from_bytes(&[0x41; 20]),
            Err(AddressError::BadLength { len: 20 })
        );
        assert_eq!(Address::from_base58(""), Err(AddressError::Empty));
        assert_eq!(Address::from_hex(""), Err(AddressError::Empty));
    }

    /// Text longer than any address is refused by its length, whatever it holds: a 256 KiB
    /// string of valid Base58 characters never reaches the (quadratic) decoder.
    #[test]
    fn too_long_is_refused_before_decoding() {
        let huge = format!("T{}", "z".repeat(256 * 1024));
        for parsed in [Address::from_base58(&huge), huge.parse::<Address>()] {
            assert_eq!(parsed, Err(AddressError::TooLong { len: huge.len() }));
        }
        assert_eq!(
            Address::from_hex(&"4".repeat(256 * 1024)),
            Err(AddressError::TooLong { len: 256 * 1024 })
        );
        // One character over each spelling.
        assert_eq!(
            Address::from_base58(&format!("{ADDR}1")),
            Err(AddressError::TooLong { len: 35 })
        );
        assert_eq!(
            Address::from_hex(&format!("{HEX}0")),
            Err(AddressError::TooLong { len: 43 })
        );
        assert_eq!(
            Address::from_hex(&format!("0x{HEX}0")),
            Err(AddressError::TooLong { len: 45 })
        );
        assert_eq!(
            format!("0x{HEX}0").parse::<Address>(),
            Err(AddressError::TooLong { len: 45 })
        );
        // The limits themselves still parse.
        assert_eq!(ADDR.len(), BASE58_ADDRESS_LEN);
        assert!(format!("0x{HEX}").parse::<Address>().is_ok());
        assert_eq!(AddressError::TooLong { len: 35 }.code(), "address_too_long");
    }

    #[test]
    fn bad_prefix() {
        // A valid Base58Check string of 21 bytes with prefix 0x00 (a Bitcoin-style payload).
        let mut payload = [0u8; 21];
        payload[1..].copy_from_slice(&[7u8; 20]);
        let s = bs58::encode(payload).with_check().into_string();
        assert_eq!(
            Address::from_base58(&s),
            Err(AddressError::BadPrefix { prefix: 0 })
        );
        assert_eq!(
            Address::from_hex("a094a15629b2b2bbd3a5453e6d6696b2875278633b"),
            Err(AddressError::BadPrefix { prefix: 0xa0 })
        );
    }

    #[test]
    fn error_codes_are_distinct() {
        let errs = [
            AddressError::BadCharacter {
                character: 'x',
                index: 0,
            },
            AddressError::BadChecksum,
            AddressError::BadLength { len: 0 },
            AddressError::BadPrefix { prefix: 0 },
            AddressError::Empty,
            AddressError::TooLong { len: 35 },
        ];
        let codes: std::collections::HashSet<_> = errs.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), errs.len());
    }
}
