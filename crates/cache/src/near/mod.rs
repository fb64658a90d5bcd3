//! The near cache: a coherent in-process tier (this module's doc is
//! `docs/near.md`).
#![doc = include_str!("../../docs/near.md")]

mod config;
mod flushes;
mod tier;
mod tracking;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::clients::Client;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::RedisKey;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::stats::OpKind;
use crate::ttl::Ttl;
use crate::Cache;

pub use config::{NearConfig, TrackingMode};
pub use tier::NearStats;
use tier::{FlushCause, Tier};
use tracking::Tracking;

/// A [`Cache`] with an in-process tier for the keys of the opted-in
/// namespaces, kept coherent with Redis by client tracking.
///
/// Reads of an opted-in key are answered locally when held; otherwise they
/// go to Redis on a dedicated RESP3 connection with `CLIENT TRACKING` on,
/// and the value is kept locally (never longer than its Redis TTL, nor
/// [`NearConfig::max_ttl`]) until the server says it changed. Keys of other
/// namespaces (sessions, limiters, locks) are passed straight to the
/// [`Cache`]. Writes go through the [`Cache`] and drop the local copy
/// before they return.
///
/// Guarantees:
/// - once a write by any client has returned and this process has received
///   its invalidation, no read here returns the old value;
/// - a read in flight when its key's invalidation (or a flush) arrives does
///   not keep its value;
/// - a lost, killed or reconnected tracking connection, a cluster change,
///   `FLUSHDB`/`FLUSHALL` and lagging invalidations flush the whole tier,
///   and after a connection event the tier serves again only once tracking
///   is back on every node.
///
/// Misses are not cached: a key that does not exist is read from Redis
/// each time.
///
/// Cheap to clone; clones share the tier. The background task ends when
/// the last clone is dropped or on [`shutdown`](Self::shutdown).
#[derive(Clone)]
pub struct NearCache {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache,
    client: Client,
    tier: Arc<Tier>,
    /// Opted-in namespaces as full key prefixes (`<prefix><namespace>`).
    prefixes: Vec<String>,
    config: NearConfig,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(Some(task)) = self.task.get_mut().map(Option::take) {
            task.abort();
        }
        // fred keeps a connection open until QUIT
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

impl fmt::Debug for NearCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearCache")
            .field("cache", &self.inner.cache)
            .field("config", &self.inner.config)
            .field("serving", &self.inner.tier.is_serving())
            .finish_non_exhaustive()
    }
}

impl NearCache {
    /// A near cache in front of `cache`: opens the tracking connection,
    /// turns tracking on (on every node of a cluster) and starts the task
    /// that applies invalidations. Serves when it returns.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid `config`, [`Error::Key`] for a
    /// namespace the key space refuses, [`Error::Redis`] when the
    /// connection or `CLIENT TRACKING` fails.
    pub async fn new(cache: Cache, config: NearConfig) -> Result<NearCache> {
        config.validate()?;
        let prefixes = config
            .namespaces
            .iter()
            .map(|ns| cache.key(ns).build().map(RedisKey::into_string))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let client = tracking::connect(cache.redis()).await?;
        let tier = Arc::new(Tier::new(&config));
        let tracking = Tracking {
            client: client.clone(),
            connect_timeout: cache.redis().config().connect_timeout,
            mode: config.mode,
            prefixes: prefixes.clone(),
        };
        let task = match tracking::start(tracking, Arc::clone(&tier)).await {
            Ok(task) => task,
            Err(e) => {
                let _ = client.quit().await;
                return Err(e);
            }
        };
        Ok(NearCache {
            inner: Arc::new(Inner {
                cache,
                client,
                tier,
                prefixes,
                config,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The [`Cache`] underneath (its reads never touch the local tier).
    #[must_use]
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &NearConfig {
        &self.inner.config
    }

    /// Whether `key` is in an opted-in namespace.
    #[must_use]
    pub fn is_near(&self, key: &RedisKey) -> bool {
        let key = key.as_str();
        self.inner.prefixes.iter().any(|p| {
            key.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
        })
    }

    /// Reads and decodes `key`: from the local tier when held, else from
    /// Redis (and kept locally when the key is opted in). Values are decoded
    /// once per type and cloned on later hits; [`get_shared`](Self::get_shared)
    /// saves the clone.
    pub async fn get<T>(&self, key: &RedisKey) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        if !self.is_near(key) {
            return self.inner.cache.get(key).await;
        }
        let entry = self.inner.tier.get(key.as_str());
        if let Some(entry) = &entry {
            // a hit never awaits anything: without this a task reading hot
            // keys in a loop would starve the runtime's I/O (and the
            // invalidation task)
            tokio::task::coop::consume_budget().await;
            if let Some(value) = entry.decoded_ref::<T>() {
                return Ok(Some(value.clone()));
            }
        }
        Ok(self
            .decode_or_fill::<T>(key, entry)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    /// [`get`](Self::get) without the clone: a hit returns the value decoded
    /// once and shared by every read of the key as `T` (a large value costs
    /// no copy).
    pub async fn get_shared<T>(&self, key: &RedisKey) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if !self.is_near(key) {
            return Ok(self.inner.cache.get::<T>(key).await?.map(Arc::new));
        }
        let entry = self.inner.tier.get(key.as_str());
        if let Some(entry) = &entry {
            tokio::task::coop::consume_budget().await;
            if let Some(value) = entry.decoded::<T>() {
                return Ok(Some(value));
            }
        }
        self.decode_or_fill(key, entry).await
    }

    /// The rest of a read of an opted-in key: decodes the `entry` held (not
    /// yet decoded as `T`), or reads Redis when none is.
    async fn decode_or_fill<T>(
        &self,
        key: &RedisKey,
        entry: Option<Arc<tier::Entry>>,
    ) -> Result<Option<Arc<T>>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(entry) = entry {
            let value = Arc::new(self.inner.cache.decode::<T>(key, &entry.bytes)?);
            entry.keep_decoded(Arc::clone(&value));
            return Ok(Some(value));
        }
        match self.read_through(key, std::future::ready(())).await? {
            Some((bytes, entry)) => {
                let value = Arc::new(self.inner.cache.decode::<T>(key, &bytes)?);
                if let Some(entry) = entry {
                    entry.keep_decoded(Arc::clone(&value));
                }
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }

    /// Reads the stored bytes of `key`, from the local tier when held.
    pub async fn get_bytes(&self, key: &RedisKey) -> Result<Option<Bytes>> {
        if !self.is_near(key) {
            return self.inner.cache.get_bytes(key).await;
        }
        if let Some(entry) = self.inner.tier.get(key.as_str()) {
            tokio::task::coop::consume_budget().await;
            return Ok(Some(entry.bytes.clone()));
        }
        Ok(self
            .read_through(key, std::future::ready(()))
            .await?
            .map(|(bytes, _)| bytes))
    }

    /// Reads `key` from Redis on the tracking connection (`GET` and `PTTL`
    /// sent together); `hold` runs between the reply and the insert (the
    /// fill-race test holds the reply there).
    async fn read_through(
        &self,
        key: &RedisKey,
        hold: impl Future<Output = ()>,
    ) -> Result<Option<(Bytes, Option<Arc<tier::Entry>>)>> {
        let started = Instant::now();
        let fill = self.inner.tier.begin(key.as_str());
        // both on the tracking connection, auto-pipelined with every other
        // task's commands (one round trip; a fred `Pipeline` object is sent
        // on its own and measured slower under concurrency)
        let client = &self.inner.client;
        let (value, pttl) = tokio::join!(
            client.get::<Option<Bytes>, _>(key),
            client.pttl::<i64, _>(key)
        );
        let reply = value
            .and_then(|v| pttl.map(|t| (v, t)))
            .map_err(|e| Error::from_fred(key.as_str(), e));
        let reply = self.inner.cache.finish(OpKind::Get, started, reply);
        hold.await;
        match (reply, fill) {
            (Ok((Some(bytes), pttl)), Some(fill)) => {
                let entry = self.inner.tier.complete(fill, bytes.clone(), pttl);
                Ok(Some((bytes, entry)))
            }
            (Ok((Some(bytes), _)), None) => Ok(Some((bytes, None))),
            (reply, fill) => {
                if let Some(fill) = fill {
                    self.inner.tier.abandon(fill);
                }
                reply.map(|_| None)
            }
        }
    }

    /// Test hook: [`get_bytes`](Self::get_bytes) that always reads Redis and
    /// awaits `hold` after the reply, before the value may be kept locally.
    #[doc(hidden)]
    pub async fn get_bytes_holding_reply(
        &self,
        key: &RedisKey,
        hold: impl Future<Output = ()>,
    ) -> Result<Option<Bytes>> {
        Ok(self.read_through(key, hold).await?.map(|(bytes, _)| bytes))
    }

    /// Writes through [`Cache::set`]; the local copy is dropped before the
    /// write is sent and again once it returned (a read in flight cannot
    /// keep the old value).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        self.drop_local(key);
        let result = self.inner.cache.set(key, value, ttl).await;
        self.drop_local(key);
        result
    }

    /// Deletes through [`Cache::delete`], dropping the local copy as
    /// [`set`](Self::set) does.
    pub async fn delete(&self, key: &RedisKey) -> Result<bool> {
        self.drop_local(key);
        let result = self.inner.cache.delete(key).await;
        self.drop_local(key);
        result
    }

    /// Drops the local copy of `key` (and any fill of it in flight). Call it
    /// after writing `key` through another handle of this process.
    pub fn drop_local(&self, key: &RedisKey) {
        if self.is_near(key) {
            self.inner.tier.drop_key(key.as_str());
        }
    }

    /// Drops every local copy.
    pub fn flush_local(&self) {
        self.inner.tier.flush(FlushCause::Caller);
    }

    /// Whether `key` is held locally now.
    #[must_use]
    pub fn is_held(&self, key: &RedisKey) -> bool {
        self.inner.tier.contains(key.as_str())
    }

    /// Whether the tier serves: tracking is confirmed on every connection.
    #[must_use]
    pub fn is_serving(&self) -> bool {
        self.inner.tier.is_serving()
    }

    /// The tracking client (the connection whose invalidations keep the tier
    /// coherent): for `CLIENT ID`, `CLIENT TRACKINGINFO` and fault tests.
    #[must_use]
    pub fn tracking_client(&self) -> &Client {
        &self.inner.client
    }

    /// A snapshot of the near cache's counters.
    #[must_use]
    pub fn stats(&self) -> NearStats {
        self.inner.tier.snapshot()
    }

    /// Stops the task, flushes the tier and closes the tracking connection.
    /// The [`Cache`] underneath stays open.
    ///
    /// # Errors
    /// [`Error::Redis`] when `QUIT` fails.
    pub async fn shutdown(&self) -> Result<()> {
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            task.abort();
        }
        self.inner.tier.stop_serving(FlushCause::Caller);
        self.inner
            .client
            .quit()
            .await
            .map_err(|e| Error::Redis(e.into()))
    }
}
