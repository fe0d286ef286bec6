//! Making a bundle from a signer's data directory: the stretch of the chain from the ledger
//! (read-only, beside a running service), each policy it names from the archive, with the
//! signatures archived beside it. The stretch is checked before it is bundled, so a bundle
//! is never the first place a broken chain shows.

use std::path::Path;

use crate::durable_file;
use crate::ledger;
use crate::policy::archive;

use super::error::BundleError;
use super::format::{Bundle, Policy, Signature, MAX_BUNDLE_BYTES, MAX_RECORD_BYTES};

/// Records `from..=to` of the ledger under `data_dir`, and every policy they name.
pub fn make(data_dir: &Path, from: u64, to: u64) -> Result<Bundle, BundleError> {
    // Hex doubles the records: half the bundle for them leaves the rest for the policies.
    let stretch = ledger::read_stretch(
        data_dir,
        from,
        to,
        MAX_RECORD_BYTES,
        (MAX_BUNDLE_BYTES / 2) as usize,
    )
    .map_err(|e| match e.bad_sequence() {
        // A damaged row, a missing anchor or head: the chain does not verify.
        Some(_) => BundleError::Chain(e),
        None => BundleError::Ledger(e),
    })?;
    let named = ledger::check_stretch(&stretch, from, to).map_err(BundleError::Chain)?;
    let mut policies: Vec<Policy> = Vec::new();
    for r in &named {
        let mut hash = [0u8; 32];
        if r.policy_hash.len() != 64 || hex::decode_to_slice(&r.policy_hash, &mut hash).is_err() {
            return Err(BundleError::RecordPolicyHash {
                seq: r.sequence,
                hash: r.policy_hash.chars().take(80).collect(),
            });
        }
        if policies.iter().any(|p| p.hash == hash) {
            continue;
        }
        let unavailable = |detail: String| BundleError::PolicyUnavailable {
            seq: r.sequence,
            hash: r.policy_hash.clone(),
            detail,
        };
        let text = archive::read(data_dir, &hash).map_err(|e| unavailable(e.to_string()))?;
        let signatures = archive::signatures(data_dir, &hash)
            .map_err(|e| unavailable(e.to_string()))?
            .into_iter()
            .map(|(admin, signature)| {
                let key =
                    key_of(&signature).map_err(|detail| BundleError::SignatureUnreadable {
                        hash: r.policy_hash.clone(),
                        admin: admin.clone(),
                        detail,
                    })?;
                Ok(Signature {
                    admin,
                    key,
                    signature,
                })
            })
            .collect::<Result<Vec<_>, BundleError>>()?;
        policies.push(Policy {
            hash,
            text,
            signatures,
        });
    }
    Ok(Bundle {
        from,
        to,
        stretch,
        policies,
    })
}

/// The OpenSSH line of the key an armored SSHSIG names (not yet verified: the bundle says
/// which key to check it with; `verify` does).
fn key_of(armored: &str) -> Result<String, String> {
    let sig = ssh_key::SshSig::from_pem(armored.trim())
        .map_err(|e| format!("not an SSH signature: {e}"))?;
    ssh_key::PublicKey::from(sig.public_key().clone())
        .to_openssh()
        .map_err(|e| format!("its key cannot be written out: {e}"))
}

/// Refuses an existing `out` before anything is read, so a long stretch is not gathered
/// only to be refused.
pub fn check_new(out: &Path) -> Result<(), BundleError> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(BundleError::Exists {
            path: out.display().to_string(),
        });
    }
    Ok(())
}

/// Writes `bundle` to `out`, which must not exist (never replaced): atomically, fsynced,
/// owner-only like the ledger it comes from. Returns its size in bytes.
pub fn save(bundle: &Bundle, out: &Path) -> Result<u64, BundleError> {
    let bytes = bundle.to_json();
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("a bundle of records {} to {}", bundle.from, bundle.to),
            size: bytes.len() as u64,
            max: MAX_BUNDLE_BYTES,
        });
    }
    durable_file::write_atomic(out, &bytes, durable_file::Mode::CreateNew, &|| Ok(())).map_err(
        |e| {
            if e.already_exists() {
                BundleError::Exists {
                    path: out.display().to_string(),
                }
            } else {
                BundleError::Write {
                    path: out.display().to_string(),
                    detail: format!("{}: {}", e.step, e.source),
                }
            }
        },
    )?;
    Ok(bytes.len() as u64)
}
