//! The local tier: a bounded `moka` cache, the fill tokens that keep a read
//! in flight from inserting a value invalidated meanwhile, and the counters.
//!
//! Every insert happens under the lock of its key's shard, after checking
//! that the read's token is still registered and the flush epoch has not
//! moved. An invalidation removes the key's token under the same lock; a
//! flush bumps the epoch and clears every token under all the locks. So a
//! value read before an invalidation (or a flush) is never inserted after
//! it, whatever order the reply and the invalidation arrive in.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;
use moka::Expiry;
use serde::Serialize;

use super::config::NearConfig;

const SHARDS: usize = 16;

/// One value held locally: the stored bytes, its local TTL, and the value
/// decoded on the first typed hit (later hits of the same type clone it).
pub(crate) struct Entry {
    pub(crate) bytes: Bytes,
    ttl: Duration,
    weight: u32,
    decoded: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Entry {
    /// The value decoded as `T` by an earlier read, borrowed (no reference
    /// count touched).
    pub(crate) fn decoded_ref<T: 'static>(&self) -> Option<&T> {
        self.decoded.get()?.downcast_ref::<T>()
    }

    /// The value decoded as `T` by an earlier read, shared.
    pub(crate) fn decoded<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        Arc::clone(self.decoded.get()?).downcast::<T>().ok()
    }

    /// Keeps `value` for later reads of the same type (the first kept
    /// wins).
    pub(crate) fn keep_decoded<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        let _ = self.decoded.set(value);
    }
}

struct LocalTtl;

impl Expiry<String, Arc<Entry>> for LocalTtl {
    fn expire_after_create(&self, _: &String, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        e: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// A read in flight that may fill the tier with its reply.
#[derive(Debug)]
pub(crate) struct Fill {
    key: String,
    token: u64,
    epoch: u64,
    started: Instant,
}

#[derive(Default)]
struct Counters {
    hits: Striped,
    misses: Striped,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    fills: AtomicU64,
    fills_refused: AtomicU64,
    bytes: Arc<AtomicU64>,
}

/// Why the whole tier was flushed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FlushCause {
    /// `FLUSHDB`/`FLUSHALL`: a null invalidation.
    ServerFlush,
    /// The tracking connection dropped, reconnected, or the cluster changed.
    Connection,
    /// Invalidations were dropped (the broadcast channel lagged).
    Lagged,
    /// [`NearCache::flush_local`](super::NearCache::flush_local).
    Caller,
}

pub(crate) struct Tier {
    local: Moka<String, Arc<Entry>>,
    pending: Vec<Mutex<HashMap<String, u64>>>,
    hasher: RandomState,
    epoch: AtomicU64,
    tokens: AtomicU64,
    serving: AtomicBool,
    slot: u32,
    max_ttl: Duration,
    counters: Counters,
}

impl Tier {
    pub(crate) fn new(config: &NearConfig) -> Tier {
        let counters = Counters::default();
        let bytes = Arc::clone(&counters.bytes);
        // Every entry is charged at least max_bytes / max_entries: the weight
        // budget then bounds both the byte total and the entry count.
        let slot = u32::try_from(config.max_bytes.get() / config.max_entries.get())
            .unwrap_or(u32::MAX)
            .max(1);
        let local = Moka::builder()
            .max_capacity(config.max_bytes.get())
            .weigher(|_: &String, e: &Arc<Entry>| e.weight)
            .expire_after(LocalTtl)
            .eviction_listener(move |k: Arc<String>, e: Arc<Entry>, _: RemovalCause| {
                bytes.fetch_sub(real_size(&k, &e), Ordering::Relaxed);
            })
            .build();
        Tier {
            local,
            pending: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            epoch: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            slot,
            max_ttl: config.max_ttl,
            counters,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, u64>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        lock(&self.pending[i])
    }

    /// The local entry of `key`, counting a hit or a miss.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let found = if self.serving.load(Ordering::Acquire) {
            self.local.get(key)
        } else {
            None
        };
        let counter = if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.add_one();
        found
    }

    /// Whether `key` is held locally (no counting).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.local.contains_key(key)
    }

    /// Registers a read of `key` that may fill the tier; `None` while the
    /// tier is not serving (tracking not confirmed).
    pub(crate) fn begin(&self, key: &str) -> Option<Fill> {
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(key);
        shard.insert(key.to_owned(), token);
        let epoch = self.epoch.load(Ordering::Acquire);
        drop(shard);
        Some(Fill {
            key: key.to_owned(),
            token,
            epoch,
            started: Instant::now(),
        })
    }

    /// Completes `fill` with the value read and the key's `PTTL` at the time
    /// of the read; inserts only when no invalidation or flush came in
    /// between. Returns the entry inserted.
    pub(crate) fn complete(&self, fill: Fill, bytes: Bytes, pttl_ms: i64) -> Option<Arc<Entry>> {
        let mut shard = self.shard(&fill.key);
        let ours = shard.get(&fill.key) == Some(&fill.token);
        if ours {
            shard.remove(&fill.key);
        }
        // The server measured PTTL after `started`: counting from `started`
        // the local copy expires before the key does in Redis.
        let ttl = match pttl_ms {
            -1 => Some(self.max_ttl),
            ms if ms > 0 => Duration::from_millis(ms.unsigned_abs())
                .checked_sub(fill.started.elapsed())
                .filter(|d| !d.is_zero())
                .map(|d| d.min(self.max_ttl)),
            _ => None, // gone (-2)
        };
        let current = self.epoch.load(Ordering::Acquire) == fill.epoch
            && self.serving.load(Ordering::Acquire);
        let (true, true, Some(ttl)) = (ours, current, ttl) else {
            self.counters.fills_refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let size = fill.key.len() as u64 + bytes.len() as u64;
        let entry = Arc::new(Entry {
            bytes,
            ttl,
            weight: u32::try_from(size).unwrap_or(u32::MAX).max(self.slot),
            decoded: OnceLock::new(),
        });
        self.counters.bytes.fetch_add(size, Ordering::Relaxed);
        self.counters.fills.fetch_add(1, Ordering::Relaxed);
        self.local.insert(fill.key, Arc::clone(&entry));
        drop(shard);
        Some(entry)
    }

    /// Forgets `fill` (the read failed or found nothing).
    pub(crate) fn abandon(&self, fill: Fill) {
        let Fill { key, token, .. } = fill;
        let mut shard = self.shard(&key);
        if shard.get(&key) == Some(&token) {
            shard.remove(&key);
        }
    }

    /// Drops `key` locally and cancels any fill of it in flight.
    pub(crate) fn drop_key(&self, key: &str) {
        let mut shard = self.shard(key);
        shard.remove(key);
        self.local.invalidate(key);
    }

    /// An invalidation of `key` from the server.
    pub(crate) fn invalidate(&self, key: &str) {
        self.drop_key(key);
        // counted once applied: a reader of the counter may rely on it
        self.counters.invalidations.fetch_add(1, Ordering::Release);
    }

    /// Drops everything held and every fill in flight.
    pub(crate) fn flush(&self, cause: FlushCause) {
        let mut shards: Vec<_> = self.pending.iter().map(lock).collect();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &mut shards {
            shard.clear();
        }
        self.local.invalidate_all();
        drop(shards);
        // counted once applied, as invalidations are
        self.counters.flushes.fetch_add(1, Ordering::Release);
        tracing::debug!(?cause, "near cache flushed");
    }

    /// Stops serving (and flushes): tracking is not known to be on.
    pub(crate) fn stop_serving(&self, cause: FlushCause) {
        self.serving.store(false, Ordering::Release);
        self.flush(cause);
    }

    /// Serves again from an empty tier: tracking is confirmed on.
    pub(crate) fn start_serving(&self) {
        let shards: Vec<_> = self.pending.iter().map(lock).collect();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.local.invalidate_all();
        self.serving.store(true, Ordering::Release);
        drop(shards);
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> NearStats {
        self.local.run_pending_tasks();
        let c = &self.counters;
        NearStats {
            hits: c.hits.sum(),
            misses: c.misses.sum(),
            invalidations: c.invalidations.load(Ordering::Acquire),
            flushes: c.flushes.load(Ordering::Acquire),
            fills: c.fills.load(Ordering::Relaxed),
            fills_refused: c.fills_refused.load(Ordering::Relaxed),
            entries: self.local.entry_count(),
            bytes: c.bytes.load(Ordering::Relaxed),
            serving: self.is_serving(),
        }
    }
}

/// A counter bumped on every read: one cache line per stripe, a thread
/// keeps to its stripe, so threads reading hot keys do not contend on it.
#[derive(Default)]
struct Striped([Padded; STRIPES]);

const STRIPES: usize = 8;

#[derive(Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

impl Striped {
    #[inline]
    fn add_one(&self) {
        let i = STRIPE.try_with(|s| *s).unwrap_or(0);
        self.0[i].0.fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

fn real_size(key: &str, e: &Entry) -> u64 {
    key.len() as u64 + e.bytes.len() as u64
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // the maps hold plain data: a panic elsewhere leaves them consistent
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A snapshot of the near cache's counters (`Serialize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NearStats {
    /// Reads answered from the local tier.
    pub hits: u64,
    /// Reads of opted-in keys that went to Redis.
    pub misses: u64,
    /// Keys invalidated by the server (one per key of each message).
    pub invalidations: u64,
    /// Whole-tier flushes: `FLUSHDB`/`FLUSHALL`, a lost or reconnected
    /// tracking connection, a cluster change, lagging invalidations.
    pub flushes: u64,
    /// Values read from Redis and inserted locally.
    pub fills: u64,
    /// Values read from Redis and not inserted: invalidated or flushed while
    /// the read was in flight, or gone.
    pub fills_refused: u64,
    /// Entries held (after pending evictions ran).
    pub entries: u64,
    /// Bytes held: key plus encoded value of every entry.
    pub bytes: u64,
    /// Whether the tier serves (tracking confirmed on every connection).
    pub serving: bool,
}

impl NearStats {
    /// Hits over hits plus misses; `None` before any read.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::num::NonZeroU64;

    fn tier() -> Tier {
        let t = Tier::new(&NearConfig::for_namespaces(["zone"]));
        t.start_serving();
        t
    }

    #[test]
    fn should_not_insert_a_value_invalidated_while_its_read_was_in_flight() {
        let t = tier();
        let fill = t.begin("k").unwrap();
        t.invalidate("k");
        assert!(t.complete(fill, Bytes::from_static(b"old"), -1).is_none());
        assert!(!t.contains("k"));
        assert_eq!(t.snapshot().fills_refused, 1);
    }

    #[test]
    fn should_not_insert_a_value_read_before_a_flush() {
        let t = tier();
        let fill = t.begin("k").unwrap();
        t.flush(FlushCause::ServerFlush);
        assert!(t.complete(fill, Bytes::from_static(b"old"), -1).is_none());
        assert!(!t.contains("k"));
    }

    #[test]
    fn should_insert_when_nothing_came_in_between() {
        let t = tier();
        let fill = t.begin("k").unwrap();
        assert!(t.complete(fill, Bytes::from_static(b"v"), 5_000).is_some());
        assert!(t.get("k").is_some());
        let s = t.snapshot();
        assert_eq!((s.entries, s.bytes, s.hits), (1, 2, 1));
    }

    #[test]
    fn should_not_fill_while_not_serving() {
        let t = tier();
        t.stop_serving(FlushCause::Connection);
        assert!(t.begin("k").is_none());
    }

    #[test]
    fn should_bound_the_entry_count_through_the_weights() {
        let config = NearConfig::for_namespaces(["zone"])
            .with_max_entries(NonZeroU64::new(10).unwrap())
            .with_max_bytes(NonZeroU64::new(10_000).unwrap());
        let t = Tier::new(&config);
        t.start_serving();
        for i in 0..100 {
            let fill = t.begin(&format!("k{i}")).unwrap();
            t.complete(fill, Bytes::from_static(b"v"), -1);
        }
        let s = t.snapshot();
        assert!(s.entries <= 10, "{s:?}");
        assert!(s.bytes <= 10_000, "{s:?}");
    }
}
