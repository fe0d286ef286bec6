//! Fixed-capacity buffers whose pages are mlock'ed where the OS allows.
//!
//! Capacity never grows, so the buffer is never reallocated and no stale copy of key
//! material is left in freed memory. On drop the contents are wiped first, then the pages
//! are unlocked, then the memory is freed. Locking is best effort: a refusal (typically
//! RLIMIT_MEMLOCK) is logged once as a warning and the buffer works unlocked.
//!
//! Limitation: mlock works on whole pages and is not reference-counted, so unlocking one
//! buffer also unlocks any other buffer sharing its first or last page.

use std::sync::atomic::{AtomicBool, Ordering};

use zeroize::Zeroize;

static WARNED: AtomicBool = AtomicBool::new(false);

fn lock<T>(ptr: *const T, bytes: usize) -> Option<region::LockGuard> {
    if bytes == 0 {
        return None;
    }
    match region::lock(ptr, bytes) {
        Ok(guard) => Some(guard),
        Err(e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %e,
                    bytes,
                    "could not mlock key memory (raise RLIMIT_MEMLOCK to keep keys out of swap); continuing unlocked"
                );
            }
            None
        }
    }
}

/// Bytes that may hold secrets (the decrypted key list). Zeroized on drop.
pub struct LockedBytes {
    buf: Vec<u8>,
    guard: Option<region::LockGuard>,
}

impl LockedBytes {
    pub fn with_capacity(cap: usize) -> Self {
        let buf = Vec::with_capacity(cap);
        let guard = lock(buf.as_ptr(), cap);
        LockedBytes { buf, guard }
    }

    /// Mutable access for writers that stay within capacity (callers size the buffer
    /// exactly, and `seal` checks the final length).
    pub fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        self.buf.zeroize();
        self.guard.take();
    }
}

/// Values that wipe themselves on drop (here: `SoftKey`, whose `SigningKey` zeroizes),
/// stored in one locked allocation that is never reallocated.
pub struct LockedVec<T> {
    items: Vec<T>,
    guard: Option<region::LockGuard>,
}

impl<T> LockedVec<T> {
    pub fn with_capacity(cap: usize) -> Self {
        let items: Vec<T> = Vec::with_capacity(cap);
        let guard = lock(items.as_ptr(), cap.saturating_mul(std::mem::size_of::<T>()));
        LockedVec { items, guard }
    }

    /// Adds `item` unless full; a full buffer hands the item back instead of growing.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        if self.items.len() == self.items.capacity() {
            return Err(item);
        }
        self.items.push(item);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)
    }

    /// True when the pages are locked, or there is nothing to lock.
    pub fn is_locked(&self) -> bool {
        self.guard.is_some() || self.items.capacity() == 0
    }
}

impl<T> Drop for LockedVec<T> {
    fn drop(&mut self) {
        // Run each item's own wipe while the pages are still locked.
        self.items.clear();
        self.guard.take();
    }
}
