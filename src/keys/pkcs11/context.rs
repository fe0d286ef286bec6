//! The process's one PKCS#11 context per module, tokens found by label, and logging in.
//!
//! C_Initialize may run only once per process and module, and login state belongs to the
//! application rather than the session, so these live here and nowhere else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::error::Pkcs11Error;
use super::pool::SessionPool;

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11Module>>> = OnceLock::new();

/// A loaded, initialised PKCS#11 module, shared by every pool and command in the process.
///
/// Some modules (SoftHSM among them) never bring a token back once it has vanished until
/// C_Finalize/C_Initialize; [`Pkcs11Module::reinitialize`] does that safely: a gate keeps
/// every PKCS#11 call out while it runs, and pools forget (never close) the sessions the
/// re-initialisation invalidates, since their handle numbers may be reused afterwards.
#[derive(Clone)]
pub struct Pkcs11Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    path: PathBuf,
    ctx: Pkcs11,
    gate: Mutex<GateState>,
    gate_cv: Condvar,
    pools: Mutex<Vec<Weak<SessionPool>>>,
    /// Bumped by each re-initialisation, so concurrent requests that all failed before
    /// it coalesce into one.
    epoch: AtomicU64,
}

#[derive(Default)]
struct GateState {
    readers: usize,
    writer: bool,
}

/// Held while PKCS#11 calls (or sessions) are in use; re-initialisation waits for none.
pub struct GateGuard {
    module: Arc<ModuleInner>,
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        let mut g = lock(&self.module.gate);
        g.readers -= 1;
        drop(g);
        self.module.gate_cv.notify_all();
    }
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
                gate: Mutex::new(GateState::default()),
                gate_cv: Condvar::new(),
                pools: Mutex::new(Vec::new()),
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
    pub fn enter(&self) -> GateGuard {
        let mut g = lock(&self.inner.gate);
        while g.writer {
            g = self
                .inner
                .gate_cv
                .wait(g)
                .unwrap_or_else(|p| p.into_inner());
        }
        g.readers += 1;
        GateGuard {
            module: Arc::clone(&self.inner),
        }
    }

    pub(crate) fn register(&self, pool: &Arc<SessionPool>) {
        let mut pools = lock(&self.inner.pools);
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// The re-initialisation count; read it before an attempt whose failure may call
    /// [`Pkcs11Module::reinitialize`].
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    /// C_Finalize then C_Initialize, once no call is in flight, so a token that vanished
    /// and came back is seen again. Every pool on the module moves to a new generation.
    /// Does nothing if the module was re-initialised since `seen_epoch` (another request
    /// already did it). Must be called without holding a [`GateGuard`].
    pub fn reinitialize(&self, seen_epoch: u64) -> Result<(), Pkcs11Error> {
        {
            let mut g = lock(&self.inner.gate);
            while g.writer {
                g = self
                    .inner
                    .gate_cv
                    .wait(g)
                    .unwrap_or_else(|p| p.into_inner());
            }
            g.writer = true;
            while g.readers > 0 {
                g = self
                    .inner
                    .gate_cv
                    .wait(g)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        let result = if self.epoch() == seen_epoch {
            self.reinitialize_exclusive()
        } else {
            Ok(())
        };
        lock(&self.inner.gate).writer = false;
        self.inner.gate_cv.notify_all();
        result
    }

    fn reinitialize_exclusive(&self) -> Result<(), Pkcs11Error> {
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        let pools: Vec<_> = lock(&self.inner.pools)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for pool in &pools {
            pool.forget_all();
        }
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
