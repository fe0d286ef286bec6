//! Rolling-window usage without scanning history.
//!
//! Each series (key, asset) and (key, asset, destination) keeps its live amounts in a
//! `BTreeMap` of buckets keyed by expiration: all entries expiring in the same millisecond
//! share one bucket (their sum and count). That is exact, because whether an entry counts
//! depends only on its expiration (`expiration >= now - lookback`, where the policy asks with
//! lookback = window + clock skew, `policy::landing`: a window counts what can still land
//! inside it), and it is compact: Tron
//! expirations are usually a block timestamp plus a constant, so many payouts share one.
//! A window query asks for the sum of buckets at or after the cutoff. Per series and per
//! lookback length we cache that sum together with the cutoff it was computed for; the next
//! query moves the cutoff and adds or subtracts only the buckets between the old and the new
//! cutoff (a range read on the map). Inserts and removals adjust every cached window whose
//! cutoff they fall on or after.
//!
//! Cost: O(log n) per insert/remove times the number of cached windows (a policy has a handful),
//! and amortised O(log n) per query while `now` moves forward, since each bucket crosses each
//! window's cutoff once. A clock that steps back is still answered exactly, by walking the
//! cutoff back. Any number of distinct window lengths may be asked; at most `MAX_WINDOWS` per
//! series are cached, the least recently used one is dropped beyond that. Buckets older than
//! the ledger's retention are dropped by [`UsageIndex::prune`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use tron_proto::{Address, U256};

use crate::decode::Asset;

const MAX_WINDOWS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    key: Address,
    asset: Asset,
    dest: Option<Address>,
}

#[derive(Debug, Clone, Copy)]
struct WindowSum {
    lookback_ms: u64,
    cutoff: i64,
    sum: U256,
    last_used: u64,
}

/// The entries of one series that expire in one millisecond.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    sum: U256,
    count: u32,
}

/// Up to this many buckets a series keeps them in a sorted `Vec` sized to fit (most
/// destination series hold a handful); beyond it, in a `BTreeMap`, so an insert never costs
/// more than O(log n) however the expirations are spread.
const SMALL_BUCKETS: usize = 16;

/// A series' buckets, by expiration.
#[derive(Debug)]
enum Buckets {
    Small(Vec<(i64, Bucket)>),
    Large(BTreeMap<i64, Bucket>),
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets::Small(Vec::new())
    }
}

impl Buckets {
    fn add(&mut self, expiration_ms: i64, amount: U256) {
        match self {
            Buckets::Small(v) => match v.binary_search_by_key(&expiration_ms, |(e, _)| *e) {
                Ok(i) => v[i].1.add(amount),
                Err(i) if v.len() < SMALL_BUCKETS => {
                    v.reserve_exact(1);
                    v.insert(i, (expiration_ms, Bucket::of(amount)));
                }
                Err(_) => {
                    let mut map: BTreeMap<i64, Bucket> = v.drain(..).collect();
                    map.entry(expiration_ms)
                        .or_insert(Bucket::EMPTY)
                        .add(amount);
                    *self = Buckets::Large(map);
                }
            },
            Buckets::Large(m) => m.entry(expiration_ms).or_insert(Bucket::EMPTY).add(amount),
        }
    }

    /// Takes one entry of `amount` out of the bucket at `expiration_ms`; false if there is
    /// no such bucket.
    fn take(&mut self, expiration_ms: i64, amount: U256) -> bool {
        match self {
            Buckets::Small(v) => match v.binary_search_by_key(&expiration_ms, |(e, _)| *e) {
                Ok(i) => {
                    if v[i].1.take(amount) {
                        v.remove(i);
                    }
                    true
                }
                Err(_) => false,
            },
            Buckets::Large(m) => match m.get_mut(&expiration_ms) {
                Some(b) => {
                    if b.take(amount) {
                        m.remove(&expiration_ms);
                    }
                    true
                }
                None => false,
            },
        }
    }

    /// Removes and returns the earliest bucket if it expires before `cutoff`.
    fn pop_before(&mut self, cutoff: i64) -> Option<(i64, U256)> {
        match self {
            Buckets::Small(v) => match v.first() {
                Some(&(e, b)) if e < cutoff => {
                    v.remove(0);
                    Some((e, b.sum))
                }
                _ => None,
            },
            Buckets::Large(m) => match m.first_key_value() {
                Some((&e, _)) if e < cutoff => m.pop_first().map(|(e, b)| (e, b.sum)),
                _ => None,
            },
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Buckets::Small(v) => v.is_empty(),
            Buckets::Large(m) => m.is_empty(),
        }
    }

    fn sum_range(&self, lo: Bound<i64>, hi: Bound<i64>) -> U256 {
        let add = |acc: U256, b: &Bucket| acc.saturating_add(b.sum);
        match self {
            Buckets::Small(v) => v
                .iter()
                .filter(|(e, _)| std::ops::RangeBounds::contains(&(lo, hi), e))
                .fold(U256::ZERO, |acc, (_, b)| add(acc, b)),
            Buckets::Large(m) => m
                .range((lo, hi))
                .fold(U256::ZERO, |acc, (_, b)| add(acc, b)),
        }
    }
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sum: U256::ZERO,
        count: 0,
    };

    fn of(amount: U256) -> Bucket {
        Bucket {
            sum: amount,
            count: 1,
        }
    }

    fn add(&mut self, amount: U256) {
        self.sum = self.sum.saturating_add(amount);
        self.count = self.count.saturating_add(1);
    }

    /// Returns whether the bucket is now empty.
    fn take(&mut self, amount: U256) -> bool {
        self.sum = self.sum.saturating_sub(amount);
        self.count = self.count.saturating_sub(1);
        self.count == 0
    }
}

#[derive(Debug, Default)]
struct Series {
    buckets: Buckets,
    /// Interior mutability: queries come through `&self` (the policy reads usage), but
    /// moving a cached cutoff is a mutation. The whole index sits behind the ledger's mutex.
    windows: RefCell<Vec<WindowSum>>,
    clock: RefCell<u64>,
}

impl Series {
    /// Takes `amount` out of the bucket at `expiration_ms` (and every cached window that
    /// counts it). Returns whether the series is now empty.
    fn take(&mut self, expiration_ms: i64, amount: U256) -> bool {
        if self.buckets.take(expiration_ms, amount) {
            for w in self.windows.get_mut().iter_mut() {
                if expiration_ms >= w.cutoff {
                    w.sum = w.sum.saturating_sub(amount);
                }
            }
        }
        self.buckets.is_empty()
    }
}

/// Amount sums per series, including entries that are reserved but not yet committed.
/// A `BTreeMap`, not a hash map: it grows a node at a time, where a hash map with 100,000
/// series stalls every request for a whole-table rehash when it doubles.
#[derive(Debug, Default)]
pub(crate) struct UsageIndex {
    series: BTreeMap<SeriesKey, Series>,
}

/// `now - lookback`, saturating; entries with expiration at or after it still count.
fn cutoff(lookback_ms: u64, now_ms: i64) -> i64 {
    let w = i64::try_from(lookback_ms).unwrap_or(i64::MAX);
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
        amount: U256,
    ) {
        for sk in Self::keys(key, asset, dest) {
            let series = self.series.entry(sk).or_default();
            series.buckets.add(expiration_ms, amount);
            for w in series.windows.get_mut().iter_mut() {
                if expiration_ms >= w.cutoff {
                    w.sum = w.sum.saturating_add(amount);
                }
            }
        }
    }

    /// Undoes one [`insert`](Self::insert) of the same values (a rolled-back reservation).
    pub(crate) fn remove(
        &mut self,
        key: Address,
        asset: Asset,
        dest: Address,
        expiration_ms: i64,
        amount: U256,
    ) {
        for sk in Self::keys(key, asset, dest) {
            let Some(series) = self.series.get_mut(&sk) else {
                continue;
            };
            if series.take(expiration_ms, amount) {
                self.series.remove(&sk);
            }
        }
    }

    /// Drops every bucket expiring before `cutoff` (older than the ledger's retention, so in
    /// no window any more) and the series left empty. Cost: one look at each series.
    pub(crate) fn prune(&mut self, cutoff: i64) {
        self.series.retain(|_, series| {
            while let Some((exp, sum)) = series.buckets.pop_before(cutoff) {
                for w in series.windows.get_mut().iter_mut() {
                    if exp >= w.cutoff {
                        w.sum = w.sum.saturating_sub(sum);
                    }
                }
            }
            !series.buckets.is_empty()
        });
    }

    /// The sum of the series' entries expiring at or after `now_ms - lookback_ms`.
    pub(crate) fn used(
        &self,
        key: &Address,
        asset: Asset,
        dest: Option<&Address>,
        lookback_ms: u64,
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
        let target = cutoff(lookback_ms, now_ms);
        let mut clock = series.clock.borrow_mut();
        *clock += 1;
        let mut windows = series.windows.borrow_mut();
        let idx = match windows.iter().position(|w| w.lookback_ms == lookback_ms) {
            Some(i) => i,
            None => {
                let sum = series
                    .buckets
                    .sum_range(Bound::Included(target), Bound::Unbounded);
                let fresh = WindowSum {
                    lookback_ms,
                    cutoff: target,
                    sum,
                    last_used: *clock,
                };
                if windows.len() >= MAX_WINDOWS {
                    if let Some(lru) = (0..windows.len()).min_by_key(|i| windows[*i].last_used) {
                        windows.swap_remove(lru);
                    }
                }
                // Grown one at a time: most series are asked about one or two windows.
                windows.reserve_exact(1);
                windows.push(fresh);
                windows.len() - 1
            }
        };
        let w = &mut windows[idx];
        w.last_used = *clock;
        if target > w.cutoff {
            let gone = series
                .buckets
                .sum_range(Bound::Included(w.cutoff), Bound::Excluded(target));
            w.sum = w.sum.saturating_sub(gone);
        } else if target < w.cutoff {
            let back = series
                .buckets
                .sum_range(Bound::Included(target), Bound::Excluded(w.cutoff));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::addr;

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
            idx.insert(k, Asset::Trx, d, exp, amt);
            live.push((exp, amt));
            if i % 7 == 0 {
                // roll one back
                let (e, a) = live.pop().unwrap();
                idx.remove(k, Asset::Trx, d, e, a);
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
        idx.insert(k, Asset::Trx, d, 10_000, U256::from(5u8));
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
            idx.insert(k, Asset::Trx, d, i * 100, U256::ONE);
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
        idx.remove(k, Asset::Trx, d, 0, U256::ONE);
        assert_eq!(idx.series_count(), 2);
    }

    #[test]
    fn entries_sharing_an_expiration_share_a_bucket_and_roll_back_one_by_one() {
        let mut idx = UsageIndex::default();
        let (k, d) = (addr(1), addr(2));
        idx.insert(k, Asset::Trx, d, 5_000, U256::from(3u8));
        idx.insert(k, Asset::Trx, d, 5_000, U256::from(4u8));
        assert_eq!(
            idx.used(&k, Asset::Trx, None, 1_000, 5_500),
            U256::from(7u8)
        );
        idx.remove(k, Asset::Trx, d, 5_000, U256::from(3u8));
        assert_eq!(
            idx.used(&k, Asset::Trx, None, 1_000, 5_500),
            U256::from(4u8)
        );
        assert_eq!(
            idx.used(&k, Asset::Trx, Some(&d), 1_000, 5_500),
            U256::from(4u8)
        );
        idx.remove(k, Asset::Trx, d, 5_000, U256::from(4u8));
        assert_eq!(idx.used(&k, Asset::Trx, None, 1_000, 5_500), U256::ZERO);
        assert_eq!(idx.series_count(), 0);
        // A removal of something never inserted changes nothing.
        idx.remove(k, Asset::Trx, d, 5_000, U256::from(4u8));
        assert_eq!(idx.series_count(), 0);
    }

    #[test]
    fn prune_drops_old_buckets_and_keeps_cached_windows_exact() {
        let mut idx = UsageIndex::default();
        let (k, d1, d2) = (addr(1), addr(2), addr(3));
        idx.insert(k, Asset::Trx, d1, 1_000, U256::from(10u8));
        idx.insert(k, Asset::Trx, d2, 2_000, U256::from(20u8));
        idx.insert(k, Asset::Trx, d2, 9_000, U256::from(40u8));
        // Cache a window whose cutoff (0) still counts everything.
        assert_eq!(
            idx.used(&k, Asset::Trx, None, 10_000, 10_000),
            U256::from(70u8)
        );
        idx.prune(2_000);
        // d1's only bucket is gone with its series; the key series lost 10.
        assert_eq!(idx.series_count(), 2);
        assert_eq!(
            idx.used(&k, Asset::Trx, None, 10_000, 10_000),
            U256::from(60u8)
        );
        assert_eq!(
            idx.used(&k, Asset::Trx, Some(&d1), 10_000, 10_000),
            U256::ZERO
        );
        idx.prune(i64::MAX);
        assert_eq!(idx.series_count(), 0);
        assert_eq!(idx.used(&k, Asset::Trx, None, 10_000, 10_000), U256::ZERO);
    }
}
