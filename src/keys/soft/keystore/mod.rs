//! The encrypted software keystore: one file, many keys, one KDF run to unlock them all.
//!
//! File format: docs/KEYSTORE.md. Opening goes through three visible stages so each can be
//! measured and each failure is specific: [`SealedKeystore::parse`] (no passphrase needed),
//! [`SealedKeystore::derive_key`] (the one argon2id run; wrong passphrase is detected here),
//! [`SealedKeystore::decrypt`] (AEAD; tampering is detected here), then
//! [`Keystore::from_plaintext`] (builds the [`SoftKey`]s).

mod crypto;
mod error;
/// The file layout, public so the passphrase-free parsing (header, record lists) can be
/// fuzzed and checked by tools without the KDF.
pub mod format;
mod fsio;
mod locked;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use secrecy::{SecretBox, SecretString};
use tron_proto::Address;
use zeroize::Zeroizing;

use super::hd::HdAccount;
use super::key::{SoftKey, SoftKeyError};

pub use crypto::{KdfParams, UnlockKey, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST};
pub use error::KeystoreError;
pub use format::{HEADER_LEN, MAGIC, MAX_KEYS, MAX_LABEL_LEN, VERSION, VERSION_HD};

use crypto::{os_random, NONCE_LEN, SALT_LEN, TAG_LEN};
use format::Header;
use locked::{LockedBytes, LockedVec};

/// What may be shown about a key: everything except the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub address: Address,
    pub label: String,
    /// Unix seconds when the key entered the keystore (generated or imported).
    pub created_at: u64,
}

/// What may be shown about an HD account: its label, creation time and account xpub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HdInfo {
    pub label: String,
    pub created_at: u64,
    /// The account's extended public key (`m/44'/195'/0'`), for the policy and the receive
    /// side.
    pub xpub: String,
}

/// Most HD accounts one keystore holds (all in one locked allocation made once).
pub const MAX_HD_ACCOUNTS: usize = 64;

/// Keys added after loading go into chunks of this many; chunks never reallocate.
const GROW_CHUNK: usize = 64;
/// Below this many keys, loading on one thread is cheaper than spawning.
const PARALLEL_MIN: usize = 256;

/// An unlocked keystore in memory. Keys live in locked, never-reallocated buffers and are
/// wiped on drop; `Debug` shows addresses and labels only.
pub struct Keystore {
    params: KdfParams,
    infos: Vec<KeyInfo>,
    chunks: Vec<LockedVec<SoftKey>>,
    /// (chunk, index within chunk) of each entry of `infos`.
    slots: Vec<(usize, usize)>,
    by_address: HashMap<Address, usize>,
    by_label: HashMap<String, usize>,
    hd_infos: Vec<HdInfo>,
    /// Empty (no allocation) until the first account; then room for [`MAX_HD_ACCOUNTS`].
    hd: LockedVec<HdAccount>,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("params", &self.params)
            .field("keys", &self.infos)
            .field("hd_accounts", &self.hd_infos)
            .finish()
    }
}

/// A parsed but still encrypted keystore file.
pub struct SealedKeystore<'a> {
    header: Header,
    header_bytes: &'a [u8],
    body: &'a [u8],
    tag: [u8; TAG_LEN],
}

/// The decrypted key list, in a locked buffer that is wiped on drop.
pub struct Plaintext(LockedBytes);

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext({} bytes, ..)", self.0.as_slice().len())
    }
}

impl<'a> SealedKeystore<'a> {
    /// Every check that needs no passphrase (magic, version, length, header checksum).
    pub fn parse(file: &'a [u8]) -> Result<Self, KeystoreError> {
        let (header, body, tag) = Header::parse(file)?;
        Ok(SealedKeystore {
            header,
            header_bytes: &file[..HEADER_LEN],
            body,
            tag,
        })
    }

    pub fn params(&self) -> KdfParams {
        self.header.params
    }

    /// The single argon2id run. Fails with `WrongPassphrase` if the check value differs.
    pub fn derive_key(&self, passphrase: &SecretString) -> Result<UnlockKey, KeystoreError> {
        let key = UnlockKey::derive(passphrase, &self.header.salt, &self.header.params)?;
        if !key.check_matches(&self.header.check) {
            return Err(KeystoreError::WrongPassphrase);
        }
        Ok(key)
    }

    /// Authenticates header and ciphertext, and decrypts into locked memory.
    pub fn decrypt(&self, key: &UnlockKey) -> Result<Plaintext, KeystoreError> {
        let mut buf = LockedBytes::with_capacity(self.body.len());
        buf.vec_mut().extend_from_slice(self.body);
        key.open(
            &self.header.nonce,
            self.header_bytes,
            buf.as_mut_slice(),
            &self.tag,
        )?;
        Ok(Plaintext(buf))
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn soft_key(secret: &[u8; 32]) -> Result<SoftKey, SoftKeyError> {
    let boxed = SecretBox::<[u8; 32]>::init_with_mut(|b| b.copy_from_slice(secret));
    SoftKey::from_secret(&boxed)
}

/// Builds the keys of `entries` into one locked chunk (a scalar multiplication each).
fn build_chunk(entries: &[format::Entry<'_>]) -> Result<LockedVec<SoftKey>, KeystoreError> {
    let mut chunk = LockedVec::with_capacity(entries.len());
    for e in entries {
        let key = soft_key(e.secret)
            .map_err(|_| KeystoreError::MalformedPlaintext("a stored key is not a valid scalar"))?;
        if chunk.try_push(key).is_err() {
            return Err(KeystoreError::MalformedPlaintext("chunk overflow"));
        }
    }
    Ok(chunk)
}

impl Keystore {
    /// An empty keystore; `params` are used when it is saved.
    pub fn new(params: KdfParams) -> Self {
        Keystore {
            params,
            infos: Vec::new(),
            chunks: Vec::new(),
            slots: Vec::new(),
            by_address: HashMap::new(),
            by_label: HashMap::new(),
            hd_infos: Vec::new(),
            hd: LockedVec::with_capacity(0),
        }
    }

    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Changes the cost used by the next `save` (re-keys the file then).
    pub fn set_params(&mut self, params: KdfParams) -> Result<(), KeystoreError> {
        params.validate()?;
        self.params = params;
        Ok(())
    }

    pub fn open(path: &Path, passphrase: &SecretString) -> Result<Self, KeystoreError> {
        let file = fsio::read(path)?;
        Self::open_bytes(&file, passphrase)
    }

    pub fn open_bytes(file: &[u8], passphrase: &SecretString) -> Result<Self, KeystoreError> {
        let sealed = SealedKeystore::parse(file)?;
        let key = sealed.derive_key(passphrase)?;
        let plaintext = sealed.decrypt(&key)?;
        Self::from_plaintext(&plaintext, sealed.params(), sealed.header.version)
    }

    /// Parses the decrypted list and derives every key's address, in parallel on large
    /// stores (the scalar multiplications dominate loading).
    pub fn from_plaintext(
        pt: &Plaintext,
        params: KdfParams,
        version: u16,
    ) -> Result<Self, KeystoreError> {
        let lists = format::parse_lists(pt.0.as_slice(), version)?;
        let entries = lists.keys;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        let chunks = if entries.len() >= PARALLEL_MIN && threads > 1 {
            let per = entries.len().div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = entries
                    .chunks(per)
                    .map(|part| s.spawn(move || build_chunk(part)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or(Err(KeystoreError::MalformedPlaintext(
                            "key loading thread failed",
                        )))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?
        } else {
            vec![build_chunk(&entries)?]
        };

        let mut ks = Keystore::new(params);
        ks.infos.reserve(entries.len());
        ks.slots.reserve(entries.len());
        ks.by_address.reserve(entries.len());
        ks.by_label.reserve(entries.len());
        let keys = chunks
            .iter()
            .enumerate()
            .flat_map(|(c, chunk)| chunk.iter().enumerate().map(move |(i, k)| (c, i, k)));
        for (e, (c, i, key)) in entries.iter().zip(keys) {
            let idx = ks.infos.len();
            let address = key.address();
            if ks.by_address.insert(address, idx).is_some() {
                return Err(KeystoreError::MalformedPlaintext("duplicate key"));
            }
            if ks.by_label.insert(e.label.to_owned(), idx).is_some() {
                return Err(KeystoreError::MalformedPlaintext("duplicate label"));
            }
            ks.infos.push(KeyInfo {
                address,
                label: e.label.to_owned(),
                created_at: e.created_at,
            });
            ks.slots.push((c, i));
        }
        ks.chunks = chunks;
        for e in &lists.hd {
            let account = HdAccount::from_seed(e.secret).map_err(|_| {
                KeystoreError::MalformedPlaintext("a stored HD seed derives no account")
            })?;
            ks.push_hd(account, e.label, e.created_at)
                .map_err(|_| KeystoreError::MalformedPlaintext("duplicate HD account or label"))?;
        }
        Ok(ks)
    }

    /// Encrypts under a fresh salt and nonce (one KDF run) and replaces `path` atomically.
    /// Refuses to replace an existing file unless `overwrite`.
    pub fn save(
        &self,
        path: &Path,
        passphrase: &SecretString,
        overwrite: bool,
    ) -> Result<(), KeystoreError> {
        self.save_with_hook(path, passphrase, overwrite, &|| Ok(()))
    }

    fn save_with_hook(
        &self,
        path: &Path,
        passphrase: &SecretString,
        overwrite: bool,
        before_commit: &dyn Fn() -> std::io::Result<()>,
    ) -> Result<(), KeystoreError> {
        if !overwrite && std::fs::symlink_metadata(path).is_ok() {
            // Checked before the KDF too, so the common refusal is immediate.
            return Err(KeystoreError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let bytes = self.seal(passphrase)?;
        fsio::write_atomic(path, &bytes, overwrite, before_commit)
    }

    /// The complete file contents for this keystore under `passphrase`.
    pub fn seal(&self, passphrase: &SecretString) -> Result<Vec<u8>, KeystoreError> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        os_random(&mut salt)?;
        os_random(&mut nonce)?;
        let key = UnlockKey::derive(passphrase, &salt, &self.params)?;

        let version = if self.hd_infos.is_empty() {
            format::VERSION
        } else {
            format::VERSION_HD
        };
        let mut pt_len = format::list_len(self.infos.iter().map(|i| i.label.as_str()));
        if version == format::VERSION_HD {
            pt_len += format::list_len(self.hd_infos.iter().map(|i| i.label.as_str()));
        }
        let ct_len = u32::try_from(pt_len + TAG_LEN).map_err(|_| KeystoreError::TooManyKeys)?;
        let count = u32::try_from(self.infos.len()).map_err(|_| KeystoreError::TooManyKeys)?;
        let mut buf = LockedBytes::with_capacity(pt_len);
        buf.vec_mut().extend_from_slice(&count.to_be_bytes());
        for (info, key) in self.signing_keys() {
            format::push_entry(
                buf.vec_mut(),
                |slot| key.write_secret(slot),
                info.created_at,
                &info.label,
            );
        }
        if version == format::VERSION_HD {
            let count =
                u32::try_from(self.hd_infos.len()).map_err(|_| KeystoreError::TooManyKeys)?;
            buf.vec_mut().extend_from_slice(&count.to_be_bytes());
            for (info, account) in self.hd_accounts() {
                format::push_entry(
                    buf.vec_mut(),
                    |slot| account.write_seed(slot),
                    info.created_at,
                    &info.label,
                );
            }
        }
        if buf.as_slice().len() != pt_len {
            return Err(KeystoreError::MalformedPlaintext(
                "size mismatch while sealing",
            ));
        }
        let header = Header {
            version,
            params: self.params,
            salt,
            nonce,
            ct_len,
            check: *key.check_value(),
        }
        .encode();
        let tag = key.seal(&nonce, &header, buf.as_mut_slice())?;
        let mut out = Vec::with_capacity(HEADER_LEN + pt_len + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(buf.as_slice());
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Adds a new key from the OS random generator.
    pub fn generate(&mut self, label: &str) -> Result<Address, KeystoreError> {
        self.check_label(label)?;
        // A uniformly random 32-byte string is a valid scalar except with probability
        // about 2^-128; retry rather than reduce, so every valid scalar is equally likely.
        for _ in 0..8 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            os_random(bytes.as_mut_slice())?;
            if let Ok(key) = soft_key(&bytes) {
                return self.insert(key, label);
            }
        }
        Err(KeystoreError::Rng(
            "generator produced no valid scalar".into(),
        ))
    }

    /// Adds an existing key. Refuses invalid scalars, a key already present, or a label
    /// already in use.
    pub fn import(
        &mut self,
        label: &str,
        secret: SecretBox<[u8; 32]>,
    ) -> Result<Address, KeystoreError> {
        self.check_label(label)?;
        let key = SoftKey::from_secret(&secret).map_err(|_| KeystoreError::InvalidKey)?;
        self.insert(key, label)
    }

    /// Adds a new HD account from a seed of OS randomness; returns its account xpub.
    pub fn generate_hd(&mut self, label: &str) -> Result<String, KeystoreError> {
        self.check_label(label)?;
        // A seed derives no account with probability about 2^-127; retry rather than fail.
        for _ in 0..8 {
            let mut seed = Zeroizing::new([0u8; 32]);
            os_random(seed.as_mut_slice())?;
            if let Ok(account) = HdAccount::from_seed(&seed) {
                let xpub = account.xpub().to_text();
                self.push_hd(account, label, now_unix())?;
                return Ok(xpub);
            }
        }
        Err(KeystoreError::Rng(
            "generator produced no valid seed".into(),
        ))
    }

    fn push_hd(
        &mut self,
        account: HdAccount,
        label: &str,
        created_at: u64,
    ) -> Result<(), KeystoreError> {
        self.check_label(label)?;
        if self
            .hd
            .iter()
            .any(|a| a.xpub().same_account(account.xpub()))
        {
            return Err(KeystoreError::DuplicateHdAccount);
        }
        if self.hd_infos.len() >= MAX_HD_ACCOUNTS {
            return Err(KeystoreError::TooManyKeys);
        }
        if self.hd_infos.is_empty() {
            self.hd = LockedVec::with_capacity(MAX_HD_ACCOUNTS);
        }
        let xpub = account.xpub().to_text();
        if self.hd.try_push(account).is_err() {
            return Err(KeystoreError::TooManyKeys);
        }
        self.hd_infos.push(HdInfo {
            label: label.to_owned(),
            created_at,
            xpub,
        });
        Ok(())
    }

    /// Each HD account with its description, in insertion order.
    pub fn hd_accounts(&self) -> impl Iterator<Item = (&HdInfo, &HdAccount)> {
        self.hd_infos.iter().zip(self.hd.iter())
    }

    pub fn hd_list(&self) -> Vec<HdInfo> {
        self.hd_infos.clone()
    }

    fn check_label(&self, label: &str) -> Result<(), KeystoreError> {
        format::validate_label(label)?;
        if self.by_label.contains_key(label) || self.hd_infos.iter().any(|i| i.label == label) {
            return Err(KeystoreError::DuplicateLabel(label.to_owned()));
        }
        Ok(())
    }

    fn insert(&mut self, key: SoftKey, label: &str) -> Result<Address, KeystoreError> {
        self.check_label(label)?;
        let address = key.address();
        if self.by_address.contains_key(&address) {
            return Err(KeystoreError::DuplicateAddress(address));
        }
        if self.infos.len() >= MAX_KEYS {
            return Err(KeystoreError::TooManyKeys);
        }
        let key = match self.chunks.last_mut() {
            Some(chunk) => chunk.try_push(key).err(),
            None => Some(key),
        };
        if let Some(key) = key {
            let mut chunk = LockedVec::with_capacity(GROW_CHUNK);
            if chunk.try_push(key).is_err() {
                return Err(KeystoreError::TooManyKeys);
            }
            self.chunks.push(chunk);
        }
        let c = self.chunks.len() - 1;
        let i = self.chunks[c].len() - 1;
        let idx = self.infos.len();
        self.infos.push(KeyInfo {
            address,
            label: label.to_owned(),
            created_at: now_unix(),
        });
        self.slots.push((c, i));
        self.by_address.insert(address, idx);
        self.by_label.insert(label.to_owned(), idx);
        Ok(address)
    }

    pub fn len(&self) -> usize {
        self.infos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    pub fn list(&self) -> Vec<KeyInfo> {
        self.infos.clone()
    }

    /// Each key with its description, in insertion order.
    pub fn signing_keys(&self) -> impl Iterator<Item = (&KeyInfo, &SoftKey)> {
        self.infos
            .iter()
            .zip(&self.slots)
            .filter_map(|(info, &(c, i))| Some((info, self.chunks.get(c)?.get(i)?)))
    }

    pub fn get(&self, address: &Address) -> Option<(&KeyInfo, &SoftKey)> {
        let idx = *self.by_address.get(address)?;
        let (c, i) = *self.slots.get(idx)?;
        Some((self.infos.get(idx)?, self.chunks.get(c)?.get(i)?))
    }

    /// Whether every key buffer is mlock'ed (false where the OS refused; see the log).
    pub fn memory_locked(&self) -> bool {
        self.chunks.iter().all(|c| c.is_locked()) && self.hd.is_locked()
    }
}
