//! `Pkcs11Backend`: one configured key on a token, signing through the session pool.
//!
//! Safety of the answer does not rest on the token: every raw (r, s) goes through
//! `verify::finish_signature` before it is returned.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use k256::ecdsa::VerifyingKey;
use secrecy::SecretString;
use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

use super::config::{KeySelector, Pkcs11Config};
use super::context::module;
use super::error::{Pkcs11Error, BACKEND};
use super::object::lookup;
use super::pool::{Admission, Lease, PoolStats, SessionPool};
use super::verify::finish_signature;
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
