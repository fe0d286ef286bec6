//! PKCS#11 key backend: secp256k1 keys generated in and used inside an HSM.
//!
//! Built only with the `pkcs11` Cargo feature (on by default), so a build without it links
//! no cryptoki; nothing outside `keys`, the service start-up and the CLI depends on it.
//!
//! - [`config`]: the token and keys the service uses (the `[pkcs11]` section minus the PIN).
//! - [`context`]: one initialised module per process, tokens by label, login.
//! - [`pool`]: logged-in sessions that rebuild themselves after faults, and admission.
//! - [`object`]: finding keys on a token and reading their attributes.
//! - [`keygen`]: generating and listing keys.
//! - [`sign`]: [`Pkcs11Backend`], the [`KeyBackend`](crate::keys::KeyBackend).
//! - `verify`: the checks every signature from the token passes before release.
//! - [`commands`]: `keys pkcs11 generate | list`, without the parsing.
//! - [`error`]: failures and which of them are transient.

pub mod commands;
pub mod config;
pub mod context;
pub mod ec_point;
pub mod error;
pub mod keygen;
pub mod object;
pub mod pool;
pub mod sign;
mod verify;

pub use config::{KeySelector, Pkcs11Config};
pub use context::{module, Pkcs11Module};
pub use error::{classify_rv, Pkcs11Error, RvClass, BACKEND};
pub use keygen::{generate_key, list_keys, GeneratedKey, KeyInfo};
pub use pool::{Admission, PoolStats};
pub use sign::{load_backends, Pkcs11Backend, Pkcs11Token};
