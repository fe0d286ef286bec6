//! PKCS#11 key backend: secp256k1 keys generated in and used inside an HSM.
//!
//! Self-contained on purpose: nothing outside `keys` depends on it, so a crate that only
//! needs the wire types (the broadcaster) never links cryptoki.
//!
//! - [`config`]: the `[pkcs11]` service config and the CLI flags.
//! - [`context`]: one initialised module per process, tokens by label, login.
//! - [`pool`]: logged-in sessions that rebuild themselves after faults.
//! - [`keygen`]: generating and listing keys.
//! - [`sign`]: [`Pkcs11Backend`], the [`KeyBackend`](crate::keys::KeyBackend).
//! - [`error`]: failures and which of them are transient.

pub mod config;
pub mod context;
pub mod ec_point;
pub mod error;
pub mod keygen;
pub mod pool;
pub mod sign;

pub use config::{KeySelector, Pkcs11Args, Pkcs11Config};
pub use context::{module, Pkcs11Module};
pub use error::{classify_rv, Pkcs11Error, RvClass};
pub use keygen::{generate_key, list_keys, GeneratedKey, KeyInfo};
pub use pool::PoolStats;
pub use sign::{load_backends, Pkcs11Backend, Pkcs11Token};

/// `KeyBackend::backend()` for these keys.
pub const BACKEND: &str = "pkcs11";
