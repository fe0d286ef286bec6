//! The request fields around the transaction bytes, validated before the ledger or the
//! policy sees them: the signing key's address, the payout id, and the strict decode.

use tron_proto::Address;

use crate::decode::{decode, Decoded};
use crate::reason::ReasonCode;

use super::bounded;
use super::refusal::{Refusal, RefusalKind};

/// Longest payout id accepted; ids are the caller's idempotency keys, not free text.
pub const MAX_PAYOUT_ID_LEN: usize = 128;

/// A validated request, ready for the ledger and policy.
pub(super) struct Checked {
    pub key: Address,
    pub decoded: Decoded,
    /// The request's HD index (a deposit key's, or the address a gas key funds).
    pub deposit_index: Option<u32>,
}

/// Takes the key as [`parse_key`] parsed `key_text`, checks the payout id, then decodes the
/// bytes (DESIGN invariants 1-2). The key is parsed once per request, by the caller, since
/// the audit draft needs it before this runs.
pub(super) fn check(
    parsed_key: Result<Address, tron_proto::AddressError>,
    key_text: &str,
    raw: &[u8],
    payout_id: &str,
    deposit_index: Option<u32>,
) -> Result<Checked, Refusal> {
    let key = parsed_key.map_err(|e| {
        Refusal::new(
            RefusalKind::InvalidArgument,
            ReasonCode::BadKeyAddress,
            format!(
                "key {} is not a Tron address ({}): {e}",
                bounded::preview(key_text),
                e.code()
            ),
        )
    })?;
    check_payout_id(payout_id)?;
    let decoded = decode(raw).map_err(|e| {
        Refusal::new(
            RefusalKind::InvalidArgument,
            e.reason(),
            format!("raw_data refused: {e}"),
        )
    })?;
    Ok(Checked {
        key,
        decoded,
        deposit_index,
    })
}

/// The signing key's address; surrounding whitespace is ignored. A text longer than any
/// address is refused by its length before it is decoded (`address_too_long`).
pub(super) fn parse_key(key: &str) -> Result<Address, tron_proto::AddressError> {
    key.trim().parse()
}

/// Whether `id` is a payout id the signer takes: 1 to [`MAX_PAYOUT_ID_LEN`] printable ASCII
/// characters, no spaces.
pub fn payout_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_PAYOUT_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Payout ids are idempotency keys: short, printable ASCII, no spaces.
fn check_payout_id(id: &str) -> Result<(), Refusal> {
    if payout_id_ok(id) {
        Ok(())
    } else {
        Err(Refusal::new(
            RefusalKind::InvalidArgument,
            ReasonCode::BadPayoutId,
            format!(
                "payout_id must be 1-{MAX_PAYOUT_ID_LEN} printable ASCII characters without spaces (got {} bytes)",
                id.len()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payout_ids() {
        assert!(check_payout_id("p-1").is_ok());
        assert!(check_payout_id(&"a".repeat(MAX_PAYOUT_ID_LEN)).is_ok());
        for bad in [
            "",
            "has space",
            "tab\t",
            "é",
            &"a".repeat(MAX_PAYOUT_ID_LEN + 1),
        ] {
            assert_eq!(
                check_payout_id(bad).unwrap_err().code,
                ReasonCode::BadPayoutId,
                "{bad:?}"
            );
        }
    }
}
