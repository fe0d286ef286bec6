//! The process's one PKCS#11 context per module, tokens found by label, and logging in.
//!
//! C_Initialize may run only once per process and module, and login state belongs to the
//! application rather than the session, so these live here and nowhere else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::error::Pkcs11Error;

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11Module>>> = OnceLock::new();

/// A loaded, initialised PKCS#11 module, shared by every pool and command in the process.
///
/// Some modules (SoftHSM among them) never bring a token back once it has vanished until
/// C_Finalize/C_Initialize; [`Pkcs11Module::reinitialize`] does that safely: it waits until
/// no PKCS#11 call is in flight (every call runs inside [`Pkcs11Module::enter`]) and bumps
/// the [epoch](Pkcs11Module::epoch). The module knows nothing of its session pools: each
/// pool compares the epoch its sessions were opened in with the current one and forgets
/// (never closes) sessions a re-initialisation invalidated, since their handle numbers may
/// be reused afterwards.
#[derive(Clone)]
pub struct Pkcs11Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    path: PathBuf,
    ctx: Pkcs11,
    /// Shared by PKCS#11 calls in flight, exclusive for a re-initialisation. The standard
    /// lock on Linux lets a waiting writer go before new readers, so a re-initialisation
    /// is not starved by a steady stream of signatures.
    calls: RwLock<()>,
    /// Bumped by each re-initialisation, so concurrent requests that all failed before
    /// it coalesce into one, and pools see that their sessions are gone.
    epoch: AtomicU64,
}

/// Held while PKCS#11 calls (or sessions) are in use; re-initialisation waits for none.
pub struct CallGuard<'a> {
    _shared: RwLockReadGuard<'a, ()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pkcs11Module {
    /// The module at `path`, loaded and initialised on first use and shared afterwards
    /// (C_Initialize may run once per process).
    pub fn load(path: &Path) -> Result<Self, Pkcs11Error> {
        let map = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = lock(map);
        if let Some(m) = map.get(path) {
            return Ok(m.clone());
        }
        let ctx = Pkcs11::new(path).map_err(|e| Pkcs11Error::ModuleLoad {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        initialize(&ctx, path)?;
        let m = Pkcs11Module {
            inner: Arc::new(ModuleInner {
                path: path.to_owned(),
                ctx,
                calls: RwLock::new(()),
                epoch: AtomicU64::new(0),
            }),
        };
        map.insert(path.to_owned(), m.clone());
        Ok(m)
    }

    /// The raw cryptoki context, for callers that need a call this crate does not wrap.
    pub fn context(&self) -> &Pkcs11 {
        &self.inner.ctx
    }

    /// Enters the module: PKCS#11 calls and sessions are used only while a guard is held.
    /// Never take a second guard while holding one (a waiting re-initialisation would
    /// deadlock the two).
    pub fn enter(&self) -> CallGuard<'_> {
        CallGuard {
            _shared: self.inner.calls.read().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// The re-initialisation count; read it before an attempt whose failure may call
    /// [`Pkcs11Module::reinitialize`]. Stable while a [`CallGuard`] is held.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// C_Finalize then C_Initialize, once no call is in flight, so a token that vanished
    /// and came back is seen again; every session of the module dies with it. Does nothing
    /// if the module was re-initialised since `seen_epoch` (another request already did
    /// it). Must be called without holding a [`CallGuard`].
    pub fn reinitialize(&self, seen_epoch: u64) -> Result<(), Pkcs11Error> {
        let _exclusive = self.inner.calls.write().unwrap_or_else(|p| p.into_inner());
        if self.epoch() != seen_epoch {
            return Ok(());
        }
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        // Sessions are gone with the finalisation; errors here mean it was already down.
        let _ = self.inner.ctx.clone().finalize();
        initialize(&self.inner.ctx, &self.inner.path)
    }
}

fn initialize(ctx: &Pkcs11, path: &Path) -> Result<(), Pkcs11Error> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(Pkcs11Error::ModuleInit {
            path: path.to_owned(),
            rv: e.to_string(),
        }),
    }
}

/// The shared context for `path`; see [`Pkcs11Module::load`].
pub fn module(path: &Path) -> Result<Pkcs11Module, Pkcs11Error> {
    Pkcs11Module::load(path)
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
    if matches!(state, SessionState::RoUser | SessionState::RwUser) {
        return Ok(session);
    }
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(Pkcs11Error::from_cryptoki("C_Login", e)),
    }
}
