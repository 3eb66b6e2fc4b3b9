//! Failed-logon lockout: per client address, and per user with smart
//! lockout.
//!
//! - **Per address.** Each failed logon from an address is remembered (its
//!   time, to the second). When an address has `failures` failed logons
//!   within `window` (a sliding window: the last `failures` failure times
//!   are kept, exactly), it is locked for `lock`: every request from it gets
//!   429 with `Retry-After` and reaches no member. IPv6 clients are counted
//!   by their /64 (one host can take any address of its /64).
//! - **Per user, smart.** Failures are also counted per user name across
//!   addresses, the same way; a user past the threshold is locked for
//!   `lock`, but only for addresses that have not logged that user on
//!   successfully before (within [`KNOWN_GOOD_TTL`]): an attacker spraying
//!   `alice` from elsewhere cannot lock the real alice out of the places
//!   she uses. Failures from such a known address do not count against the
//!   user either (they are the user's own typos; the per-address limit
//!   still applies to them).
//!
//! Keys are keyed SipHash values (a random key per process) of the address
//! or the normalized user name: the tables hold no names and no addresses.
//!
//! Memory is bounded: each table has a fixed number of entries per shard
//! and evicts when full (first entries whose failures are all older than
//! the window, then the sixteenth of the shard seen longest ago that is not
//! locked, and only when every entry is locked, the locks that end first). The
//! worst case, [`worst_case_bytes`], is 12.3 MiB with
//! `lockout_failures = 20` (the default) and 32.3 MiB with 100, the most
//! allowed: 32 768 addresses and 32 768 users with their failure records,
//! and 65 536 known-good (user, address) pairs.
//!
//! The tables outlive config reloads (the snapshot hands them on); a new
//! `lockout_failures` resizes each entry's record when it is next touched.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prometheus::IntGauge;

/// How long a successful logon makes an address known for a user: 30 days.
pub const KNOWN_GOOD_TTL: u32 = 30 * 24 * 3600;

/// Shards per table (a lock each).
const SHARDS: usize = 16;
/// Addresses tracked: 16 × 2048 = 32 768.
const ADDRESSES_PER_SHARD: usize = 2048;
/// Users tracked: 16 × 2048 = 32 768.
const USERS_PER_SHARD: usize = 2048;
/// (user, address) pairs known good: 16 × 4096 = 65 536.
const KNOWN_PER_SHARD: usize = 4096;

/// The lockout settings of one config (`[security] lockout_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failed logons that lock (1..=100; default 20).
    pub failures: u32,
    /// Sliding window they are counted over, seconds (default 300).
    pub window: u32,
    /// How long a lock lasts, seconds (default 900).
    pub lock: u32,
}

/// Which table locked a request out; the `scope` label of the lockout
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Address,
    User,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Address, Scope::User];

    pub fn label(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::User => "user",
        }
    }
}

/// Gauges of the tables' sizes (`casarray_lockout_entries{table}`).
#[derive(Clone)]
pub struct Gauges {
    pub addresses: IntGauge,
    pub users: IntGauge,
    pub known_good: IntGauge,
}

/// The lockout state of the array: lives for the process.
pub struct Lockout {
    epoch: Instant,
    keys: RandomState,
    addresses: Table,
    users: Table,
    known: KnownGood,
    /// The latest end of any lock, seconds since `epoch`: while now is past
    /// it nothing is locked, and requests skip the tables.
    horizon: AtomicU32,
}

impl Lockout {
    pub fn new(gauges: Gauges) -> Self {
        Lockout {
            epoch: Instant::now(),
            keys: RandomState::new(),
            addresses: Table::new(ADDRESSES_PER_SHARD, gauges.addresses),
            users: Table::new(USERS_PER_SHARD, gauges.users),
            known: KnownGood::new(gauges.known_good),
            horizon: AtomicU32::new(0),
        }
    }

    /// Seconds since this lockout was made.
    pub fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// The key of a client address (IPv6: its /64).
    pub fn address_key(&self, ip: IpAddr) -> u64 {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.keys.hash_one((4u8, a.octets())),
            IpAddr::V6(a) => {
                let o = a.octets();
                let mut net = [0u8; 8];
                net.copy_from_slice(&o[..8]);
                self.keys.hash_one((6u8, net))
            }
        }
    }

    /// The key of a normalized user name.
    pub fn user_key(&self, user: &[u8]) -> u64 {
        self.keys.hash_one((b'u', user))
    }

    fn pair_key(&self, user: u64, address: u64) -> u64 {
        self.keys.hash_one((user, address))
    }

    /// Whether any lock may still run at `now` (one atomic read).
    #[inline]
    pub fn anything_locked(&self, now: u32) -> bool {
        now < self.horizon.load(Ordering::Relaxed)
    }

    /// Seconds left of `address`'s lock.
    pub fn address_locked(&self, address: u64, now: u32) -> Option<u32> {
        if !self.anything_locked(now) {
            return None;
        }
        self.addresses.locked(address, now)
    }

    /// Seconds left of `user`'s lock, unless `address` has logged the user
    /// on before.
    pub fn user_locked(&self, user: u64, address: u64, now: u32) -> Option<u32> {
        if !self.anything_locked(now) {
            return None;
        }
        let left = self.users.locked(user, now)?;
        (!self.known.contains(self.pair_key(user, address), now)).then_some(left)
    }

    /// Records a failed logon from `address`, for `user` when known.
    /// Returns which locks it started.
    pub fn failure(&self, address: u64, user: Option<u64>, now: u32, limits: Limits) -> Started {
        let mut started = Started::default();
        if let Some(until) = self.addresses.record(address, now, limits) {
            self.horizon.fetch_max(until, Ordering::Relaxed);
            started.address = true;
        }
        if let Some(user) = user {
            if !self.known.contains(self.pair_key(user, address), now) {
                if let Some(until) = self.users.record(user, now, limits) {
                    self.horizon.fetch_max(until, Ordering::Relaxed);
                    started.user = true;
                }
            }
        }
        started
    }

    /// Records a successful logon of `user` from `address`: the address is
    /// known good for the user from now on.
    pub fn success(&self, address: u64, user: u64, now: u32) {
        self.known.insert(self.pair_key(user, address), now);
    }
}

/// Which locks a failure started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub address: bool,
    pub user: bool,
}

/// `u64` keys are already keyed hashes: used as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// Shard of a key: bits the map itself does not use (it takes the low bits
/// for the bucket and the top seven for its tags).
fn shard_of(key: u64) -> usize {
    ((key >> 32) as usize) % SHARDS
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One key's failures.
struct Entry {
    /// The last `failures` failure times (seconds), a ring.
    ring: Box<[u32]>,
    /// Where the next failure goes.
    next: u16,
    /// How many of `ring` are set.
    len: u16,
    /// Locked while now is before this.
    locked_until: u32,
    /// The last failure's time.
    last: u32,
}

impl Entry {
    fn new(failures: u32) -> Self {
        Entry {
            ring: vec![0; failures as usize].into_boxed_slice(),
            next: 0,
            len: 0,
            locked_until: 0,
            last: 0,
        }
    }

    /// The recorded times, oldest first.
    fn times(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.ring.len();
        let len = usize::from(self.len);
        let start = (usize::from(self.next) + n - len) % n.max(1);
        (0..len).map(move |i| self.ring[(start + i) % n])
    }

    /// A ring of `failures` slots keeping the most recent times.
    fn resize(&mut self, failures: u32) {
        if self.ring.len() == failures as usize {
            return;
        }
        let keep: Vec<u32> = {
            let all: Vec<u32> = self.times().collect();
            let from = all.len().saturating_sub(failures as usize);
            all[from..].to_vec()
        };
        let mut ring = vec![0; failures as usize].into_boxed_slice();
        ring[..keep.len()].copy_from_slice(&keep);
        self.ring = ring;
        self.len = keep.len() as u16;
        self.next = (keep.len() % failures as usize) as u16;
    }

    fn push(&mut self, now: u32) {
        let n = self.ring.len();
        self.ring[usize::from(self.next)] = now;
        self.next = ((usize::from(self.next) + 1) % n) as u16;
        self.len = (usize::from(self.len) + 1).min(n) as u16;
        self.last = now;
    }

    fn oldest(&self) -> Option<u32> {
        self.times().next()
    }

    fn is_locked(&self, now: u32) -> bool {
        now < self.locked_until
    }

    /// Nothing here can matter any more: not locked, every failure older
    /// than the window.
    fn is_stale(&self, now: u32, window: u32) -> bool {
        !self.is_locked(now) && now.saturating_sub(self.last) >= window
    }
}

/// Failures per key, in shards.
struct Table {
    shards: Box<[Mutex<Map<Entry>>]>,
    per_shard: usize,
    gauge: IntGauge,
}

impl Table {
    fn new(per_shard: usize, gauge: IntGauge) -> Self {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Map::default())).collect(),
            per_shard,
            gauge,
        }
    }

    fn locked(&self, key: u64, now: u32) -> Option<u32> {
        let shard = lock(&self.shards[shard_of(key)]);
        let e = shard.get(&key)?;
        e.is_locked(now).then(|| e.locked_until - now)
    }

    /// Records a failure; returns the end of the lock it started.
    fn record(&self, key: u64, now: u32, limits: Limits) -> Option<u32> {
        // The config allows 1..=100; anything else is clamped, never a
        // division by zero or a truncated count.
        let limits = Limits {
            failures: limits.failures.clamp(1, u32::from(u16::MAX)),
            ..limits
        };
        let mut shard = lock(&self.shards[shard_of(key)]);
        if !shard.contains_key(&key) && shard.len() >= self.per_shard {
            let before = shard.len();
            evict(&mut shard, now, limits.window);
            self.gauge.sub((before - shard.len()) as i64);
        }
        let e = match shard.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.gauge.inc();
                v.insert(Entry::new(limits.failures))
            }
        };
        if e.is_locked(now) {
            e.last = now;
            return None;
        }
        e.resize(limits.failures);
        e.push(now);
        let full = u32::from(e.len) >= limits.failures;
        if full
            && e.oldest()
                .is_some_and(|t| now.saturating_sub(t) < limits.window)
        {
            e.locked_until = now.saturating_add(limits.lock);
            e.len = 0;
            e.next = 0;
            return Some(e.locked_until);
        }
        None
    }
}

/// Entries evicted at once from a full shard that has nothing stale: a
/// sixteenth, so that a flood of new keys costs one scan per batch, not
/// one per key.
fn batch(per_shard: usize) -> usize {
    (per_shard / 16).max(1)
}

/// Makes room in a full shard: stale entries first; else the unlocked
/// entries seen longest ago (a batch); and only when every entry is locked,
/// the locks that end first. Runs only when a shard is full (an attack on
/// many addresses or users), so its scratch list is no request-path cost.
fn evict(shard: &mut Map<Entry>, now: u32, window: u32) {
    let before = shard.len();
    shard.retain(|_, e| !e.is_stale(now, window));
    if shard.len() < before {
        return;
    }
    let mut order: Vec<((bool, u32), u64)> = shard
        .iter()
        .map(|(k, e)| {
            let locked = e.is_locked(now);
            ((locked, if locked { e.locked_until } else { e.last }), *k)
        })
        .collect();
    let n = batch(before).min(order.len());
    if n == 0 {
        return;
    }
    order.select_nth_unstable(n - 1);
    for (_, k) in &order[..n] {
        shard.remove(k);
    }
}

/// (user, address) pairs that have logged on: keyed hash -> last success.
/// Preallocated, so that recording a success (every authenticated request)
/// never allocates.
struct KnownGood {
    shards: Box<[Mutex<Map<u32>>]>,
    gauge: IntGauge,
}

impl KnownGood {
    fn new(gauge: IntGauge) -> Self {
        KnownGood {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Map::with_capacity_and_hasher(
                        KNOWN_PER_SHARD,
                        Default::default(),
                    ))
                })
                .collect(),
            gauge,
        }
    }

    fn contains(&self, pair: u64, now: u32) -> bool {
        lock(&self.shards[shard_of(pair)])
            .get(&pair)
            .is_some_and(|&t| now.saturating_sub(t) < KNOWN_GOOD_TTL)
    }

    fn insert(&self, pair: u64, now: u32) {
        let mut shard = lock(&self.shards[shard_of(pair)]);
        if let Some(t) = shard.get_mut(&pair) {
            *t = now;
            return;
        }
        if shard.len() >= KNOWN_PER_SHARD {
            let before = shard.len();
            shard.retain(|_, t| now.saturating_sub(*t) < KNOWN_GOOD_TTL);
            if shard.len() >= KNOWN_PER_SHARD {
                // The pairs seen longest ago: those in the oldest sixteenth
                // of the time span (at least the oldest one), without a
                // scratch list, as this runs on a success.
                let (oldest, newest) = shard
                    .values()
                    .fold((u32::MAX, 0), |(lo, hi), &t| (lo.min(t), hi.max(t)));
                let cut = oldest.saturating_add(newest.saturating_sub(oldest) / 16);
                shard.retain(|_, t| *t > cut);
            }
            self.gauge.sub((before - shard.len()) as i64);
        }
        shard.insert(pair, now);
        self.gauge.inc();
    }
}

/// The most memory the three tables can take with `failures` slots per
/// entry, in bytes: hash table buckets (std's map rounds its buckets up to
/// a power of two, at most 7/8 full, plus one control byte each) and each
/// entry's ring (rounded up to 16 bytes, as allocators do).
pub fn worst_case_bytes(failures: u32) -> usize {
    fn buckets(entries: usize) -> usize {
        (entries * 8).div_ceil(7).next_power_of_two()
    }
    fn map(entries: usize, slot: usize) -> usize {
        let b = buckets(entries);
        b * slot + b + 16
    }
    let entry = std::mem::size_of::<(u64, Entry)>();
    let ring = (failures as usize * 4).div_ceil(16) * 16;
    let failures_table = |per_shard: usize| SHARDS * (map(per_shard, entry) + per_shard * ring);
    failures_table(ADDRESSES_PER_SHARD)
        + failures_table(USERS_PER_SHARD)
        + SHARDS * map(KNOWN_PER_SHARD, std::mem::size_of::<(u64, u32)>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        let g = |n: &str| IntGauge::new(n, "test").unwrap();
        Gauges {
            addresses: g("a"),
            users: g("u"),
            known_good: g("k"),
        }
    }

    const LIMITS: Limits = Limits {
        failures: 20,
        window: 300,
        lock: 900,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_locked_at_the_threshold_for_the_lock_time() {
        let l = Lockout::new(gauges());
        let a = l.address_key(ip("192.0.2.1"));
        for i in 0..19 {
            assert_eq!(
                l.failure(a, None, 100 + i, LIMITS),
                Started::default(),
                "{i}"
            );
            assert_eq!(l.address_locked(a, 100 + i), None);
        }
        let started = l.failure(a, None, 130, LIMITS);
        assert!(started.address && !started.user);
        assert_eq!(l.address_locked(a, 130), Some(900));
        assert_eq!(l.address_locked(a, 1029), Some(1));
        assert_eq!(l.address_locked(a, 1030), None);
        // Another address is untouched.
        assert_eq!(l.address_locked(l.address_key(ip("192.0.2.2")), 131), None);
        // After the lock, counting starts afresh.
        for i in 0..19 {
            assert!(!l.failure(a, None, 1030 + i, LIMITS).address);
        }
        assert!(l.failure(a, None, 1049, LIMITS).address);
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_lock() {
        let l = Lockout::new(gauges());
        let a = l.address_key(ip("192.0.2.1"));
        // 20 failures, one every 16 s: the first is 304 s old at the 20th.
        for i in 0..40 {
            assert!(!l.failure(a, None, i * 16, LIMITS).address, "{i}");
        }
        // Exactly `failures` within the window locks.
        let b = l.address_key(ip("192.0.2.9"));
        for i in 0..19 {
            l.failure(b, None, i * 15, LIMITS);
        }
        assert!(l.failure(b, None, 299, LIMITS).address);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let l = Lockout::new(gauges());
        assert_eq!(
            l.address_key(ip("2001:db8:1:2::1")),
            l.address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            l.address_key(ip("2001:db8:1:2::1")),
            l.address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            l.address_key(ip("::ffff:192.0.2.1")),
            l.address_key(ip("192.0.2.1"))
        );
    }

    #[test]
    fn smart_lockout_spares_addresses_that_logged_the_user_on() {
        let l = Lockout::new(gauges());
        let alice = l.user_key(b"alice");
        let home = l.address_key(ip("198.51.100.7"));
        l.success(home, alice, 10);
        // Spraying alice from many addresses (one failure each).
        let mut started = Started::default();
        for i in 0..20u32 {
            let a = l.address_key(IpAddr::from([203, 0, 113, i as u8]));
            started = l.failure(a, Some(alice), 20 + i, LIMITS);
        }
        assert!(started.user && !started.address);
        let new_place = l.address_key(ip("192.0.2.50"));
        assert_eq!(l.user_locked(alice, new_place, 40), Some(900 - 1));
        assert_eq!(
            l.user_locked(alice, home, 40),
            None,
            "alice at home is never locked"
        );
        let bob = l.user_key(b"bob");
        assert_eq!(l.user_locked(bob, new_place, 40), None);
        // Known-good expires.
        assert_eq!(
            l.user_locked(alice, home, 10 + KNOWN_GOOD_TTL),
            None,
            "the lock is over by then"
        );
    }

    #[test]
    fn failures_from_a_known_address_do_not_lock_the_user() {
        let l = Lockout::new(gauges());
        let alice = l.user_key(b"alice");
        let home = l.address_key(ip("198.51.100.7"));
        l.success(home, alice, 1);
        for i in 0..19 {
            assert!(!l.failure(home, Some(alice), 2 + i, LIMITS).user);
        }
        let s = l.failure(home, Some(alice), 30, LIMITS);
        assert!(s.address && !s.user, "the address limit still holds");
    }

    #[test]
    fn nothing_locked_means_no_lookup() {
        let l = Lockout::new(gauges());
        assert!(!l.anything_locked(0));
        let a = l.address_key(ip("192.0.2.1"));
        for i in 0..20 {
            l.failure(a, None, i, LIMITS);
        }
        assert!(l.anything_locked(19));
        assert!(!l.anything_locked(19 + 900));
    }

    #[test]
    fn a_new_threshold_resizes_entries_keeping_recent_failures() {
        let l = Lockout::new(gauges());
        let a = l.address_key(ip("192.0.2.1"));
        for i in 0..10 {
            l.failure(a, None, i, LIMITS);
        }
        let five = Limits {
            failures: 5,
            ..LIMITS
        };
        // Ten recent failures, five kept: the next one locks.
        assert!(l.failure(a, None, 11, five).address);
        let b = l.address_key(ip("192.0.2.2"));
        for i in 0..3 {
            l.failure(b, None, i, five);
        }
        let thirty = Limits {
            failures: 30,
            ..LIMITS
        };
        for i in 0..26 {
            assert!(!l.failure(b, None, 10 + i, thirty).address, "{i}");
        }
        assert!(l.failure(b, None, 40, thirty).address);
    }

    #[test]
    fn tables_stay_within_their_bounds() {
        let g = gauges();
        let l = Lockout::new(g.clone());
        let limits = Limits {
            failures: 3,
            window: 60,
            lock: 60,
        };
        let total = (ADDRESSES_PER_SHARD * SHARDS) as u32 * 2;
        for i in 0..total {
            l.failure(
                u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                None,
                5,
                limits,
            );
        }
        for s in l.addresses.shards.iter() {
            assert!(lock(s).len() <= ADDRESSES_PER_SHARD);
        }
        assert!(g.addresses.get() <= (ADDRESSES_PER_SHARD * SHARDS) as i64);
        assert_eq!(
            g.addresses.get(),
            l.addresses
                .shards
                .iter()
                .map(|s| lock(s).len())
                .sum::<usize>() as i64
        );
        // Locked entries survive eviction while unlocked ones can go.
        let locked = 0xdead_beef_u64 << 8;
        for t in 0..3 {
            l.failure(locked, None, 10 + t, limits);
        }
        assert!(l.address_locked(locked, 13).is_some());
        for i in 0..total {
            l.failure(
                u64::from(i).wrapping_mul(0x2545_F491_4F6C_DD1D),
                None,
                14,
                limits,
            );
        }
        assert!(l.address_locked(locked, 15).is_some());
        // Known-good pairs.
        for i in 0..(KNOWN_PER_SHARD * SHARDS) as u64 * 2 {
            l.success(i, i, 1);
        }
        for s in l.known.shards.iter() {
            let s = lock(s);
            assert!(s.len() <= KNOWN_PER_SHARD);
            assert!(s.capacity() >= KNOWN_PER_SHARD);
        }
    }

    #[test]
    fn out_of_range_limits_are_clamped() {
        let l = Lockout::new(gauges());
        let zero = Limits {
            failures: 0,
            window: 0,
            lock: 0,
        };
        assert!(
            !l.failure(1, Some(2), 5, zero).address,
            "a window of 0 s counts nothing"
        );
        let one = Limits {
            failures: 0,
            window: 10,
            lock: 10,
        };
        assert!(
            l.failure(3, None, 5, one).address,
            "0 failures is taken as 1"
        );
    }

    #[test]
    fn worst_case_memory() {
        assert_eq!(std::mem::size_of::<(u64, Entry)>(), 40);
        let default = worst_case_bytes(20);
        let most = worst_case_bytes(100);
        // The figures the documentation gives.
        assert_eq!(default, 12_845_824, "12.3 MiB");
        assert_eq!(most, 33_817_344, "32.3 MiB");
    }
}
