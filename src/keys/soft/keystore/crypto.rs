//! Passphrase to keys (argon2id, then HMAC-SHA256 subkeys) and the AEAD around the key list.
//!
//! Two subkeys come from one KDF run: the encryption key and a passphrase-check value. The
//! check value is what lets `open` tell "wrong passphrase" from "ciphertext tampered with":
//! AEAD alone fails the same way for both.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::KeystoreError;

type HmacSha256 = Hmac<Sha256>;

pub(crate) const SALT_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;
pub(crate) const CHECK_LEN: usize = 32;

const ENC_LABEL: &[u8] = b"tron-signer/keystore/v1/encryption-key";
const CHECK_LABEL: &[u8] = b"tron-signer/keystore/v1/passphrase-check";

/// Upper bounds accepted when *opening* a file, so that a crafted header cannot make the
/// signer allocate terabytes or spin for hours before the passphrase is even checked.
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
pub const MAX_T_COST: u32 = 64;
pub const MAX_P_COST: u32 = 16;

/// argon2id cost. Recorded in the file header, so each file carries its own cost and old
/// files keep opening when the default is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: slow to brute-force, and a load time BENCHMARKS.md
    /// (`keystore_load`) measures.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// The smallest argon2 accepts. Only for tests and benches: it protects nothing.
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Refuses parameters argon2 would reject or that exceed the open-time bounds (a file
    /// we write must be a file we can open).
    pub fn validate(&self) -> Result<(), KeystoreError> {
        if self.m_cost_kib > MAX_M_COST_KIB {
            return Err(KeystoreError::InvalidKdfParams(format!(
                "m_cost {} KiB exceeds the maximum {MAX_M_COST_KIB} KiB",
                self.m_cost_kib
            )));
        }
        if self.t_cost > MAX_T_COST {
            return Err(KeystoreError::InvalidKdfParams(format!(
                "t_cost {} exceeds the maximum {MAX_T_COST}",
                self.t_cost
            )));
        }
        if self.p_cost > MAX_P_COST {
            return Err(KeystoreError::InvalidKdfParams(format!(
                "p_cost {} exceeds the maximum {MAX_P_COST}",
                self.p_cost
            )));
        }
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<Params, KeystoreError> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| KeystoreError::InvalidKdfParams(e.to_string()))
    }
}

/// The result of one KDF run: the AEAD key and the passphrase-check value. Zeroized on drop.
pub struct UnlockKey {
    enc: Zeroizing<[u8; 32]>,
    check: Zeroizing<[u8; CHECK_LEN]>,
}

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

impl UnlockKey {
    /// Runs argon2id once and expands its output into the two subkeys.
    pub fn derive(
        passphrase: &SecretString,
        salt: &[u8; SALT_LEN],
        params: &KdfParams,
    ) -> Result<Self, KeystoreError> {
        params.validate()?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.argon2_params()?);
        let mut master = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(
                passphrase.expose_secret().as_bytes(),
                salt,
                master.as_mut_slice(),
            )
            .map_err(|e| KeystoreError::KdfFailed(e.to_string()))?;
        Ok(UnlockKey {
            enc: prf(&master, ENC_LABEL)?,
            check: prf(&master, CHECK_LABEL)?,
        })
    }

    pub(crate) fn check_value(&self) -> &[u8; CHECK_LEN] {
        &self.check
    }

    /// Constant-time comparison with the check value stored in a file.
    pub(crate) fn check_matches(&self, stored: &[u8; CHECK_LEN]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.check.as_slice().ct_eq(stored.as_slice()))
    }

    /// Encrypts `buf` in place; returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], KeystoreError> {
        let cipher = XChaCha20Poly1305::new((&*self.enc).into());
        let tag = cipher
            .encrypt_in_place_detached(&XNonce::from(*nonce), aad, buf)
            .map_err(|_| KeystoreError::MalformedPlaintext("too large to encrypt"))?;
        Ok(tag.into())
    }

    /// Decrypts `buf` in place, or fails without releasing any plaintext.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), KeystoreError> {
        let cipher = XChaCha20Poly1305::new((&*self.enc).into());
        cipher
            .decrypt_in_place_detached(&XNonce::from(*nonce), aad, buf, &Tag::from(*tag))
            .map_err(|_| KeystoreError::Tampered)
    }
}

/// HMAC-SHA256(master, label): independent 32-byte subkeys from one KDF output.
fn prf(master: &[u8; 32], label: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master)
        .map_err(|_| KeystoreError::KdfFailed("hmac key".into()))?;
    mac.update(label);
    let mut out = Zeroizing::new([0u8; 32]);
    hmac::digest::FixedOutput::finalize_into(mac, (&mut *out).into());
    Ok(out)
}

/// Fills `buf` from the operating system's generator.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), KeystoreError> {
    getrandom::getrandom(buf).map_err(|e| KeystoreError::Rng(e.to_string()))
}
