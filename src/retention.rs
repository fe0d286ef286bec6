//! `tron-signer audit prune`: keeps a long-lived ledger's file bounded. Records no window
//! needs any more are removed once an archive of evidence bundles (`audit bundle`) holds
//! them: each bundle is verified first, then the ledger checks that together they hold the
//! records to remove byte for byte as stored (`ledger::prune`). The archive and what is left
//! each verify on their own, and the archive's last hash is the anchor the ledger keeps.

use std::path::{Path, PathBuf};

use crate::audit_bundle::{self, Admins, BundleError, Report};
use crate::ledger::{Ledger, LedgerError, PruneReport, StoredRecord};

/// Why nothing was pruned.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// An archive bundle could not be read or does not verify.
    #[error("archive {path}: {source}")]
    Archive {
        path: String,
        #[source]
        source: BundleError,
    },
    /// The ledger refused (see [`LedgerError::PruneRefused`]) or could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl RetentionError {
    /// The stable code of the underlying error.
    pub fn code(&self) -> &'static str {
        match self {
            RetentionError::Archive { source, .. } => source.code(),
            RetentionError::Ledger(e) => e.code(),
        }
    }
}

/// What a prune did: the bundles verified, and what the ledger removed.
#[derive(Debug)]
pub struct Pruned {
    pub archives: Vec<(PathBuf, Report)>,
    pub removed: PruneReport,
}

/// Verifies every bundle in `archives`, then prunes records up to `through` from the ledger
/// in `data_dir` against them, with the service's own retention horizon.
pub fn prune(
    data_dir: &Path,
    through: u64,
    archives: &[PathBuf],
) -> Result<Pruned, RetentionError> {
    let mut records: Vec<StoredRecord> = Vec::new();
    let mut reports = Vec::with_capacity(archives.len());
    for path in archives {
        let archive = |source| RetentionError::Archive {
            path: path.display().to_string(),
            source,
        };
        let bundle = audit_bundle::read(path).map_err(archive)?;
        let report = audit_bundle::verify(&bundle, Admins::FromBundle).map_err(archive)?;
        records.extend(bundle.stretch.records);
        reports.push((path.clone(), report));
    }
    let removed =
        Ledger::prune_archived(data_dir, through, &records, crate::policy::MAX_WINDOW_MS)?;
    Ok(Pruned {
        archives: reports,
        removed,
    })
}
