//! The process's one PKCS#11 context per module, tokens found by label, and logging in.
//!
//! C_Initialize may run only once per process and module, and login state belongs to the
//! application rather than the session, so these live here and nowhere else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::error::Pkcs11Error;

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The context for `path`, loaded and initialised on first use and shared afterwards.
pub fn module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    let map = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(path) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| Pkcs11Error::ModuleLoad {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Pkcs11Error::ModuleInit {
                path: path.to_owned(),
                rv: e.to_string(),
            })
        }
    }
    map.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// The slot currently holding the token labelled `label`; looked up afresh each time
/// because slot numbers move when tokens are re-plugged or re-created.
pub fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, Pkcs11Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| Pkcs11Error::from_cryptoki("C_GetSlotList", e))?;
    let mut found = Vec::new();
    for slot in slots {
        // A slot whose token vanished between the two calls is simply not a match.
        if let Ok(info) = ctx.get_token_info(slot) {
            if info.label().trim_end() == label {
                found.push(slot);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Pkcs11Error::TokenNotFound {
            label: label.to_owned(),
        }),
        many => Err(Pkcs11Error::TokenAmbiguous {
            label: label.to_owned(),
            count: many.len(),
        }),
    }
}

/// Opens a session on `slot` and makes sure the user is logged in. Login is per
/// application and token, so a session opened while another is logged in already is,
/// and CKR_USER_ALREADY_LOGGED_IN is success.
pub fn open_logged_in(
    ctx: &Pkcs11,
    slot: Slot,
    read_write: bool,
    pin: &SecretString,
) -> Result<Session, Pkcs11Error> {
    let session = if read_write {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(|e| Pkcs11Error::from_cryptoki("C_OpenSession", e))?;
    let state = session
        .get_session_info()
        .map_err(|e| Pkcs11Error::from_cryptoki("C_GetSessionInfo", e))?
        .session_state();
    if matches!(
        state,
        SessionState::RoUser | SessionState::RwUser
    ) {
        return Ok(session);
    }
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(Pkcs11Error::from_cryptoki("C_Login", e)),
    }
}
