//! Rolling-window usage without scanning history.
//!
//! Each series (key, asset) and (key, asset, destination) keeps its live entries in a
//! `BTreeMap` ordered by (expiration, txid). A window query asks for the sum of amounts with
//! `expiration >= now - window`. Per series and per window length we cache that sum together
//! with the cutoff it was computed for; the next query moves the cutoff and adds or subtracts
//! only the entries between the old and the new cutoff (a range read on the map). Inserts and
//! removals adjust every cached window whose cutoff they fall on or after.
//!
//! Cost: O(log n) per insert/remove times the number of cached windows (a policy has a handful),
//! and amortised O(log n) per query while `now` moves forward, since each entry crosses each
//! window's cutoff once. A clock that steps back is still answered exactly, by walking the
//! cutoff back. Any number of distinct window lengths may be asked; at most `MAX_WINDOWS` per
//! series are cached, the least recently used one is dropped beyond that.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use tron_proto::{Address, U256};

use crate::decode::Asset;

const MAX_WINDOWS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SeriesKey {
    key: Address,
    asset: Asset,
    dest: Option<Address>,
}

#[derive(Debug, Clone, Copy)]
struct WindowSum {
    window_ms: u64,
    cutoff: i64,
    sum: U256,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Series {
    entries: BTreeMap<(i64, [u8; 32]), U256>,
    /// Interior mutability: queries come through `&self` (the policy reads usage), but
    /// moving a cached cutoff is a mutation. The whole index sits behind the ledger's mutex.
    windows: RefCell<Vec<WindowSum>>,
    clock: RefCell<u64>,
}

/// Amount sums per series, including entries that are reserved but not yet committed.
#[derive(Debug, Default)]
pub(crate) struct UsageIndex {
    series: HashMap<SeriesKey, Series>,
}

/// `now - window`, saturating; entries with expiration at or after it still count.
fn cutoff(window_ms: u64, now_ms: i64) -> i64 {
    let w = i64::try_from(window_ms).unwrap_or(i64::MAX);
    now_ms.saturating_sub(w)
}

impl UsageIndex {
    fn keys(key: Address, asset: Asset, dest: Address) -> [SeriesKey; 2] {
        [
            SeriesKey {
                key,
                asset,
                dest: None,
            },
            SeriesKey {
                key,
                asset,
                dest: Some(dest),
            },
        ]
    }

    pub(crate) fn insert(
        &mut self,
        key: Address,
        asset: Asset,
        dest: Address,
        expiration_ms: i64,
        txid: [u8; 32],
        amount: U256,
    ) {
        for sk in Self::keys(key, asset, dest) {
            let series = self.series.entry(sk).or_default();
            if series
                .entries
                .insert((expiration_ms, txid), amount)
                .is_none()
            {
                for w in series.windows.get_mut().iter_mut() {
                    if expiration_ms >= w.cutoff {
                        w.sum = w.sum.saturating_add(amount);
                    }
                }
            }
        }
    }

    pub(crate) fn remove(
        &mut self,
        key: Address,
        asset: Asset,
        dest: Address,
        expiration_ms: i64,
        txid: [u8; 32],
    ) {
        for sk in Self::keys(key, asset, dest) {
            let Some(series) = self.series.get_mut(&sk) else {
                continue;
            };
            if let Some(amount) = series.entries.remove(&(expiration_ms, txid)) {
                for w in series.windows.get_mut().iter_mut() {
                    if expiration_ms >= w.cutoff {
                        w.sum = w.sum.saturating_sub(amount);
                    }
                }
            }
            if series.entries.is_empty() {
                self.series.remove(&sk);
            }
        }
    }

    pub(crate) fn used(
        &self,
        key: &Address,
        asset: Asset,
        dest: Option<&Address>,
        window_ms: u64,
        now_ms: i64,
    ) -> U256 {
        let sk = SeriesKey {
            key: *key,
            asset,
            dest: dest.copied(),
        };
        let Some(series) = self.series.get(&sk) else {
            return U256::ZERO;
        };
        let target = cutoff(window_ms, now_ms);
        let mut clock = series.clock.borrow_mut();
        *clock += 1;
        let mut windows = series.windows.borrow_mut();
        let idx = match windows.iter().position(|w| w.window_ms == window_ms) {
            Some(i) => i,
            None => {
                let sum = sum_range(&series.entries, Bound::Included(target), Bound::Unbounded);
                let fresh = WindowSum {
                    window_ms,
                    cutoff: target,
                    sum,
                    last_used: *clock,
                };
                if windows.len() >= MAX_WINDOWS {
                    if let Some(lru) = (0..windows.len()).min_by_key(|i| windows[*i].last_used) {
                        windows.swap_remove(lru);
                    }
                }
                windows.push(fresh);
                windows.len() - 1
            }
        };
        let w = &mut windows[idx];
        w.last_used = *clock;
        if target > w.cutoff {
            let gone = sum_range(
                &series.entries,
                Bound::Included(w.cutoff),
                Bound::Excluded(target),
            );
            w.sum = w.sum.saturating_sub(gone);
        } else if target < w.cutoff {
            let back = sum_range(
                &series.entries,
                Bound::Included(target),
                Bound::Excluded(w.cutoff),
            );
            w.sum = w.sum.saturating_add(back);
        }
        w.cutoff = target;
        w.sum
    }

    /// Number of series (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn series_count(&self) -> usize {
        self.series.len()
    }
}

fn sum_range(entries: &BTreeMap<(i64, [u8; 32]), U256>, lo: Bound<i64>, hi: Bound<i64>) -> U256 {
    let lo = match lo {
        Bound::Included(t) => Bound::Included((t, [0u8; 32])),
        Bound::Excluded(t) => Bound::Excluded((t, [0xffu8; 32])),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match hi {
        Bound::Included(t) => Bound::Included((t, [0xffu8; 32])),
        Bound::Excluded(t) => Bound::Excluded((t, [0u8; 32])),
        Bound::Unbounded => Bound::Unbounded,
    };
    entries
        .range((lo, hi))
        .fold(U256::ZERO, |acc, (_, a)| acc.saturating_add(*a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: u8) -> Address {
        let mut raw = [b; 21];
        raw[0] = 0x41;
        Address::from_bytes(&raw).unwrap()
    }

    fn brute(entries: &[(i64, U256)], window: u64, now: i64) -> U256 {
        let c = cutoff(window, now);
        entries
            .iter()
            .filter(|(e, _)| *e >= c)
            .fold(U256::ZERO, |acc, (_, a)| acc + *a)
    }

    #[test]
    fn matches_brute_force_as_clock_moves_both_ways() {
        let mut idx = UsageIndex::default();
        let (k, d) = (addr(1), addr(2));
        let mut live: Vec<(i64, U256)> = Vec::new();
        let mut x: u64 = 7;
        let mut now: i64 = 1_000_000;
        for i in 0..2_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let exp = now + (x >> 40) as i64 % 5_000;
            let amt = U256::from((x >> 20) % 1000);
            let mut txid = [0u8; 32];
            txid[..4].copy_from_slice(&i.to_be_bytes());
            idx.insert(k, Asset::Trx, d, exp, txid, amt);
            live.push((exp, amt));
            if i % 7 == 0 {
                // roll one back
                let (e, _) = live.pop().unwrap();
                idx.remove(k, Asset::Trx, d, e, txid);
            }
            // mostly forward, sometimes a step back
            now += if x % 11 == 0 { -300 } else { 13 };
            for w in [1_000u64, 3_600, 10_000] {
                assert_eq!(idx.used(&k, Asset::Trx, None, w, now), brute(&live, w, now));
                assert_eq!(
                    idx.used(&k, Asset::Trx, Some(&d), w, now),
                    brute(&live, w, now)
                );
            }
        }
        assert_eq!(
            idx.used(&k, Asset::Trx, Some(&addr(3)), 1000, now),
            U256::ZERO
        );
    }

    #[test]
    fn window_boundary_is_inclusive() {
        let mut idx = UsageIndex::default();
        let (k, d) = (addr(1), addr(2));
        idx.insert(k, Asset::Trx, d, 10_000, [1; 32], U256::from(5u8));
        // cutoff = now - W; an entry whose expiration equals the cutoff still counts
        assert_eq!(
            idx.used(&k, Asset::Trx, None, 1_000, 11_000),
            U256::from(5u8)
        );
        // one millisecond later it no longer does
        assert_eq!(idx.used(&k, Asset::Trx, None, 1_000, 11_001), U256::ZERO);
        // and walking the clock back brings it back
        assert_eq!(
            idx.used(&k, Asset::Trx, None, 1_000, 10_999),
            U256::from(5u8)
        );
    }

    #[test]
    fn many_window_lengths_evict_lru_but_stay_exact() {
        let mut idx = UsageIndex::default();
        let (k, d) = (addr(1), addr(2));
        for i in 0..50i64 {
            let mut t = [0u8; 32];
            t[0] = i as u8;
            idx.insert(k, Asset::Trx, d, i * 100, t, U256::ONE);
        }
        for w in 0..40u64 {
            let expect = (0..50i64)
                .filter(|i| i * 100 >= 5_000 - (w as i64) * 100)
                .count();
            assert_eq!(
                idx.used(&k, Asset::Trx, None, w * 100, 5_000),
                U256::from(expect as u64)
            );
        }
        idx.remove(k, Asset::Trx, d, 0, [0u8; 32]);
        assert_eq!(idx.series_count(), 2);
    }
}
