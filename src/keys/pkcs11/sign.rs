//! `Pkcs11Backend`: one configured key on a token, signing through the session pool.
//!
//! Safety of the answer does not rest on the token: every raw (r, s) is verified against
//! the public key the key was loaded with (which also yields v, identical to trial
//! recovery), normalised to low S, and checked against the key's address before return.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use k256::ecdsa::{Signature, VerifyingKey};
use k256::elliptic_curve::ops::{LinearCombination, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::{FieldBytes, ProjectivePoint, Scalar, U256};
use secrecy::SecretString;
use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

use super::config::{KeySelector, Pkcs11Config};
use super::context::module;
use super::error::{Pkcs11Error, BACKEND};
use super::object::lookup;
use super::pool::{Admission, Lease, PoolStats, SessionPool};
use crate::keys::backend::{KeyBackend, KeyError, SignFuture};

/// A digest signed once per key lookup to prove the private key found belongs to the
/// public key that names it.
const PROBE: [u8; 32] = *b"tron-signer pkcs11 key probe v1\0";

/// An open token: the shared session pool that all its keys sign through.
#[derive(Clone)]
pub struct Pkcs11Token {
    pool: Arc<SessionPool>,
}

impl Pkcs11Token {
    /// Loads the module (once per process), finds the token by label and logs in.
    /// A wrong PIN is `PinIncorrect` here, never retried.
    pub fn open(config: &Pkcs11Config, pin: SecretString) -> Result<Self, Pkcs11Error> {
        let pool = SessionPool::open(
            module(&config.module)?,
            &config.token_label,
            pin,
            !config.read_only_sessions,
            config.pool_size(),
            Duration::from_millis(config.session_wait_ms),
        )?;
        Ok(Pkcs11Token { pool })
    }

    /// Finds the key named by `selector`, checks its two halves belong together, and
    /// returns a backend bound to its address. Blocking.
    pub fn load_key(&self, selector: &KeySelector) -> Result<Pkcs11Backend, Pkcs11Error> {
        let admitted = self.pool.admit_blocking()?;
        let lease = self.pool.checkout(&admitted)?;
        let found = lookup(lease.session(), selector)?;
        let inner = KeyInner {
            pool: Arc::clone(&self.pool),
            selector: selector.clone(),
            label: found.label.clone(),
            address: found.address,
            verifying_key: found.verifying_key,
            handle: Mutex::new(Some((lease.generation(), found.private))),
        };
        inner.probe(lease.session(), found.private)?;
        Ok(Pkcs11Backend {
            inner: Arc::new(inner),
        })
    }

    /// Loads every key of the config, in order.
    pub fn load_keys(&self, config: &Pkcs11Config) -> Result<Vec<Pkcs11Backend>, Pkcs11Error> {
        config.keys.iter().map(|s| self.load_key(s)).collect()
    }

    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Takes one of the token's admission permits (one per session) and holds it until the
    /// permit is dropped, as a signature in progress would. For tests of a saturated pool.
    #[doc(hidden)]
    pub async fn hold_admission(&self) -> Result<Admission, Pkcs11Error> {
        self.pool.admit().await
    }
}

/// One key on an HSM, usable as a [`KeyBackend`]. Cheap to clone.
#[derive(Clone)]
pub struct Pkcs11Backend {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    pool: Arc<SessionPool>,
    selector: KeySelector,
    label: String,
    address: Address,
    verifying_key: VerifyingKey,
    /// The private key's handle and the pool generation it was found in; handles may
    /// change after a logout or token re-insert, so they are looked up again per generation.
    handle: Mutex<Option<(u64, ObjectHandle)>>,
}

impl std::fmt::Debug for Pkcs11Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Backend")
            .field("token", &self.inner.pool.token_label())
            .field("key", &self.inner.selector.to_string())
            .field("address", &self.inner.address)
            .finish()
    }
}

impl Pkcs11Backend {
    /// Signs on the calling thread under `admitted`, recovering from a lost session once.
    /// Blocks: the async [`KeyBackend::sign`] runs it on tokio's blocking pool.
    fn sign_admitted(
        &self,
        txid: &[u8; 32],
        admitted: &Admission,
    ) -> Result<RecoverableSignature, Pkcs11Error> {
        let inner = &self.inner;
        let mut retried = false;
        loop {
            let epoch = inner.pool.module_epoch();
            let lease = match inner.pool.checkout(admitted) {
                Ok(lease) => lease,
                Err(e) if !retried && module_may_be_stale(&e) => {
                    // The token may be back but invisible until the module is
                    // re-initialised (SoftHSM behaves so); try that once per request.
                    retried = true;
                    if inner.pool.recover_module(epoch).is_err() {
                        return Err(e);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            match inner.c_sign(&lease, txid) {
                Ok(rs) => {
                    // The session goes back before the verification, which needs none.
                    drop(lease);
                    return inner.finish(txid, &rs);
                }
                Err(e) => {
                    if e.needs_reset() {
                        inner.pool.reset(&lease);
                    }
                    drop(lease);
                    if matches!(e, Pkcs11Error::SessionLost { .. }) && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    pub fn selector(&self) -> &KeySelector {
        &self.inner.selector
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }
}

/// Failures to even find the token, after which only re-initialising the module helps.
fn module_may_be_stale(e: &Pkcs11Error) -> bool {
    matches!(
        e,
        Pkcs11Error::TokenNotFound { .. } | Pkcs11Error::DeviceUnavailable { .. }
    )
}

impl KeyInner {
    /// The raw `r || s` from the token; [`KeyInner::finish`] turns it into an answer.
    fn c_sign(&self, lease: &Lease, txid: &[u8; 32]) -> Result<Vec<u8>, Pkcs11Error> {
        let handle = self.handle_for(lease)?;
        lease
            .session()
            .sign(&Mechanism::Ecdsa, handle, txid)
            .map_err(|e| Pkcs11Error::from_cryptoki("C_Sign", e))
    }

    fn finish(&self, txid: &[u8; 32], rs: &[u8]) -> Result<RecoverableSignature, Pkcs11Error> {
        finish_signature(txid, rs, &self.verifying_key, &self.address).map_err(|detail| {
            Pkcs11Error::SignatureInvalid {
                selector: self.selector.to_string(),
                address: self.address,
                detail,
            }
        })
    }

    /// The key's handle in the lease's generation, looked up again (and re-checked against
    /// the address) when the pool has been rebuilt.
    fn handle_for(&self, lease: &Lease) -> Result<ObjectHandle, Pkcs11Error> {
        let mut cached = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((generation, handle)) = *cached {
            if generation == lease.generation() {
                return Ok(handle);
            }
        }
        let found = lookup(lease.session(), &self.selector)?;
        if found.address != self.address {
            return Err(Pkcs11Error::KeyChanged {
                selector: self.selector.to_string(),
                expected: self.address,
                found: found.address,
            });
        }
        self.probe(lease.session(), found.private)?;
        *cached = Some((lease.generation(), found.private));
        Ok(found.private)
    }

    fn probe(&self, session: &Session, private: ObjectHandle) -> Result<(), Pkcs11Error> {
        let rs = session
            .sign(&Mechanism::Ecdsa, private, &PROBE)
            .map_err(|e| Pkcs11Error::from_cryptoki("C_Sign", e))?;
        self.finish(&PROBE, &rs)
            .map(|_| ())
            .map_err(|_| Pkcs11Error::KeyPairMismatch {
                selector: self.selector.to_string(),
            })
    }
}

/// Low S, v, and verification in one step, then a check against `address`.
///
/// For a valid (r, s) over z by key Q, R = (z/s)·G + (r/s)·Q has x-coordinate r, and v is
/// R's y parity (flipped when s is replaced by n − s). Computing R once is exactly an
/// ECDSA verification; it yields the same v as trial recovery (the tests hold it to
/// [`complete_signature`]) for a third of the arithmetic, which matters because it shares
/// the cores with the HSM client. Anything that does not verify is an error, never an answer.
fn finish_signature(
    txid: &[u8; 32],
    rs: &[u8],
    key: &VerifyingKey,
    address: &Address,
) -> Result<RecoverableSignature, String> {
    if Address::from_verifying_key(key) != *address {
        return Err("the public key is not the address's".into());
    }
    let sig = Signature::from_slice(rs).map_err(|_| format!("not a {}-byte r||s", 64))?;
    let (r, s) = sig.split_scalars();
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*txid));
    let s_inv = Option::<Scalar>::from(s.invert()).ok_or("s is not invertible")?;
    let q = ProjectivePoint::from(*key.as_affine());
    let big_r =
        ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &(z * s_inv), &q, &(*r * s_inv))
            .to_affine();
    if big_r.x() != r.to_bytes() {
        // Either not a signature by this key, or R.x ≥ n, which no Tron v can express.
        return Err("does not verify against the key's public key".into());
    }
    let mut y_odd = bool::from(big_r.y_is_odd());
    let sig = match sig.normalize_s() {
        Some(low) => {
            y_odd = !y_odd;
            low
        }
        None => sig,
    };
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = u8::from(y_odd);
    Ok(out)
}

impl KeyBackend for Pkcs11Backend {
    fn address(&self) -> Address {
        self.inner.address
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn label(&self) -> &str {
        &self.inner.label
    }

    fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a> {
        let this = self.clone();
        let txid = *txid;
        Box::pin(async move {
            let admitted = this.inner.pool.admit().await.map_err(KeyError::from)?;
            // The admission moves into the task and is released when the token is done,
            // even if this request is cancelled meanwhile.
            tokio::task::spawn_blocking(move || this.sign_admitted(&txid, &admitted))
                .await
                .map_err(|_| KeyError::from(Pkcs11Error::TaskFailed))?
                .map_err(KeyError::from)
        })
    }
}

/// Opens the token and loads the configured keys, ready for a `KeyRing`. Blocking: call
/// before the runtime starts or inside `spawn_blocking`.
pub fn load_backends(
    config: &Pkcs11Config,
    pin: SecretString,
) -> Result<(Pkcs11Token, Vec<Pkcs11Backend>), Pkcs11Error> {
    let token = Pkcs11Token::open(config, pin)?;
    let keys = token.load_keys(config)?;
    Ok((token, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use tron_proto::sig::{complete_signature, is_low_s, recover_address};

    fn key(b: u8) -> SigningKey {
        SigningKey::from_slice(&[b; 32]).unwrap()
    }

    #[test]
    fn high_s_from_the_device_is_normalised_and_verified() {
        let k = key(7);
        let addr = Address::from_verifying_key(k.verifying_key());
        for i in 0u16..256 {
            let txid = tron_proto::txid(&i.to_be_bytes());
            let (sig, _) = k.sign_prehash_recoverable(&txid).unwrap();
            let high = Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
            for rs in [sig.to_bytes(), high.to_bytes()] {
                let out = finish_signature(&txid, &rs, k.verifying_key(), &addr).unwrap();
                assert!(is_low_s(&out));
                assert_eq!(recover_address(&txid, &out).unwrap(), addr);
                // Same bytes as trial recovery would give.
                assert_eq!(
                    out,
                    complete_signature(&txid, &rs, k.verifying_key()).unwrap()
                );
            }
        }
    }

    #[test]
    fn signature_from_another_key_is_refused() {
        let k = key(7);
        let other = key(8);
        let addr = Address::from_verifying_key(k.verifying_key());
        let txid = tron_proto::txid(b"payout");
        let (sig, _) = other.sign_prehash_recoverable(&txid).unwrap();
        assert!(finish_signature(&txid, &sig.to_bytes(), k.verifying_key(), &addr).is_err());
        // A signature by the right key over another txid.
        let (sig2, _) = k.sign_prehash_recoverable(&[0x55; 32]).unwrap();
        assert!(finish_signature(&txid, &sig2.to_bytes(), k.verifying_key(), &addr).is_err());
        // Garbage and short answers too.
        assert!(finish_signature(&txid, &[0u8; 64], k.verifying_key(), &addr).is_err());
        assert!(finish_signature(&txid, &[1u8; 63], k.verifying_key(), &addr).is_err());
    }

    #[test]
    fn final_check_catches_a_public_key_that_is_not_the_address() {
        // The token's public key and the address the key was loaded as disagree: trial
        // recovery succeeds against the public key, the address check must still refuse.
        let k = key(7);
        let wrong_addr = Address::from_verifying_key(key(9).verifying_key());
        let txid = tron_proto::txid(b"payout");
        let (sig, _) = k.sign_prehash_recoverable(&txid).unwrap();
        let err =
            finish_signature(&txid, &sig.to_bytes(), k.verifying_key(), &wrong_addr).unwrap_err();
        assert!(err.contains("not the address"), "{err}");
    }
}
