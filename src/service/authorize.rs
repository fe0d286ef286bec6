//! Who is asking, and may they: the transport's identity recognised as one `[[caller]]` of
//! the policy in force, then its grants for the RPC and the key. Everything here is a
//! refusal with its own reason code; the core audits it like any other.

use tron_proto::Address;

use crate::policy::{CallerPolicy, KeyGrant, Policy, Presented, Recognised, Recognition, Rpc};
use crate::reason::ReasonCode;

use super::peer::Peer;
use super::refusal::{Refusal, RefusalKind};

/// A caller the policy recognised and granted the RPC.
#[derive(Debug, Clone, Copy)]
pub(super) struct Authorized<'p> {
    pub caller: &'p CallerPolicy,
    pub by: &'p Recognition,
}

impl Authorized<'_> {
    /// Refuses an RPC outside the caller's grant.
    fn rpc(&self, rpc: Rpc) -> Result<(), Refusal> {
        if self.caller.may_call(rpc) {
            return Ok(());
        }
        Err(Refusal::new(
            RefusalKind::Denied,
            ReasonCode::CallerNotAllowed,
            format!(
                "caller {:?} (recognised by {}) has no grant for {rpc}; it may call {}",
                self.caller.name,
                self.by,
                listed(self.caller.rpcs.iter().map(|r| r.as_str().to_owned()))
            ),
        ))
    }

    /// Refuses a key outside the caller's grant.
    pub fn key(&self, key: &Address) -> Result<(), Refusal> {
        if self.caller.may_use(key) {
            return Ok(());
        }
        Err(Refusal::new(
            RefusalKind::Denied,
            ReasonCode::CallerKeyNotAllowed,
            format!(
                "caller {:?} is not granted key {key} (it may use {}); nothing was signed",
                self.caller.name,
                match &self.caller.keys {
                    KeyGrant::All => "every key".to_owned(),
                    KeyGrant::Listed(keys) => listed(keys.iter().map(|k| k.to_base58())),
                }
            ),
        ))
    }
}

impl Authorized<'_> {
    /// Refuses a deposit key (`key` at HD `index`) that no deposit account of `policy`
    /// derives, or whose account is outside the caller's grant.
    pub fn deposit_key(&self, policy: &Policy, key: &Address, index: u32) -> Result<(), Refusal> {
        let account = policy
            .deposit_account_for(key, index)
            .map_err(|d| Refusal::new(RefusalKind::Denied, d.code.reason(), d.message))?;
        if self.caller.may_sweep(&account.name) {
            return Ok(());
        }
        Err(Refusal::new(
            RefusalKind::Denied,
            ReasonCode::CallerKeyNotAllowed,
            format!(
                "caller {:?} is not granted deposit account {:?} (deposit key {key}, index {index}); nothing was signed",
                self.caller.name, account.name
            ),
        ))
    }
}

/// The caller `peer` is under `policy`, if it may call `rpc`; a refusal for want of the
/// grant still names the caller (`Err(Some(..))`).
pub(super) fn authorize<'p>(
    policy: &'p Policy,
    peer: &Peer,
    rpc: Rpc,
) -> Result<Authorized<'p>, (Option<Authorized<'p>>, Refusal)> {
    let a = recognise(policy, peer).map_err(|r| (None, r))?;
    a.rpc(rpc).map_err(|r| (Some(a), r))?;
    Ok(a)
}

/// The one caller `peer` is under `policy`.
fn recognise<'p>(policy: &'p Policy, peer: &Peer) -> Result<Authorized<'p>, Refusal> {
    let presented = peer.presented();
    let (caller, by) = match policy.recognise(&presented) {
        Recognised::Caller { caller, by } => (caller, by),
        Recognised::Unknown => return Err(unknown(peer, &presented)),
        Recognised::Ambiguous { first, second } => {
            return Err(Refusal::new(
                RefusalKind::Denied,
                ReasonCode::CallerAmbiguous,
                format!(
                    "{} is recognised as both caller {:?} and caller {:?}; the policy must \
                     recognise an identity as one caller only",
                    peer.describe(),
                    first.name,
                    second.name
                ),
            ))
        }
    };
    Ok(Authorized { caller, by })
}

/// The refusal of an identity no caller claims: it says what the transport saw, in the
/// words a `[[caller]]` would use, so the operator can add it if it should be allowed.
fn unknown(peer: &Peer, presented: &Presented<'_>) -> Refusal {
    let saw = match presented {
        Presented::Tls {
            spki_sha256,
            subject,
            sans,
            ca_verified,
        } => {
            let mut saw = format!(
                "a TLS client with tls_pin {:?}, tls_subject {subject:?}",
                hex::encode(spki_sha256)
            );
            if !sans.is_empty() {
                saw.push_str(&format!(", tls_san {}", listed(sans.iter().cloned())));
            }
            if !ca_verified {
                saw.push_str(
                    " (trusted by a pin, not a CA: only tls_pin can recognise it, not its names)",
                );
            }
            saw
        }
        Presented::Unix { uid } => format!("a Unix socket process with unix_uid {uid}"),
        Presented::LoopbackPlaintext => {
            "a plaintext loopback TCP connection (no caller has insecure_loopback = true)".into()
        }
        Presented::BatchExporter { ed25519 } => format!(
            "a batch file signed by the Ed25519 key {} (no caller lists it as batch_key)",
            crate::policy::caller::ed25519_fingerprint(ed25519)
        ),
        Presented::Internal => "a peer whose identity could not be read".into(),
    };
    Refusal::new(
        RefusalKind::Denied,
        ReasonCode::CallerUnknown,
        format!(
            "no [[caller]] of the policy in force recognises {saw} [{}]; an unlisted caller \
             may do nothing",
            peer.describe()
        ),
    )
}

fn listed(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    if all.is_empty() {
        "nothing".into()
    } else {
        all.join(", ")
    }
}
