//! Webhook signatures: `Webhook-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`, where
//! each `v1` is HMAC-SHA256 under one of the endpoint's secrets of the bytes
//! `"<t>." || body`. Two `v1` values while a secret is being rotated, so a receiver
//! holding either secret verifies every delivery; the receiver checks `t` against its own
//! clock to refuse replays of old deliveries.
//!
//! [`verify`] is the receiver's side, used by the tests and shown in the README.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Webhook-Signature";
/// The event id header (the same event always has the same id).
pub const EVENT_ID_HEADER: &str = "Webhook-Id";
/// The delivery id header (one per attempt).
pub const DELIVERY_ID_HEADER: &str = "Webhook-Delivery";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The header value for `body` sent at `t` (Unix seconds), one `v1` per secret.
pub fn header(secrets: &[Secret], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&hex::encode(mac(s.expose().as_bytes(), t, body)));
    }
    out
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is not t=<unix>,v1=<hex>")]
    Malformed,
    #[error("the signature's time is {age}s away from now, more than the tolerance")]
    Stale { age: i64 },
    #[error("no v1 signature matches the secret")]
    Mismatch,
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "signature_malformed",
            VerifyError::Stale { .. } => "signature_stale",
            VerifyError::Mismatch => "signature_mismatch",
        }
    }
}

/// Checks a delivery: `t` within `tolerance_s` of `now` and some `v1` equal (in constant
/// time) to the HMAC under `secret`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) if t.is_none() => {
                t = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed)?)
            }
            Some(("v1", v)) => {
                let mut b = [0u8; 32];
                hex::decode_to_slice(v, &mut b).map_err(|_| VerifyError::Malformed)?;
                sigs.push(b);
            }
            // Unknown schemes are skipped, so a later v2 does not break old receivers.
            Some((_, _)) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let age = now.saturating_sub(t);
    if age.abs() > tolerance_s {
        return Err(VerifyError::Stale { age });
    }
    let want = mac(secret, t, body);
    if sigs.iter().any(|s| bool::from(s.ct_eq(&want))) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.into())
    }

    #[test]
    fn a_known_vector() {
        // HMAC-SHA256(key "whsec", "1700000000.{}"), computed independently with
        // Python's `hmac.new(b"whsec", b"1700000000.{}", hashlib.sha256).hexdigest()`.
        let h = header(&[secret("whsec")], 1_700_000_000, b"{}");
        assert_eq!(
            h,
            "t=1700000000,v1=7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af"
        );
    }

    #[test]
    fn either_secret_verifies_while_rotating() {
        let body = br#"{"id":"evt_1"}"#;
        let h = header(&[secret("new"), secret("old")], 100, body);
        assert_eq!(h.matches("v1=").count(), 2);
        verify(b"new", &h, body, 100, 300).unwrap();
        verify(b"old", &h, body, 150, 300).unwrap();
    }

    #[test]
    fn every_refusal_by_code() {
        let body = b"{}";
        let h = header(&[secret("k")], 100, body);
        let code = |r: Result<(), VerifyError>| r.unwrap_err().code();
        assert_eq!(
            code(verify(b"other", &h, body, 100, 300)),
            "signature_mismatch"
        );
        assert_eq!(
            code(verify(b"k", &h, b"{ }", 100, 300)),
            "signature_mismatch"
        );
        assert_eq!(code(verify(b"k", &h, body, 401, 300)), "signature_stale");
        assert_eq!(code(verify(b"k", &h, body, -201, 300)), "signature_stale");
        for bad in [
            "",
            "t=x,v1=00",
            "v1=00",
            "t=100",
            "t=100,v1=zz",
            "t=100,junk",
        ] {
            assert_eq!(
                code(verify(b"k", bad, body, 100, 300)),
                "signature_malformed",
                "{bad:?}"
            );
        }
    }
}
