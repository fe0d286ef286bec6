//! A pool of logged-in sessions on one token that rebuilds itself after faults.
//!
//! A PKCS#11 session runs one operation at a time, so concurrency needs several. Admission
//! is one semaphore with a permit per session: a request waits for a permit (on the async
//! runtime, up to the pool's wait), and with one in hand a session is always idle or may be
//! opened, so checking out never waits. The permit travels into the blocking task, so a
//! request cancelled while its signature runs still holds it until the token is done: no
//! more blocking signs run than there are sessions.
//!
//! When a fault says sessions, login state or object handles can no longer be trusted, the
//! pool moves to a new generation: idle sessions are closed, sessions still lent out are
//! closed when returned, and the next checkout finds the token again by label, opens a
//! fresh session and logs in. A module re-initialisation (seen as a new module epoch)
//! does the same, except that the old sessions are forgotten, not closed. Key handles are
//! cached per generation by the callers.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::session::Session;
use cryptoki::slot::Slot;
use secrecy::SecretString;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::context::{find_slot, open_logged_in, CallGuard, Pkcs11Module};
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
    /// The module epoch the current generation's sessions were opened in.
    epoch: u64,
    slot: Option<Slot>,
    idle: Vec<Session>,
    live: usize,
    opened: u64,
}

/// Logged-in sessions on one token, at most `capacity` of them in use at once.
pub struct SessionPool {
    module: Pkcs11Module,
    token_label: String,
    pin: SecretString,
    read_write: bool,
    capacity: usize,
    wait: Duration,
    state: Mutex<State>,
    /// One permit per session; see the module documentation.
    permits: Arc<Semaphore>,
}

/// The right to use one session. Keep it until the PKCS#11 work it admits is finished.
#[must_use = "the permit admits one operation; dropping it lets another in"]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

/// A session lent out by the pool; goes back (or is closed, if the pool moved on) on drop.
pub struct Lease<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    generation: u64,
    // Declared last: dropped after the session has gone back or been closed.
    _call: CallGuard<'a>,
}

impl Lease<'_> {
    pub fn session(&self) -> &Session {
        // Only `Drop` takes the session out.
        self.session.as_ref().unwrap_or_else(|| unreachable!())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.give_back(session, self.generation);
        }
    }
}

fn waited_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
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
        let capacity = capacity.max(1);
        let epoch = module.epoch();
        let pool = Arc::new(SessionPool {
            module,
            token_label: token_label.to_owned(),
            pin,
            read_write,
            capacity,
            wait,
            state: Mutex::new(State {
                generation: 0,
                epoch,
                slot: None,
                idle: Vec::new(),
                live: 0,
                opened: 0,
            }),
            permits: Arc::new(Semaphore::new(capacity)),
        });
        let admitted = pool.admit_blocking()?;
        drop(pool.checkout(&admitted)?);
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits, on the runtime, for room to run one blocking operation, up to the pool's
    /// wait. Move the admission into the blocking task, so that it is released when the
    /// operation ends, not when a cancelled request stops waiting for it.
    pub async fn admit(&self) -> Result<Admission, Pkcs11Error> {
        let started = Instant::now();
        let permits = Arc::clone(&self.permits);
        match tokio::time::timeout(self.wait, permits.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Admission { _permit: permit }),
            // The semaphore is never closed; both arms mean no room in time.
            Ok(Err(_)) | Err(_) => Err(Pkcs11Error::PoolTimeout {
                waited_ms: waited_ms(started),
            }),
        }
    }

    /// [`SessionPool::admit`] for the few callers outside the runtime (startup, loading a
    /// key). It polls, which is fine for those cold paths; signatures use `admit`.
    pub fn admit_blocking(&self) -> Result<Admission, Pkcs11Error> {
        let started = Instant::now();
        loop {
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                return Ok(Admission { _permit: permit });
            }
            if started.elapsed() >= self.wait {
                return Err(Pkcs11Error::PoolTimeout {
                    waited_ms: waited_ms(started),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
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

    /// Borrows a logged-in session, opening one if none is idle. Never waits for another
    /// request: the admission guarantees a session is free or may be opened. Blocks on the
    /// token when opening: call it from a blocking thread only.
    pub fn checkout(&self, _admitted: &Admission) -> Result<Lease<'_>, Pkcs11Error> {
        let call = self.module.enter();
        let mut st = self.lock();
        self.follow_module_epoch(&mut st);
        if let Some(session) = st.idle.pop() {
            return Ok(Lease {
                pool: self,
                session: Some(session),
                generation: st.generation,
                _call: call,
            });
        }
        if st.live >= self.capacity {
            // Cannot happen while every lease is taken under its own admission; refuse
            // rather than open more sessions than configured.
            return Err(Pkcs11Error::PoolTimeout { waited_ms: 0 });
        }
        // Opening happens under the lock: it is rare (startup, recovery) and keeps a herd
        // of requests from all re-finding the token at once.
        let generation = st.generation;
        let slot = match st.slot {
            Some(s) => s,
            None => {
                let s = find_slot(self.module.context(), &self.token_label)?;
                st.slot = Some(s);
                s
            }
        };
        match open_logged_in(self.module.context(), slot, self.read_write, &self.pin) {
            Ok(session) => {
                st.live += 1;
                st.opened += 1;
                Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation,
                    _call: call,
                })
            }
            Err(e) => {
                if e.needs_reset() {
                    let stale = Self::next_generation(&mut st);
                    drop(st);
                    // Still inside the call guard: the handles are this epoch's.
                    drop(stale);
                }
                Err(e)
            }
        }
    }

    /// Forgets every session and the slot of the lease's generation (if it is still
    /// current), so the next checkout starts from the token label again.
    pub fn reset(&self, lease: &Lease<'_>) {
        let idle = {
            let mut st = self.lock();
            if st.generation != lease.generation {
                return;
            }
            Self::next_generation(&mut st)
        };
        // Closing may block on a sick device; do it outside the lock but inside the lease's
        // call guard. Errors on close (the session is already gone) are ignored by cryptoki.
        drop(idle);
    }

    fn next_generation(st: &mut State) -> Vec<Session> {
        st.generation += 1;
        st.slot = None;
        st.live = 0;
        std::mem::take(&mut st.idle)
    }

    /// After a module re-initialisation, the sessions' handles died with C_Finalize and
    /// their numbers may be reused, so they are leaked, not closed. Called inside a call
    /// guard, so the epoch cannot move meanwhile.
    fn follow_module_epoch(&self, st: &mut State) {
        let epoch = self.module.epoch();
        if st.epoch == epoch {
            return;
        }
        st.epoch = epoch;
        for session in Self::next_generation(st) {
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
        } else {
            drop(st);
            drop(session);
        }
    }
}

impl Drop for SessionPool {
    fn drop(&mut self) {
        let epoch = self.module.epoch();
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if st.epoch != epoch {
            // Opened before a re-initialisation: the handles are not ours to close.
            for session in st.idle.drain(..) {
                std::mem::forget(session);
            }
        }
    }
}
