//! The policy in force: swapped atomically on reload, and archived by hash under the data
//! directory (with the administrators' signatures that put it in force) so that any audit
//! record's policy hash can be resolved to its exact text.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::policy::archive::{self, ArchiveError};
use crate::policy::LoadedPolicy;

/// Holds the policy in force. Readers take a snapshot (`Arc`) and keep deciding on it even
/// if a reload replaces it meanwhile.
pub(super) struct PolicySlot {
    current: RwLock<Arc<LoadedPolicy>>,
    /// Where texts are archived (the ledger's data directory).
    dir: PathBuf,
}

impl PolicySlot {
    /// Puts `policy` in force, archiving its text under `dir`.
    pub fn new(policy: LoadedPolicy, dir: PathBuf) -> Self {
        let policy = archived(&dir, policy);
        PolicySlot {
            current: RwLock::new(Arc::new(policy)),
            dir,
        }
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<LoadedPolicy> {
        match self.current.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `new` in force atomically and returns the policy it replaced. An outgoing policy
    /// whose archive could not be written has its only copy in memory: it gets one more try,
    /// so audit records naming it can still be resolved to its text.
    pub fn swap(&self, new: LoadedPolicy) -> Arc<LoadedPolicy> {
        let new = archived(&self.dir, new);
        let old = {
            let mut slot = match self.current.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *slot, Arc::new(new))
        };
        if let Some(text) = &old.text {
            let hash = old.hash_hex();
            match archive::store(&self.dir, text.as_bytes(), &old.hash) {
                Ok(_) => tracing::info!(policy = %hash, "outgoing policy archived"),
                Err(e) => tracing::error!(
                    policy = %hash,
                    "policy no longer in force and its text could not be archived: {e}"
                ),
            }
        }
        old
    }

    /// Archives the administrators' signatures that put the policy with this hash in force
    /// (see [`crate::policy::archive`]). A failure is logged, not fatal: the policy is
    /// authorised either way; only an auditor's bundle would then lack the signatures.
    /// Blocking file I/O.
    pub fn keep_signatures(&self, hash: &[u8; 32], signatures: &[(String, String)]) {
        if signatures.is_empty() {
            return;
        }
        match archive::store_signatures(&self.dir, hash, signatures) {
            Ok(()) => tracing::info!(
                policy = %hex::encode(hash),
                count = signatures.len(),
                "policy signatures archived"
            ),
            Err(e) => tracing::error!(
                policy = %hex::encode(hash),
                "the policy's signatures could not be archived: {e}"
            ),
        }
    }

    /// The text of `policy` (one this slot put in force): from memory, or from the archive,
    /// checked by hash. Blocking file I/O when archived.
    pub fn text(&self, policy: &LoadedPolicy) -> Result<String, ArchiveError> {
        match &policy.text {
            Some(t) => Ok(t.clone()),
            None => archive::read(&self.dir, &policy.hash),
        }
    }

    /// The text of the policy with this hash: the one in force (even when its text could not
    /// be archived and lives only in memory), or any earlier one from the archive, checked by
    /// hash. Blocking file I/O.
    pub fn text_by_hash(&self, hash: &[u8; 32]) -> Result<String, ArchiveError> {
        let current = self.current();
        if current.hash == *hash {
            self.text(&current)
        } else {
            archive::read(&self.dir, hash)
        }
    }
}

/// Archives the policy's text under `dir` and drops it from memory. If the archive cannot be
/// written the text stays in memory (and `GetPolicy` keeps working); the failure is logged,
/// since the archive then lacks this policy.
fn archived(dir: &std::path::Path, mut policy: LoadedPolicy) -> LoadedPolicy {
    if let Some(text) = &policy.text {
        match archive::store(dir, text.as_bytes(), &policy.hash) {
            Ok(_) => policy.text = None,
            Err(e) => tracing::warn!("policy {} kept in memory: {e}", policy.hash_hex()),
        }
    }
    policy
}
