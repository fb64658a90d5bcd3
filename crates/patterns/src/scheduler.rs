//! [`WarmScheduler`]: keeps the hottest keys read through
//! [`CacheAside::get_or_load`] warm, refreshing them before they expire.
//!
//! [`CacheAside::start_warming`] turns on a bounded sampler of the keys
//! read through that reader (and its clones): a Misra–Gries summary of at
//! most [`capacity`](WarmSchedulerConfig::capacity) counters, whatever the
//! number of distinct keys (memory: `capacity` keys and a `u64` each; a
//! key read more than `n / (capacity + 1)` times out of `n` reads is
//! always counted). Every [`interval`](WarmSchedulerConfig::interval) the
//! scheduler takes the [`top_k`](WarmSchedulerConfig::top_k) keys read at
//! least [`min_reads`](WarmSchedulerConfig::min_reads) times, halves every
//! count (so a key that stops being read cools off within a few ticks),
//! and looks at each key's entry (one `GET`):
//! - its soft expiry (the hard one without a soft TTL) is more than
//!   [`lead`](WarmSchedulerConfig::lead) away: not due;
//! - it is due: the key is refreshed through the loader and the policy, as
//!   a background refresh is: one refresh per key at a time in the process
//!   (shared with stale-while-revalidate and XFetch), stored only if the
//!   key still holds the entry it replaces (the entry's token is the
//!   lease), so an invalidation or a newer write during the load wins;
//! - it holds nothing (expired, invalidated), a lease (a load is running)
//!   or is already refreshing: skipped; the next read loads it as usual.
//!
//! A loader failure leaves the entry in place (counted in `failed`): it
//! expires on its own unless a later tick succeeds. `lead` must exceed
//! `interval`, so every due key is seen by a tick while it still lives;
//! a key stays warm while the loader takes less than `lead − interval`.
//! Several processes with schedulers may refresh one key in the same
//! window: the first store wins, the others are refused and counted as
//! skipped.

use std::error::Error as StdError;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_redis_core::duration::{self, ceil_millis};
use aeturnis_redis_core::env::Env;
use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::{ConfigError, RedisKey};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache_aside::{CacheAside, Cacheable};
use crate::envelope::{self, Stored};
use crate::error::Result;
use crate::hot::HotKeys;
use crate::policy::Policy;

/// The settings of a [`WarmScheduler`], checked by
/// [`CacheAside::start_warming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmSchedulerConfig {
    /// How many of the hottest keys each tick considers. Default: 100.
    pub top_k: NonZeroUsize,
    /// The most keys the sampler counts (its memory bound); at least
    /// `top_k`. Default: 1,024.
    pub capacity: NonZeroUsize,
    /// The time between ticks. Default: 1 s.
    pub interval: Duration,
    /// How long before its expiry a key is refreshed; more than
    /// `interval`. Default: 5 s.
    pub lead: Duration,
    /// Reads (in the decayed count) below which a key is cold and never
    /// refreshed. Default: 2.
    pub min_reads: u64,
    /// Refreshes running at once within a tick. Default: 8.
    pub concurrency: NonZeroUsize,
}

impl Default for WarmSchedulerConfig {
    fn default() -> Self {
        WarmSchedulerConfig {
            top_k: NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN),
            capacity: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            interval: Duration::from_secs(1),
            lead: Duration::from_secs(5),
            min_reads: 2,
            concurrency: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// The environment variables of [`WarmSchedulerConfig::from_env`], in
/// field order.
const ENV: [&str; 6] = [
    "PATTERNS_WARM_TOP_K",
    "PATTERNS_WARM_CAPACITY",
    "PATTERNS_WARM_INTERVAL_MS",
    "PATTERNS_WARM_LEAD_MS",
    "PATTERNS_WARM_MIN_READS",
    "PATTERNS_WARM_CONCURRENCY",
];
const FIELDS: [&str; 6] = [
    "top_k",
    "capacity",
    "interval",
    "lead",
    "min_reads",
    "concurrency",
];

impl WarmSchedulerConfig {
    /// The defaults, overridden by `PATTERNS_WARM_TOP_K`,
    /// `PATTERNS_WARM_CAPACITY`, `PATTERNS_WARM_INTERVAL_MS`,
    /// `PATTERNS_WARM_LEAD_MS`, `PATTERNS_WARM_MIN_READS`,
    /// `PATTERNS_WARM_CONCURRENCY` (empty means unset).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that does not parse or breaks a
    /// rule.
    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        Self::from_env_reader(&Env::process())
    }

    /// [`from_env`](Self::from_env) reading through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, ConfigError> {
        Self::from_env_reader(&Env::new(lookup))
    }

    fn from_env_reader<L: Fn(&str) -> Option<String>>(
        env: &Env<L>,
    ) -> std::result::Result<Self, ConfigError> {
        let d = WarmSchedulerConfig::default();
        let config = WarmSchedulerConfig {
            top_k: env.non_zero_usize(ENV[0])?.unwrap_or(d.top_k),
            capacity: env.non_zero_usize(ENV[1])?.unwrap_or(d.capacity),
            interval: env.millis(ENV[2])?.unwrap_or(d.interval),
            lead: env.millis(ENV[3])?.unwrap_or(d.lead),
            min_reads: env.parse::<u64>(ENV[4])?.unwrap_or(d.min_reads),
            concurrency: env.non_zero_usize(ENV[5])?.unwrap_or(d.concurrency),
        };
        config.check(&ENV)?;
        Ok(config)
    }

    /// Sets [`top_k`](Self::top_k).
    #[must_use]
    pub fn with_top_k(mut self, top_k: NonZeroUsize) -> Self {
        self.top_k = top_k;
        self
    }

    /// Sets [`capacity`](Self::capacity).
    #[must_use]
    pub fn with_capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets [`interval`](Self::interval).
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`lead`](Self::lead).
    #[must_use]
    pub fn with_lead(mut self, lead: Duration) -> Self {
        self.lead = lead;
        self
    }

    /// Sets [`min_reads`](Self::min_reads).
    #[must_use]
    pub fn with_min_reads(mut self, min_reads: u64) -> Self {
        self.min_reads = min_reads;
        self
    }

    /// Sets [`concurrency`](Self::concurrency).
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: NonZeroUsize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Checks the rules; errors name `names[i]` for field `i`.
    fn check(&self, names: &[&str; 6]) -> std::result::Result<(), ConfigError> {
        if self.capacity < self.top_k {
            return Err(ConfigError::invalid(names[1], "must be at least top_k"));
        }
        duration::check(self.interval).map_err(|e| ConfigError::duration(names[2], e))?;
        duration::check(self.lead).map_err(|e| ConfigError::duration(names[3], e))?;
        if self.lead <= self.interval {
            return Err(ConfigError::invalid(names[3], "must exceed interval"));
        }
        if self.min_reads == 0 {
            return Err(ConfigError::invalid(names[4], "must be at least 1"));
        }
        Ok(())
    }
}

/// What a [`WarmScheduler`] has done. Serialises for a dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WarmSchedulerStats {
    /// Ticks run.
    pub ticks: u64,
    /// Hot keys refreshed and stored before they expired.
    pub rewarmed: u64,
    /// Hot keys whose expiry was further than `lead` away.
    pub not_due: u64,
    /// Hot keys not refreshed: gone, leased, already refreshing, or
    /// changed during the load (the store was refused).
    pub skipped: u64,
    /// Hot keys whose loader or Redis call failed.
    pub failed: u64,
    /// Keys the sampler counts now (at most `capacity`).
    pub tracked: u64,
}

#[derive(Debug, Default)]
struct Counters {
    ticks: AtomicU64,
    rewarmed: AtomicU64,
    not_due: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

/// A running warming scheduler (see the [module docs](self)). Stop it
/// with [`stop`](Self::stop); dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct WarmScheduler {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    hot: Arc<HotKeys>,
}

impl WarmScheduler {
    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> WarmSchedulerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        WarmSchedulerStats {
            ticks: get(&c.ticks),
            rewarmed: get(&c.rewarmed),
            not_due: get(&c.not_due),
            skipped: get(&c.skipped),
            failed: get(&c.failed),
            tracked: self.hot.len() as u64,
        }
    }

    /// Stops sampling and ticking; waits for the tick in progress (its
    /// refreshes finish and are stored).
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for WarmScheduler {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

enum Outcome {
    Rewarmed,
    NotDue,
    Skipped,
    Failed,
}

impl<T: Cacheable> CacheAside<T> {
    /// Starts a [`WarmScheduler`] that keeps the hottest keys read through
    /// this reader (and its clones) warm with `loader(key)` under
    /// `policy`. One scheduler per reader at a time.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming a bad setting, or
    /// `scheduler` when one is already running for this reader.
    pub fn start_warming<F, Fut, E>(
        &self,
        config: WarmSchedulerConfig,
        policy: &Policy,
        loader: F,
    ) -> Result<WarmScheduler>
    where
        F: Fn(RedisKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        config.check(&FIELDS)?;
        let hot = Arc::new(HotKeys::new(config.capacity.get()));
        {
            let mut slot = self.hot_slot().write().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return Err(ConfigError::invalid("scheduler", "one is already running").into());
            }
            *slot = Some(Arc::clone(&hot));
        }
        let (stop, mut stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let (this, policy, loader) = (self.clone(), policy.clone(), Arc::new(loader));
        let (task_hot, task_counters) = (Arc::clone(&hot), Arc::clone(&counters));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => break,
                }
                let top = task_hot.take_top(config.top_k.get(), config.min_reads);
                let mut outcomes = futures::stream::iter(top)
                    .map(|key| this.rewarm(key, &policy, config.lead, Arc::clone(&loader)))
                    .buffer_unordered(config.concurrency.get());
                while let Some(outcome) = outcomes.next().await {
                    let counter = match outcome {
                        Outcome::Rewarmed => &task_counters.rewarmed,
                        Outcome::NotDue => &task_counters.not_due,
                        Outcome::Skipped => &task_counters.skipped,
                        Outcome::Failed => &task_counters.failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                task_counters.ticks.fetch_add(1, Ordering::Relaxed);
            }
            let mut slot = this.hot_slot().write().unwrap_or_else(|p| p.into_inner());
            if slot.as_ref().is_some_and(|h| Arc::ptr_eq(h, &task_hot)) {
                *slot = None;
            }
        });
        Ok(WarmScheduler {
            stop,
            task: Mutex::new(Some(task)),
            counters,
            hot,
        })
    }

    /// Refreshes `key` if its entry expires within `lead`.
    async fn rewarm<F, Fut, E>(
        &self,
        key: RedisKey,
        policy: &Policy,
        lead: Duration,
        loader: Arc<F>,
    ) -> Outcome
    where
        F: Fn(RedisKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        let entry = match self.redis().client().get::<Option<Bytes>, _>(&key).await {
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "warming scheduler: cannot read the key");
                return Outcome::Failed;
            }
            Ok(bytes) => match bytes.as_ref().and_then(envelope::decode) {
                Some(Stored::Entry(entry)) => entry,
                _ => return Outcome::Skipped,
            },
        };
        let now = match self.clock().now_ms().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "warming scheduler: no server time");
                return Outcome::Failed;
            }
        };
        if entry.soft_at_ms > now.saturating_add(ceil_millis(lead)) {
            return Outcome::NotDue;
        }
        if !self.begin_refresh(&key) {
            return Outcome::Skipped;
        }
        let _done = self.refreshing(&key);
        let for_loader = key.clone();
        let load = Arc::new(move || loader(for_loader.clone()));
        match self.load(&key, &load).await {
            Ok((value, took)) => {
                if self
                    .fill(&key, policy, entry.token, value.as_ref(), took)
                    .await
                {
                    Outcome::Rewarmed
                } else {
                    Outcome::Skipped
                }
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "warming scheduler: the load failed");
                Outcome::Failed
            }
        }
    }
}
