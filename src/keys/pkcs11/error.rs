//! What can go wrong talking to a PKCS#11 token, and which failures are worth retrying.
//!
//! The split matters to the service: a transient fault (session lost, token pulled, device
//! hiccup) becomes `UNAVAILABLE` and the pool rebuilds itself, while a refusal (wrong PIN,
//! key missing, key changed, bad signature) is an error an operator must look at.

use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};
use tron_proto::Address;

use crate::keys::backend::KeyError;
use crate::reason::ReasonCode;

/// `KeyBackend::backend()` for these keys, and the backend [`KeyError`]s name.
pub const BACKEND: &str = "pkcs11";

/// How the backend reacts to a PKCS#11 return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RvClass {
    /// Our sessions, their login state or the object handles they saw are gone: drop the
    /// pool, open fresh sessions, log in again and look the key up again. Retried once.
    SessionLost,
    /// The token or device is absent or failing: drop the pool and report UNAVAILABLE;
    /// the next request re-opens.
    DeviceUnavailable,
    /// The library is out of sessions, memory or locks for the moment: UNAVAILABLE, pool kept.
    Busy,
    /// The token refused the PIN: never retried automatically (that would lock the PIN).
    PinRejected,
    /// Anything else: the request is wrong for this key or token; not transient.
    Refused,
}

/// Maps a PKCS#11 return value (as cryptoki names it) to how we react.
pub fn classify_rv(rv: RvError) -> RvClass {
    use RvError::*;
    match rv {
        SessionClosed
        | SessionHandleInvalid
        | UserNotLoggedIn
        | KeyHandleInvalid
        | ObjectHandleInvalid
        | OperationNotInitialized
        | OperationActive => RvClass::SessionLost,
        DeviceError
        | DeviceMemory
        | DeviceRemoved
        | TokenNotPresent
        | TokenNotRecognized
        | SlotIdInvalid
        | CryptokiNotInitialized
        | GeneralError
        | FunctionFailed => RvClass::DeviceUnavailable,
        SessionCount | HostMemory | CantLock | FunctionCanceled => RvClass::Busy,
        PinIncorrect
        | PinInvalid
        | PinLenRange
        | PinExpired
        | PinLocked
        | UserPinNotInitialized => RvClass::PinRejected,
        _ => RvClass::Refused,
    }
}

/// Maps a raw `CK_RV` number (an unsigned long), e.g. one read from a vendor log, the same
/// way; `None` for CKR_OK.
pub fn classify_raw_rv(rv: std::os::raw::c_ulong) -> Option<RvClass> {
    match cryptoki::error::Rv::from(rv) {
        cryptoki::error::Rv::Ok => None,
        cryptoki::error::Rv::Error(e) => Some(classify_rv(e)),
    }
}

/// A PKCS#11 backend failure. Carries labels, ids and return codes; never a PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs11Error {
    #[error("cannot load PKCS#11 module {path}: {detail}")]
    ModuleLoad { path: PathBuf, detail: String },
    #[error("PKCS#11 module {path} failed to initialise: {rv}")]
    ModuleInit { path: PathBuf, rv: String },
    #[error("no token labelled {label:?} is present")]
    TokenNotFound { label: String },
    #[error("{count} tokens are labelled {label:?}; labels must be unique")]
    TokenAmbiguous { label: String, count: usize },
    #[error("the token refused the PIN (CKR_PIN_INCORRECT)")]
    PinIncorrect,
    #[error("the token's user PIN is locked (CKR_PIN_LOCKED)")]
    PinLocked,
    #[error("the token refused the PIN: {rv}")]
    PinRejected { rv: String },
    #[error("no private key matches {selector}")]
    KeyNotFound { selector: String },
    #[error("{count} private keys match {selector}; a selector must name exactly one key")]
    KeyAmbiguous { selector: String, count: usize },
    #[error("key {selector} has no readable public key (CKA_EC_POINT)")]
    PublicKeyMissing { selector: String },
    #[error("key {selector} is not a secp256k1 key")]
    NotSecp256k1 { selector: String },
    #[error(
        "CKA_EC_POINT is {len} bytes; expected a DER OCTET STRING around a 65-byte uncompressed \
         point (67 bytes) or the raw 65-byte point"
    )]
    EcPointFormat { len: usize },
    #[error("CKA_EC_POINT is not a point on secp256k1")]
    EcPointInvalid,
    #[error("key {selector} now has address {found}, but it was loaded as {expected}")]
    KeyChanged {
        selector: String,
        expected: Address,
        found: Address,
    },
    #[error("key {selector}'s private and public halves do not belong together")]
    KeyPairMismatch { selector: String },
    #[error("key {selector} returned a signature that does not verify for {address}: {detail}")]
    SignatureInvalid {
        selector: String,
        address: Address,
        detail: String,
    },
    #[error("a key labelled {label:?} already exists on the token")]
    LabelExists { label: String },
    #[error("invalid key selector: {detail}")]
    BadSelector { detail: String },
    #[error("{op}: session lost ({rv}); sessions will be re-opened and logged in again")]
    SessionLost { op: &'static str, rv: String },
    #[error("{op}: token unavailable ({rv})")]
    DeviceUnavailable { op: &'static str, rv: String },
    #[error("{op}: token busy ({rv})")]
    Busy { op: &'static str, rv: String },
    #[error("no PKCS#11 session became free within {waited_ms} ms")]
    PoolTimeout { waited_ms: u64 },
    #[error("{op} refused: {rv}")]
    Refused { op: &'static str, rv: String },
    #[error("signing task ended abnormally")]
    TaskFailed,
}

impl Pkcs11Error {
    /// The stable reason code.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Pkcs11Error::ModuleLoad { .. } => ReasonCode::Pkcs11ModuleLoad,
            Pkcs11Error::ModuleInit { .. } => ReasonCode::Pkcs11ModuleInit,
            Pkcs11Error::TokenNotFound { .. } => ReasonCode::Pkcs11TokenNotFound,
            Pkcs11Error::TokenAmbiguous { .. } => ReasonCode::Pkcs11TokenAmbiguous,
            Pkcs11Error::PinIncorrect => ReasonCode::Pkcs11PinIncorrect,
            Pkcs11Error::PinLocked => ReasonCode::Pkcs11PinLocked,
            Pkcs11Error::PinRejected { .. } => ReasonCode::Pkcs11PinRejected,
            Pkcs11Error::KeyNotFound { .. } => ReasonCode::Pkcs11KeyNotFound,
            Pkcs11Error::KeyAmbiguous { .. } => ReasonCode::Pkcs11KeyAmbiguous,
            Pkcs11Error::PublicKeyMissing { .. } => ReasonCode::Pkcs11PublicKeyMissing,
            Pkcs11Error::NotSecp256k1 { .. } => ReasonCode::Pkcs11NotSecp256k1,
            Pkcs11Error::EcPointFormat { .. } => ReasonCode::Pkcs11EcPointFormat,
            Pkcs11Error::EcPointInvalid => ReasonCode::Pkcs11EcPointInvalid,
            Pkcs11Error::KeyChanged { .. } => ReasonCode::Pkcs11KeyChanged,
            Pkcs11Error::KeyPairMismatch { .. } => ReasonCode::Pkcs11KeyPairMismatch,
            Pkcs11Error::SignatureInvalid { .. } => ReasonCode::Pkcs11SignatureInvalid,
            Pkcs11Error::LabelExists { .. } => ReasonCode::Pkcs11LabelExists,
            Pkcs11Error::BadSelector { .. } => ReasonCode::Pkcs11BadSelector,
            Pkcs11Error::SessionLost { .. } => ReasonCode::Pkcs11SessionLost,
            Pkcs11Error::DeviceUnavailable { .. } => ReasonCode::Pkcs11DeviceUnavailable,
            Pkcs11Error::Busy { .. } => ReasonCode::Pkcs11Busy,
            Pkcs11Error::PoolTimeout { .. } => ReasonCode::Pkcs11PoolTimeout,
            Pkcs11Error::Refused { .. } => ReasonCode::Pkcs11Refused,
            Pkcs11Error::TaskFailed => ReasonCode::Pkcs11TaskFailed,
        }
    }

    /// [`Pkcs11Error::reason`] as text, for command-line errors.
    pub fn code(&self) -> &'static str {
        self.reason().as_str()
    }

    /// True when retrying later may succeed without an operator: the service answers
    /// UNAVAILABLE. A key that vanished counts, since a token being restored looks like that.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Pkcs11Error::TokenNotFound { .. }
                | Pkcs11Error::KeyNotFound { .. }
                | Pkcs11Error::PublicKeyMissing { .. }
                | Pkcs11Error::SessionLost { .. }
                | Pkcs11Error::DeviceUnavailable { .. }
                | Pkcs11Error::Busy { .. }
                | Pkcs11Error::PoolTimeout { .. }
        )
    }

    /// True when the pool's sessions (and cached key handles) can no longer be trusted.
    pub(crate) fn needs_reset(&self) -> bool {
        matches!(
            self,
            Pkcs11Error::TokenNotFound { .. }
                | Pkcs11Error::KeyNotFound { .. }
                | Pkcs11Error::PublicKeyMissing { .. }
                | Pkcs11Error::SessionLost { .. }
                | Pkcs11Error::DeviceUnavailable { .. }
        )
    }

    /// Wraps a cryptoki error from operation `op` (a PKCS#11 function name).
    pub fn from_cryptoki(op: &'static str, err: CkError) -> Self {
        let CkError::Pkcs11(rv, _) = err else {
            return Pkcs11Error::Refused {
                op,
                rv: err.to_string(),
            };
        };
        let text = rv.to_string();
        match classify_rv(rv) {
            RvClass::SessionLost => Pkcs11Error::SessionLost { op, rv: text },
            RvClass::DeviceUnavailable => Pkcs11Error::DeviceUnavailable { op, rv: text },
            RvClass::Busy => Pkcs11Error::Busy { op, rv: text },
            RvClass::PinRejected => match rv {
                RvError::PinIncorrect => Pkcs11Error::PinIncorrect,
                RvError::PinLocked => Pkcs11Error::PinLocked,
                _ => Pkcs11Error::PinRejected { rv: text },
            },
            RvClass::Refused => Pkcs11Error::Refused { op, rv: text },
        }
    }
}

impl From<Pkcs11Error> for KeyError {
    fn from(e: Pkcs11Error) -> Self {
        let detail = format!("{} ({})", e, e.code());
        if e.is_transient() {
            KeyError::Unavailable {
                backend: BACKEND,
                reason: e.reason(),
                detail,
            }
        } else {
            KeyError::Failed {
                backend: BACKEND,
                reason: e.reason(),
                detail,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(rvs: &[RvError], want: RvClass) {
        for rv in rvs {
            assert_eq!(classify_rv(*rv), want, "{rv:?}");
        }
    }

    #[test]
    fn session_state_loss_is_recoverable() {
        class_of(
            &[
                RvError::SessionClosed,
                RvError::SessionHandleInvalid,
                RvError::UserNotLoggedIn,
                RvError::KeyHandleInvalid,
                RvError::ObjectHandleInvalid,
                RvError::OperationNotInitialized,
                RvError::OperationActive,
            ],
            RvClass::SessionLost,
        );
    }

    #[test]
    fn device_faults_are_unavailable() {
        class_of(
            &[
                RvError::DeviceError,
                RvError::DeviceMemory,
                RvError::DeviceRemoved,
                RvError::TokenNotPresent,
                RvError::TokenNotRecognized,
                RvError::SlotIdInvalid,
                RvError::CryptokiNotInitialized,
                RvError::GeneralError,
                RvError::FunctionFailed,
            ],
            RvClass::DeviceUnavailable,
        );
    }

    #[test]
    fn resource_pressure_is_busy() {
        class_of(
            &[
                RvError::SessionCount,
                RvError::HostMemory,
                RvError::CantLock,
                RvError::FunctionCanceled,
            ],
            RvClass::Busy,
        );
    }

    #[test]
    fn pin_problems_are_never_retried() {
        class_of(
            &[
                RvError::PinIncorrect,
                RvError::PinInvalid,
                RvError::PinLenRange,
                RvError::PinExpired,
                RvError::PinLocked,
                RvError::UserPinNotInitialized,
            ],
            RvClass::PinRejected,
        );
    }

    #[test]
    fn key_and_mechanism_refusals_are_final() {
        class_of(
            &[
                RvError::KeyFunctionNotPermitted,
                RvError::KeyTypeInconsistent,
                RvError::MechanismInvalid,
                RvError::CurveNotSupported,
                RvError::DataLenRange,
                RvError::ArgumentsBad,
                RvError::AttributeSensitive,
                RvError::FunctionNotSupported,
                RvError::UnknownErrorCode(0x7777),
                RvError::VendorDefined(0x8000_0001),
            ],
            RvClass::Refused,
        );
    }

    #[test]
    fn raw_numbers_map_like_names() {
        // CKR_OK, CKR_PIN_INCORRECT (0xa0), CKR_SESSION_HANDLE_INVALID (0xb3),
        // CKR_DEVICE_REMOVED (0x32), CKR_USER_NOT_LOGGED_IN (0x101), CKR_SESSION_COUNT (0xb1).
        assert_eq!(classify_raw_rv(0), None);
        assert_eq!(classify_raw_rv(0xa0), Some(RvClass::PinRejected));
        assert_eq!(classify_raw_rv(0xb3), Some(RvClass::SessionLost));
        assert_eq!(classify_raw_rv(0x32), Some(RvClass::DeviceUnavailable));
        assert_eq!(classify_raw_rv(0x101), Some(RvClass::SessionLost));
        assert_eq!(classify_raw_rv(0xb1), Some(RvClass::Busy));
    }

    #[test]
    fn pin_errors_are_specific_and_not_transient() {
        let f = cryptoki::context::Function::Login;
        let e = Pkcs11Error::from_cryptoki("C_Login", CkError::Pkcs11(RvError::PinIncorrect, f));
        assert_eq!(e, Pkcs11Error::PinIncorrect);
        assert!(!e.is_transient());
        assert_eq!(e.code(), "pkcs11_pin_incorrect");
        let e = Pkcs11Error::from_cryptoki("C_Login", CkError::Pkcs11(RvError::PinLocked, f));
        assert_eq!(e, Pkcs11Error::PinLocked);
        let e = Pkcs11Error::from_cryptoki("C_Login", CkError::Pkcs11(RvError::PinExpired, f));
        assert!(matches!(e, Pkcs11Error::PinRejected { .. }));
        assert!(matches!(KeyError::from(e), KeyError::Failed { .. }));
    }

    #[test]
    fn transient_errors_become_unavailable() {
        let f = cryptoki::context::Function::Sign;
        for (rv, code) in [
            (RvError::SessionHandleInvalid, "pkcs11_session_lost"),
            (RvError::DeviceRemoved, "pkcs11_device_unavailable"),
            (RvError::SessionCount, "pkcs11_busy"),
        ] {
            let e = Pkcs11Error::from_cryptoki("C_Sign", CkError::Pkcs11(rv, f));
            assert_eq!(e.code(), code);
            assert!(e.is_transient());
            let k = KeyError::from(e);
            assert_eq!(k.code(), "key_backend_unavailable");
            assert_eq!(k.reason().as_str(), code);
            assert!(k.to_string().contains("pkcs11"));
        }
        let e = Pkcs11Error::from_cryptoki(
            "C_Sign",
            CkError::Pkcs11(RvError::KeyFunctionNotPermitted, f),
        );
        assert!(!e.is_transient());
        assert_eq!(KeyError::from(e).code(), "key_backend_failed");
        // Non-PKCS#11 library errors are refusals, not retried.
        let e = Pkcs11Error::from_cryptoki("C_Sign", CkError::NotSupported);
        assert!(matches!(e, Pkcs11Error::Refused { .. }));
    }
}
