//! Every reason code the signer gives, in one enum.
//!
//! A code is what monitoring, clients and tests match on: it names why a request was refused
//! (or, for audit records, what happened) and never changes once released. Messages are for
//! people and may change. [`ReasonCode::ALL`] is the exhaustive list; the docs are tested
//! against it.

use std::fmt;
use std::str::FromStr;

/// Which part of the decision path a code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// What happened, for audit records of requests that were not refused.
    Outcome,
    /// The request around the transaction bytes (key address, payout id, idempotency).
    Request,
    /// The transaction bytes themselves (see `decode`).
    Decode,
    /// Who is asking.
    Caller,
    /// The policy in force said no.
    Policy,
    /// The policy in force, its archive and reloads.
    PolicyAdmin,
    /// The durable ledger.
    Ledger,
    /// The key backend (soft keystore or PKCS#11 token).
    KeyBackend,
}

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $cat:ident; )*) => {
        /// A stable, machine-readable reason code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ReasonCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ReasonCode] = &[ $( ReasonCode::$variant, )* ];

            /// The code as it appears on the wire, in audit records and in docs.
            pub const fn as_str(self) -> &'static str {
                match self { $( ReasonCode::$variant => $code, )* }
            }

            /// The part of the decision path the code comes from.
            pub const fn category(self) -> Category {
                match self { $( ReasonCode::$variant => Category::$cat, )* }
            }
        }
    };
}

reason_codes! {
    // --- key backend ---
    /// The soft backend has no key for this address.
    SoftKeyMissing = "soft_key_missing", KeyBackend;
    /// The soft backend failed to sign.
    SoftSignFailed = "soft_sign_failed", KeyBackend;
    Pkcs11ModuleLoad = "pkcs11_module_load", KeyBackend;
    Pkcs11ModuleInit = "pkcs11_module_init", KeyBackend;
    Pkcs11TokenNotFound = "pkcs11_token_not_found", KeyBackend;
    Pkcs11TokenAmbiguous = "pkcs11_token_ambiguous", KeyBackend;
    Pkcs11PinIncorrect = "pkcs11_pin_incorrect", KeyBackend;
    Pkcs11PinLocked = "pkcs11_pin_locked", KeyBackend;
    Pkcs11PinRejected = "pkcs11_pin_rejected", KeyBackend;
    Pkcs11KeyNotFound = "pkcs11_key_not_found", KeyBackend;
    Pkcs11KeyAmbiguous = "pkcs11_key_ambiguous", KeyBackend;
    Pkcs11PublicKeyMissing = "pkcs11_public_key_missing", KeyBackend;
    Pkcs11NotSecp256k1 = "pkcs11_not_secp256k1", KeyBackend;
    Pkcs11EcPointFormat = "pkcs11_ec_point_format", KeyBackend;
    Pkcs11EcPointInvalid = "pkcs11_ec_point_invalid", KeyBackend;
    Pkcs11KeyChanged = "pkcs11_key_changed", KeyBackend;
    Pkcs11KeyPairMismatch = "pkcs11_key_pair_mismatch", KeyBackend;
    Pkcs11SignatureInvalid = "pkcs11_signature_invalid", KeyBackend;
    Pkcs11LabelExists = "pkcs11_label_exists", KeyBackend;
    Pkcs11BadSelector = "pkcs11_bad_selector", KeyBackend;
    Pkcs11SessionLost = "pkcs11_session_lost", KeyBackend;
    Pkcs11DeviceUnavailable = "pkcs11_device_unavailable", KeyBackend;
    Pkcs11Busy = "pkcs11_busy", KeyBackend;
    Pkcs11PoolTimeout = "pkcs11_pool_timeout", KeyBackend;
    Pkcs11Refused = "pkcs11_refused", KeyBackend;
    Pkcs11TaskFailed = "pkcs11_task_failed", KeyBackend;
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of [`ReasonCode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code {0:?}")]
pub struct UnknownReasonCode(pub String);

impl FromStr for ReasonCode {
    type Err = UnknownReasonCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownReasonCode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_distinct_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &c in ReasonCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s} is not snake_case"
            );
            assert_eq!(s.parse::<ReasonCode>(), Ok(c));
        }
        assert_eq!(
            "no_such_code".parse::<ReasonCode>(),
            Err(UnknownReasonCode("no_such_code".into()))
        );
    }
}
