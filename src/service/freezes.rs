//! The administrators' freezes in force, as the service holds them between ledger commits
//! (the ledger keeps them durably; `crate::freeze` judges the statements).
//!
//! A set names the policy it freezes and counts only while that policy is in force. One that
//! was recorded but cannot be read back freezes everything: failing closed is the point of a
//! freeze.

use std::sync::{Arc, Mutex, PoisonError};

use crate::freeze::{FreezeSet, Order, Scope};
use crate::policy::LoadedPolicy;
use crate::reason::ReasonCode;

use super::refusal::{Refusal, RefusalKind};

/// A freeze set, the policy hash it names, and its recorded bytes.
type Keyed = (Option<[u8; 32]>, Arc<FreezeSet>, Vec<u8>);

/// The freezes in force, and the lock that orders their changes.
pub struct Freezes {
    /// The set and the policy hash it names, decoded once (it is read on every request).
    current: Mutex<Option<Keyed>>,
    /// Held across read, record and replace, so two freezes at once both count.
    write: tokio::sync::Mutex<()>,
}

impl Freezes {
    /// The set the ledger recorded (if any), under the policy with hash `policy_hex`.
    pub fn load(recorded: Option<Vec<u8>>, policy_hex: &str) -> Freezes {
        Freezes {
            current: Mutex::new(recorded.map(|b| decoded(b, policy_hex))),
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// Brings the set in line with what a shared ledger recorded: another signer took a
    /// freeze, or put a new policy in force (which lifted them). Compares bytes, so it costs
    /// next to nothing when nothing changed.
    pub fn sync(&self, recorded: Option<&[u8]>, policy_hex: &str) {
        let mut slot = self.slot();
        let same = match (&*slot, recorded) {
            (None, None) => true,
            (Some((_, _, bytes)), Some(r)) => bytes.as_slice() == r,
            _ => false,
        };
        if !same {
            tracing::warn!(
                frozen = recorded.is_some(),
                "the freezes in force changed on the shared ledger (another signer)"
            );
            *slot = recorded.map(|b| decoded(b.to_vec(), policy_hex));
        }
    }

    /// The freezes that count under `policy`.
    pub fn under(&self, policy: &LoadedPolicy) -> Option<Arc<FreezeSet>> {
        match &*self.slot() {
            Some((Some(hash), set, _)) if *hash == policy.hash => Some(Arc::clone(set)),
            _ => None,
        }
    }

    /// Replaces the set once the ledger has recorded it.
    pub fn replace(&self, set: FreezeSet) {
        let bytes = set.encode();
        *self.slot() = Some(keyed(Arc::new(set), bytes));
    }

    /// The set's bytes as recorded (whatever policy it names), `None` when none is.
    pub fn recorded_bytes(&self) -> Option<Vec<u8>> {
        self.slot().as_ref().map(|(_, _, bytes)| bytes.clone())
    }

    /// Drops every freeze: a new policy is in force.
    pub fn lift(&self) {
        *self.slot() = None;
    }

    pub async fn writing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Keyed>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A recorded set, decoded; one that cannot be read freezes everything.
fn decoded(bytes: Vec<u8>, policy_hex: &str) -> Keyed {
    let set = Arc::new(FreezeSet::decode(&bytes).unwrap_or_else(|| {
        tracing::error!(
            "the recorded freezes cannot be read; every key stays frozen until a new policy \
             is in force"
        );
        FreezeSet {
            policy: policy_hex.to_owned(),
            orders: vec![Order {
                scope: Scope::All,
                admin: "(unreadable record)".into(),
                fingerprint: String::new(),
                issued_ms: 0,
                reason: "the freezes recorded in the ledger cannot be read".into(),
                statement: String::new(),
                signature: String::new(),
            }],
        }
    }));
    keyed(set, bytes)
}

/// A set with the policy hash it names decoded (`None` if it names none readable: it then
/// freezes no policy, and a policy in force always has a hash).
fn keyed(set: Arc<FreezeSet>, bytes: Vec<u8>) -> Keyed {
    let hash = hex::decode(&set.policy)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    (hash, set, bytes)
}

/// The refusal of a request for a key `order` freezes.
pub fn refusal(order: &Order) -> Refusal {
    Refusal::new(
        RefusalKind::Denied,
        ReasonCode::Frozen,
        format!(
            "{}; nothing is signed (stored signatures are not returned either) until a new \
             quorum-signed policy is in force",
            order.describe()
        ),
    )
}
