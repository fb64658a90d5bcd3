//! [`CacheAside`]: `get_or_load` with single flight, leases that make
//! invalidation race-free, stale-while-revalidate, early refresh (XFetch)
//! and negative caching.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use aeturnis_cache::Cache;
use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::{Redis, RedisKey, ServerClock};
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::envelope::{self, Entry, Stored, Token};
use crate::error::{Error, Result};
use crate::hot::HotKeys;
use crate::notify::{channel, publish_fill, Notifier};
use crate::policy::{OnRedisError, Policy};
use crate::scripts::{FILL, LEASE, UNLEASE};
use crate::stats::{bump, CacheAsideStats, Counters};
use crate::xfetch::xfetch_due;

/// The values a [`CacheAside`] can hold.
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

type Loaded<T> = Result<Option<T>>;
type Flight<T> = Shared<BoxFuture<'static, Loaded<T>>>;

/// Cache-aside reads of one value type `T` through a [`Cache`]; cheap to
/// clone. See the crate docs for the guarantees.
pub struct CacheAside<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    redis: Redis,
    notifier: tokio::sync::OnceCell<Option<Notifier>>,
    clock: ServerClock,
    flights: Mutex<HashMap<RedisKey, Flight<T>>>,
    refreshing: Mutex<HashSet<RedisKey>>,
    hot: RwLock<Option<Arc<HotKeys>>>,
    counters: Counters,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for CacheAside<T> {
    fn clone(&self) -> Self {
        CacheAside {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for CacheAside<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheAside")
            .field("value", &std::any::type_name::<T>())
            .field("stats", &self.inner.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl<T: Cacheable> CacheAside<T> {
    /// Cache-aside reads through `cache`'s Redis handle; registers the
    /// crate's scripts.
    #[must_use]
    pub fn new(cache: &Cache) -> Self {
        let redis = cache.redis().clone();
        redis.register_scripts([&*LEASE, &*FILL, &*UNLEASE]);
        CacheAside {
            inner: Arc::new(Inner {
                notifier: tokio::sync::OnceCell::new(),
                clock: ServerClock::new(redis.clone()),
                redis,
                flights: Mutex::new(HashMap::new()),
                refreshing: Mutex::new(HashSet::new()),
                hot: RwLock::new(None),
                counters: Counters::default(),
                _value: PhantomData,
            }),
        }
    }

    /// The Redis handle.
    pub(crate) fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// The server clock estimate.
    pub(crate) fn clock(&self) -> &ServerClock {
        &self.inner.clock
    }

    /// The counters since this reader was built.
    #[must_use]
    pub fn stats(&self) -> CacheAsideStats {
        self.inner.counters.snapshot()
    }

    /// The value at `key`, or what `loader` returns for it (stored per
    /// `policy`). One `GET` when the entry is fresh. On a miss, one loader
    /// call per key in this process at a time: concurrent callers await the
    /// same load, which runs in a task of its own, so a cancelled caller
    /// strands nobody. `Ok(None)` is the loader's `None` (cached for the
    /// policy's negative TTL, if any).
    ///
    /// # Errors
    /// [`Error::Load`] with the loader's error as the source;
    /// [`Error::Foreign`] when the key holds a value this crate did not
    /// write; a Redis error only with [`OnRedisError::Fail`].
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &RedisKey,
        policy: &Policy,
        loader: F,
    ) -> Result<Option<T>>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        if let Some(hot) = &*self.inner.hot.read().unwrap_or_else(|p| p.into_inner()) {
            hot.record(key);
        }
        let loader = Arc::new(loader);
        let got = self.inner.redis.client().get::<Option<Bytes>, _>(key).await;
        match got {
            Err(e) => match policy.settings().on_redis_error {
                OnRedisError::Fail => Err(e.into()),
                OnRedisError::Bypass => {
                    bump(&self.inner.counters.bypassed);
                    self.load(key, &loader).await.map(|(v, _)| v)
                }
            },
            Ok(None) => {
                bump(&self.inner.counters.misses);
                self.flight(key, policy, loader).await
            }
            Ok(Some(bytes)) => match envelope::decode(&bytes) {
                None => Err(Error::Foreign {
                    key: key.as_str().to_owned(),
                }),
                Some(Stored::Lease(_)) => {
                    bump(&self.inner.counters.misses);
                    self.flight(key, policy, loader).await
                }
                Some(Stored::Entry(entry)) => self.serve(key, policy, entry, loader).await,
            },
        }
    }

    /// Removes `key`'s entry (`UNLINK`). A load in flight for it will not
    /// store what it read: call this after changing the source of truth.
    ///
    /// # Errors
    /// A Redis error.
    pub async fn invalidate(&self, key: &RedisKey) -> Result<bool> {
        let removed: u64 = self.inner.redis.client().unlink(key).await?;
        Ok(removed > 0)
    }

    /// A found entry: fresh, stale (served while one refresh runs) or
    /// due for an early refresh (XFetch).
    async fn serve<F, Fut, E>(
        &self,
        key: &RedisKey,
        policy: &Policy,
        entry: Entry,
        loader: Arc<F>,
    ) -> Result<Option<T>>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        let counters = &self.inner.counters;
        // the clock is an estimate kept without round trips; without it,
        // serve the entry as fresh (its hard TTL still bounds it)
        if let Ok(now) = self.inner.clock.now_ms().await {
            if now >= entry.soft_at_ms {
                bump(&counters.stale_served);
                if self.refresh(key, policy, entry.token, loader) {
                    bump(&counters.stale_refreshes);
                }
            } else if xfetch_due(now, &entry, policy.settings().beta, rand::random::<f64>())
                && self.refresh(key, policy, entry.token, loader)
            {
                bump(&counters.early_refreshes);
            }
        }
        match entry.value {
            None => {
                bump(&counters.negative_hits);
                Ok(None)
            }
            Some(bytes) => {
                bump(&counters.hits);
                Ok(Some(self.inner.redis.codec().decode(key.as_str(), &bytes)?))
            }
        }
    }

    /// Joins or starts this process's one load of `key`.
    async fn flight<F, Fut, E>(&self, key: &RedisKey, policy: &Policy, loader: Arc<F>) -> Loaded<T>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        let flight = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(key) {
                Some(f) => f.clone(),
                None => {
                    let this = self.clone();
                    let (task_key, policy) = (key.clone(), policy.clone());
                    let task = tokio::spawn(async move {
                        let result = this.lead(&task_key, &policy, loader).await;
                        this.inner
                            .flights
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&task_key);
                        result
                    });
                    let name = key.as_str().to_owned();
                    let f = async move {
                        task.await
                            .unwrap_or_else(|join| Err(Error::load(&name, join)))
                    }
                    .boxed()
                    .shared();
                    flights.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        flight.await
    }

    /// The leader of a load: lease the key (one script call that also
    /// returns whatever appeared meanwhile), load, store if the lease still
    /// holds.
    pub(crate) async fn lead<F, Fut, E>(
        &self,
        key: &RedisKey,
        policy: &Policy,
        loader: Arc<F>,
    ) -> Loaded<T>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        let token = envelope::new_token();
        let lease = Bytes::from(envelope::lease(token));
        let lease_ms = ceil_millis(policy.settings().lease_ttl);
        let sent = lease.clone();
        let reply: std::result::Result<Value, _> = self
            .inner
            .redis
            .script_on(&LEASE, key, |args| {
                args.push(Value::Bytes(sent.clone()));
                args.push(Value::Integer(i64::try_from(lease_ms).unwrap_or(i64::MAX)));
            })
            .await;
        let leased = match reply {
            Err(e) => match policy.settings().on_redis_error {
                OnRedisError::Fail => return Err(e.into()),
                OnRedisError::Bypass => {
                    bump(&self.inner.counters.bypassed);
                    false
                }
            },
            Ok(Value::Integer(1)) => true,
            Ok(other) => match other.as_bytes().map(Bytes::copy_from_slice) {
                Some(b) if b == lease => true,
                Some(b) => match envelope::decode(&b) {
                    Some(Stored::Entry(e)) => {
                        // filled meanwhile by another process
                        return match e.value {
                            None => Ok(None),
                            Some(v) => Ok(Some(self.inner.redis.codec().decode(key.as_str(), &v)?)),
                        };
                    }
                    Some(Stored::Lease(_)) => {
                        if let Some(wait) = policy.settings().lease_wait {
                            if let Some(value) = self.wait_for_fill(key, wait).await? {
                                bump(&self.inner.counters.lease_waited);
                                return Ok(value);
                            }
                        }
                        bump(&self.inner.counters.lease_contended);
                        false
                    }
                    None => {
                        return Err(Error::Foreign {
                            key: key.as_str().to_owned(),
                        })
                    }
                },
                None => false,
            },
        };
        let loaded = self.load(key, &loader).await;
        match loaded {
            Ok((value, took)) => {
                if leased {
                    self.fill(key, policy, token, value.as_ref(), took).await;
                }
                Ok(value)
            }
            Err(e) => {
                if leased {
                    self.unlease(key, token).await;
                }
                Err(e)
            }
        }
    }

    /// Calls the loader, timing it (δ for early refresh).
    pub(crate) async fn load<F, Fut, E>(
        &self,
        key: &RedisKey,
        loader: &Arc<F>,
    ) -> Result<(Option<T>, u32)>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        bump(&self.inner.counters.loads);
        let started = Instant::now();
        match loader().await {
            Ok(v) => Ok((
                v,
                u32::try_from(ceil_millis(started.elapsed())).unwrap_or(u32::MAX),
            )),
            Err(e) => {
                bump(&self.inner.counters.load_errors);
                Err(Error::load(key.as_str(), e))
            }
        }
    }

    /// Stores `value` if `key` still holds `expected` (our lease or the
    /// entry being refreshed); `true` when stored. A failure is logged,
    /// not returned: the caller has its value; the cache just stays empty.
    pub(crate) async fn fill(
        &self,
        key: &RedisKey,
        policy: &Policy,
        expected: Token,
        value: Option<&T>,
        took_ms: u32,
    ) -> bool {
        let settings = policy.settings();
        let (ttl, soft) = match value {
            Some(_) => (settings.ttl, settings.soft_ttl.unwrap_or(settings.ttl)),
            None => match settings.negative_ttl {
                Some(n) => (n, n),
                None => {
                    self.unlease(key, expected).await;
                    return false;
                }
            },
        };
        let stored = async {
            let now = self.inner.clock.now_ms().await?;
            let encoded = match value {
                Some(v) => Some(self.inner.redis.codec().encode(key.as_str(), v)?),
                None => None,
            };
            let ttl_ms = ceil_millis(ttl);
            let entry = Bytes::from(envelope::entry(
                envelope::new_token(),
                now.saturating_add(ceil_millis(soft)),
                now.saturating_add(ttl_ms),
                took_ms,
                encoded.as_deref(),
            ));
            let stored: i64 = self
                .inner
                .redis
                .script_on(&FILL, key, |args| {
                    args.push(Value::Bytes(Bytes::copy_from_slice(&expected)));
                    args.push(Value::Bytes(entry.clone()));
                    args.push(Value::Integer(i64::try_from(ttl_ms).unwrap_or(i64::MAX)));
                })
                .await?;
            Ok::<_, aeturnis_redis_core::Error>(stored == 1)
        }
        .await;
        match stored {
            Ok(true) => {
                if settings.lease_wait.is_some() {
                    publish_fill(&self.inner.redis, key).await;
                }
                return true;
            }
            Ok(false) => bump(&self.inner.counters.fills_refused),
            Err(e) => tracing::warn!(key = %key, error = %e, "could not store a loaded value"),
        }
        false
    }

    /// Waits up to `wait` for another process to fill `key`: `Some(value)`
    /// when an entry appears (the outer `Option` is whether one did).
    async fn wait_for_fill(
        &self,
        key: &RedisKey,
        wait: std::time::Duration,
    ) -> Result<Option<Option<T>>> {
        let notifier = self
            .inner
            .notifier
            .get_or_init(|| async {
                match Notifier::connect(&self.inner.redis).await {
                    Ok(n) => Some(n),
                    Err(e) => {
                        tracing::warn!(error = %e, "no fill notifications: loading instead of waiting");
                        None
                    }
                }
            })
            .await;
        let Some(notifier) = notifier else {
            return Ok(None);
        };
        let channel = channel(key);
        let woken = match notifier.wait_on(&channel).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cannot wait for a fill; loading");
                return Ok(None);
            }
        };
        // the value may have landed before the subscription: look once
        let found = match self.entry_now(key).await? {
            Some(value) => Some(value),
            None => match tokio::time::timeout(wait, woken).await {
                Ok(_) => self.entry_now(key).await?,
                Err(_) => None,
            },
        };
        notifier.release(&channel).await;
        Ok(found)
    }

    /// The entry at `key` now, if there is one (not a lease).
    async fn entry_now(&self, key: &RedisKey) -> Result<Option<Option<T>>> {
        let bytes: Option<Bytes> = self.inner.redis.client().get(key).await?;
        match bytes.as_ref().and_then(envelope::decode) {
            Some(Stored::Entry(e)) => Ok(Some(match e.value {
                None => None,
                Some(v) => Some(self.inner.redis.codec().decode(key.as_str(), &v)?),
            })),
            _ => Ok(None),
        }
    }

    /// Removes `key` if it still holds `token`.
    async fn unlease(&self, key: &RedisKey, token: Token) {
        let removed: std::result::Result<i64, _> = self
            .inner
            .redis
            .script_on(&UNLEASE, key, |args| {
                args.push(Value::Bytes(Bytes::copy_from_slice(&token)));
            })
            .await;
        if let Err(e) = removed {
            tracing::warn!(key = %key, error = %e, "could not release a lease");
        }
    }

    /// Starts one background refresh of `key` in this process, replacing
    /// the entry holding `token`; `false` when one is already running.
    fn refresh<F, Fut, E>(
        &self,
        key: &RedisKey,
        policy: &Policy,
        token: Token,
        loader: Arc<F>,
    ) -> bool
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        if !self.begin_refresh(key) {
            return false;
        }
        let this = self.clone();
        let (key, policy) = (key.clone(), policy.clone());
        tokio::spawn(async move {
            let _done = this.refreshing(&key);
            match this.load(&key, &loader).await {
                Ok((value, took)) => {
                    this.fill(&key, &policy, token, value.as_ref(), took).await;
                }
                Err(e) if policy.settings().stale_if_error => {
                    bump(&this.inner.counters.stale_on_error);
                    tracing::warn!(key = %key, error = %e, "refresh failed; serving the stale value");
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "refresh failed; dropping the stale value");
                    this.unlease(&key, token).await;
                }
            }
        });
        true
    }
}

impl<T> CacheAside<T> {
    /// Marks `key` as refreshing in this process; `false` when it already
    /// is (one refresh per key at a time). Pair with [`Self::refreshing`].
    pub(crate) fn begin_refresh(&self, key: &RedisKey) -> bool {
        let mut set = self
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        set.insert(key.clone())
    }

    /// The guard that unmarks `key` when dropped.
    pub(crate) fn refreshing<'a>(&'a self, key: &'a RedisKey) -> Refreshing<'a> {
        Refreshing {
            set: &self.inner.refreshing,
            key,
        }
    }

    /// The hot-key sampler slot of the warming scheduler.
    pub(crate) fn hot_slot(&self) -> &RwLock<Option<Arc<HotKeys>>> {
        &self.inner.hot
    }
}

/// Removes a key from the set of refreshing keys when dropped (also when
/// the refresh task panics).
pub(crate) struct Refreshing<'a> {
    set: &'a Mutex<HashSet<RedisKey>>,
    key: &'a RedisKey,
}

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.key);
    }
}
