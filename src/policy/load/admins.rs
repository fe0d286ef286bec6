//! `[policy_admins]`: the administrators (name and SSH public key line) and the threshold
//! that, once this policy is in force, must sign the next one. The same shape as the signer
//! config's section, checked by the same rules (`governance::AdminSet`).

use super::table::{field, Field, Fields, Kind, Obj, Schema};
use crate::governance::{AdminSet, AdminSetError};
use crate::policy::problem::{ProblemCode as C, Problems};

const THRESHOLD: Field = field("threshold", Kind::Uint, true);
const ADMINS: Field = field("admins", Kind::Array, true);

static SCHEMA: Schema = Schema {
    fields: &[&THRESHOLD, &ADMINS],
};

const NAME: Field = field("name", Kind::Str, true);
const KEY: Field = field("key", Kind::Str, true);

static ADMIN: Schema = Schema {
    fields: &[&NAME, &KEY],
};

/// Reads `[policy_admins]` (absent: `None`, the config's set stays the one that counts).
pub(super) fn read(p: &mut Problems<'_>, table: Option<Obj<'_, '_>>) -> Option<AdminSet> {
    let table = table?;
    let span = table.span.clone();
    let f = Fields::new(table, &SCHEMA);
    f.check_unknown(p);
    let threshold = f.uint(p, &THRESHOLD);
    let mut entries = Vec::new();
    let mut complete = true;
    for item in f.array(p, &ADMINS).into_iter().flatten() {
        let Some(obj) = Obj::from_node(p, item, "an entry of policy_admins.admins") else {
            complete = false;
            continue;
        };
        let a = Fields::new(obj, &ADMIN);
        a.check_unknown(p);
        match (a.str(p, &NAME), a.str(p, &KEY)) {
            (Some(name), Some(key)) => entries.push((name.value.to_owned(), key.value.to_owned())),
            _ => complete = false,
        }
    }
    let threshold = threshold?;
    if !complete {
        return None;
    }
    let count = usize::try_from(threshold.value).unwrap_or(usize::MAX);
    match AdminSet::new(&entries, count) {
        Ok(set) => Some(set),
        Err(e) => {
            let code = match e {
                AdminSetError::BadKey { .. }
                | AdminSetError::KeyType { .. }
                | AdminSetError::Unusable { .. } => C::BadIdentity,
                _ => C::BadAdminSet,
            };
            p.at(span, code, format!("[policy_admins]: {e}"));
            None
        }
    }
}
