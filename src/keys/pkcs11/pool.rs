//! A pool of logged-in sessions on one token that rebuilds itself after faults.
//!
//! A PKCS#11 session runs one operation at a time, so concurrency needs several. When a
//! fault says sessions, login state or object handles can no longer be trusted, the pool
//! moves to a new generation: idle sessions are closed, sessions still lent out are closed
//! when returned, and the next checkout finds the token again by label, opens a fresh
//! session and logs in. Key handles are cached per generation by the callers.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::session::Session;
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::context::{find_slot, open_logged_in, GateGuard, Pkcs11Module};
use super::error::Pkcs11Error;

/// Counters an operator (or a test) can read to see recovery happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Current generation; bumped by every reset.
    pub generation: u64,
    /// Sessions opened over the pool's life.
    pub sessions_opened: u64,
    /// Sessions of the current generation, idle or lent out.
    pub sessions_live: usize,
}

struct State {
    generation: u64,
    slot: Option<Slot>,
    idle: Vec<Session>,
    live: usize,
    opened: u64,
}

pub struct SessionPool {
    module: Pkcs11Module,
    token_label: String,
    pin: SecretString,
    read_write: bool,
    capacity: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
    /// One permit per session: async callers wait here, on the runtime, before taking a
    /// blocking thread, so a burst of requests does not park hundreds of OS threads on
    /// `freed` (measured: kernel scheduling was 17 % of the signer's CPU under 256 clients).
    admission: Arc<tokio::sync::Semaphore>,
}

/// A session lent out by the pool; goes back (or is closed, if the pool moved on) on drop.
pub struct Lease {
    pool: Arc<SessionPool>,
    session: Option<Session>,
    generation: u64,
    // Declared last: dropped after the session has gone back or been closed.
    _gate: GateGuard,
}

impl Lease {
    pub fn session(&self) -> &Session {
        // Only `Drop` takes the session out.
        self.session.as_ref().unwrap_or_else(|| unreachable!())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.give_back(session, self.generation);
        }
    }
}

impl SessionPool {
    /// Finds the token, opens one session and logs in, so a wrong PIN or a missing token
    /// fails at startup rather than on the first payout.
    pub fn open(
        module: Pkcs11Module,
        token_label: &str,
        pin: SecretString,
        read_write: bool,
        capacity: usize,
        wait: Duration,
    ) -> Result<Arc<Self>, Pkcs11Error> {
        let pool = Arc::new(SessionPool {
            module,
            token_label: token_label.to_owned(),
            pin,
            read_write,
            capacity: capacity.max(1),
            wait,
            state: Mutex::new(State {
                generation: 0,
                slot: None,
                idle: Vec::new(),
                live: 0,
                opened: 0,
            }),
            freed: Condvar::new(),
            admission: Arc::new(tokio::sync::Semaphore::new(capacity.max(1))),
        });
        pool.module.register(&pool);
        drop(pool.checkout()?);
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for room to run one blocking operation (at most one per session), up to the
    /// pool's checkout wait. Move the permit into the blocking task, so that it is released
    /// when the operation ends, not when a cancelled request stops waiting for it.
    pub async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Pkcs11Error> {
        let started = Instant::now();
        let admission = Arc::clone(&self.admission);
        match tokio::time::timeout(self.wait, admission.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; both arms mean no room in time.
            Ok(Err(_)) | Err(_) => Err(Pkcs11Error::PoolTimeout {
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        PoolStats {
            generation: st.generation,
            sessions_opened: st.opened,
            sessions_live: st.live,
        }
    }

    /// Borrows a logged-in session, opening one if the pool is below capacity, waiting
    /// for one otherwise. Blocks: call it from a blocking thread only.
    pub fn checkout(self: &Arc<Self>) -> Result<Lease, Pkcs11Error> {
        let deadline = Instant::now() + self.wait;
        let gate = self.module.enter();
        let mut st = self.lock();
        loop {
            if let Some(session) = st.idle.pop() {
                return Ok(Lease {
                    pool: Arc::clone(self),
                    session: Some(session),
                    generation: st.generation,
                    _gate: gate,
                });
            }
            if st.live < self.capacity {
                // Opening happens under the lock: it is rare (startup, recovery) and keeps
                // a herd of requests from all re-finding the token at once.
                let generation = st.generation;
                let slot = match st.slot {
                    Some(s) => s,
                    None => {
                        let s = find_slot(self.module.context(), &self.token_label)?;
                        st.slot = Some(s);
                        s
                    }
                };
                let opened =
                    open_logged_in(self.module.context(), slot, self.read_write, &self.pin);
                return match opened {
                    Ok(session) => {
                        st.live += 1;
                        st.opened += 1;
                        Ok(Lease {
                            pool: Arc::clone(self),
                            session: Some(session),
                            generation,
                            _gate: gate,
                        })
                    }
                    Err(e) => {
                        if e.needs_reset() {
                            Self::reset_locked(&mut st, generation);
                        }
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Pkcs11Error::PoolTimeout {
                    waited_ms: u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX),
                });
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Forgets every session and the slot of `generation` (if it is still current), so the
    /// next checkout starts from the token label again.
    pub fn reset(&self, generation: u64) {
        let idle = {
            let mut st = self.lock();
            Self::reset_locked(&mut st, generation)
        };
        // Closing may block on a sick device; do it outside the lock. Errors on close
        // (the session is already gone) are expected and ignored by cryptoki.
        drop(idle);
        self.freed.notify_all();
    }

    fn reset_locked(st: &mut State, generation: u64) -> Vec<Session> {
        if st.generation != generation {
            return Vec::new();
        }
        st.generation += 1;
        st.slot = None;
        st.live = 0;
        std::mem::take(&mut st.idle)
    }

    /// Called by module re-initialisation with no lease out: the sessions' handles die
    /// with C_Finalize and their numbers may be reused, so they are leaked, not closed.
    pub(crate) fn forget_all(&self) {
        let mut st = self.lock();
        let generation = st.generation;
        for session in Self::reset_locked(&mut st, generation) {
            std::mem::forget(session);
        }
    }

    /// Re-initialises the module after the token could not be found, so a token that
    /// came back is seen. Call with no lease held.
    pub fn recover_module(&self, seen_epoch: u64) -> Result<(), Pkcs11Error> {
        self.module.reinitialize(seen_epoch)
    }

    /// See [`Pkcs11Module::epoch`].
    pub fn module_epoch(&self) -> u64 {
        self.module.epoch()
    }

    fn give_back(&self, session: Session, generation: u64) {
        let mut st = self.lock();
        if st.generation == generation {
            st.idle.push(session);
            drop(st);
        } else {
            drop(st);
            drop(session);
        }
        self.freed.notify_one();
    }
}
