//! The [`Cache`] handle and the single-key operations.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{Expiration, SetOptions};
use aeturnis_redis_core::keys::{KeyBuilder, PatternBuilder};
use aeturnis_redis_core::{LuaScript, Redis, RedisConfig, RedisKey};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::CacheConfig;
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::stats::{CacheStats, OpKind, Stats};
use crate::ttl::{self, KeyTtl, Ttl};

/// Every Lua script of this crate, in the order they are registered.
fn scripts() -> [&'static LuaScript; 4] {
    [
        &*crate::counter::INCR,
        &*crate::write_ttl::WRITE_WITH_TTL,
        &*crate::sorted::AROUND,
        &*crate::sorted::INCR_SCORE,
    ]
}

struct Inner {
    redis: Redis,
    config: CacheConfig,
    stats: Stats,
}

/// A typed cache over one [`Redis`] connection. Cheap to clone; clones share
/// the connection and the statistics.
///
/// Keys are [`RedisKey`]s built with [`Cache::key`] (or the helpers in
/// [`schema`](crate::schema)), so an empty, over-long or glob-injecting key
/// is refused before anything is sent. Values go through the core codec
/// (MessagePack by default, JSON selectable); a plain string written by
/// another client reads back as a `String`.
///
/// Every write carries a TTL (given, or [`CacheConfig::default_ttl`]) except
/// [`set_persistent`](Self::set_persistent), whose name says otherwise.
///
/// # Replay after a reconnect
///
/// fred re-sends a command whose connection dropped while it was in flight.
/// Each operation is either safe to run twice or sent with replay disabled
/// (it then fails with an error classed unavailable, see
/// [`Classify`](aeturnis_redis_core::Classify)):
///
/// | operation | replayed? | why |
/// |---|---|---|
/// | `get`, `get_bytes`, `exists`, `ttl`, `mget`, reads of collections | yes | reads |
/// | `set`, `set_if_present`, `set_persistent`, `mset`, `expire` | yes | same value, same TTL |
/// | `delete`, `members_remove`, `zset_remove` | yes | the key is gone either way; the returned flag may read `false` after a replay |
/// | `members_add`, `zset_add`, `leaderboard_add` | yes | adding a member twice is adding it once |
/// | `set_if_absent` | **no** | a replay would report "already there" for our own write |
/// | `incr`, `decr`, `leaderboard_incr`, `zset_incr` | **no** | a replay would count twice |
/// | `list_push_*`, `list_pop_*` | **no** | a replay would push or pop twice |
/// | `delete_matching` | yes (each `SCAN`/`UNLINK`) | deleting twice deletes once; the count stays exact |
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("redis", &self.inner.redis)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache over `redis` with `config` (validated). Registers the
    /// cache's Lua scripts with `redis`, so [`Redis::load_scripts`] preloads
    /// them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting at fault.
    pub fn new(redis: Redis, config: CacheConfig) -> Result<Cache> {
        config.validate()?;
        Ok(Cache::build(redis, config))
    }

    /// A cache over `redis` with the default configuration (registers the
    /// scripts, as [`new`](Self::new) does).
    #[must_use]
    pub fn from_redis(redis: Redis) -> Cache {
        Cache::build(redis, CacheConfig::default())
    }

    fn build(redis: Redis, config: CacheConfig) -> Cache {
        redis.register_scripts(scripts());
        Cache {
            inner: Arc::new(Inner {
                redis,
                config,
                stats: Stats::default(),
            }),
        }
    }

    /// Connects with [`RedisConfig::from_env`] and [`CacheConfig::from_env`].
    ///
    /// # Errors
    /// [`Error::Config`] for a bad variable, or [`Error::Redis`] when the
    /// connection fails.
    pub async fn from_env() -> Result<Cache> {
        let redis_config = RedisConfig::from_env()?;
        let config = CacheConfig::from_env()?;
        let redis = Redis::connect(redis_config).await?;
        Cache::new(redis, config)
    }

    /// The Redis handle underneath.
    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Starts a key under the namespace prefix: `cache.key("user").id(id).part("profile").build()?`.
    pub fn key(&self, namespace: &str) -> KeyBuilder {
        self.inner.redis.keys().key(namespace)
    }

    /// Starts a `SCAN MATCH` pattern under the namespace prefix; user text
    /// is escaped, only [`PatternBuilder::any`] adds a wildcard.
    pub fn pattern(&self, namespace: &str) -> PatternBuilder {
        self.inner.redis.keys().pattern(namespace)
    }

    /// Typed helpers for the schema keys (`user:{id}:profile`, ...).
    #[must_use]
    pub fn schema(&self) -> Schema {
        Schema::new(self.inner.redis.keys().clone())
    }

    /// A snapshot of the in-process statistics.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    /// Sets every in-process counter back to zero.
    pub fn reset_stats(&self) {
        self.inner.stats.reset();
    }

    // ----- helpers shared by the operation modules -----

    #[inline]
    pub(crate) fn client(&self) -> &Client {
        self.inner.redis.client()
    }

    #[inline]
    pub(crate) fn finish<T>(&self, kind: OpKind, started: Instant, result: Result<T>) -> Result<T> {
        self.inner.stats.record(kind, started, result.is_ok());
        result
    }

    #[inline]
    pub(crate) fn count_reads(&self, hits: u64, misses: u64) {
        self.inner.stats.hit(hits);
        self.inner.stats.miss(misses);
    }

    /// Encodes `value` for `key`, refusing values over the size limit.
    #[inline]
    pub(crate) fn encode<T: Serialize + ?Sized>(&self, key: &RedisKey, value: &T) -> Result<Bytes> {
        let bytes = self.inner.redis.codec().encode(key.as_str(), value)?;
        let limit = self.inner.config.max_value_bytes.get();
        if bytes.len() > limit as usize {
            return Err(Error::ValueTooLarge {
                key: key.as_str().to_owned(),
                size: bytes.len(),
                limit,
            });
        }
        Ok(Bytes::from(bytes))
    }

    #[inline]
    pub(crate) fn decode<T: DeserializeOwned>(&self, key: &RedisKey, bytes: &[u8]) -> Result<T> {
        Ok(self.inner.redis.codec().decode(key.as_str(), bytes)?)
    }

    /// The `PX` milliseconds for a write to `key`, jitter included.
    #[inline]
    pub(crate) fn ttl_ms(&self, key: &RedisKey, ttl: Ttl) -> Result<i64> {
        let ms = ttl::resolve_ms(
            key.as_str(),
            ttl,
            self.inner.config.default_ttl,
            self.inner.config.ttl_jitter_percent,
        )?;
        // resolve_ms stays below twice MAX_DURATION, far inside i64
        Ok(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    // ----- single-key operations -----

    /// Reads and decodes `key`; `None` when it does not exist. Counts a hit
    /// or a miss. One `GET`.
    pub async fn get<T: DeserializeOwned>(&self, key: &RedisKey) -> Result<Option<T>> {
        let started = Instant::now();
        let result = match self.get_bytes_inner(key).await {
            Ok(Some(bytes)) => self.decode(key, &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        self.finish(OpKind::Get, started, result)
    }

    /// Reads the stored bytes of `key` undecoded; `None` when it does not
    /// exist. Counts a hit or a miss. One `GET`.
    pub async fn get_bytes(&self, key: &RedisKey) -> Result<Option<Bytes>> {
        let started = Instant::now();
        let result = self.get_bytes_inner(key).await;
        self.finish(OpKind::Get, started, result)
    }

    #[inline]
    async fn get_bytes_inner(&self, key: &RedisKey) -> Result<Option<Bytes>> {
        let bytes: Option<Bytes> = self
            .client()
            .get(key)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e))?;
        match bytes {
            Some(_) => self.inner.stats.hit(1),
            None => self.inner.stats.miss(1),
        }
        Ok(bytes)
    }

    /// Writes `value` at `key` with `ttl` (or the default TTL). One
    /// `SET key value PX ms`.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let started = Instant::now();
        let result = self
            .write(key, value, Some(ttl.into()), None)
            .await
            .map(drop);
        self.finish(OpKind::Set, started, result)
    }

    /// Writes only when `key` does not exist (`SET NX PX`); `true` when it
    /// was written. Sent with replay disabled: after a dropped connection it
    /// fails with a connection error instead of reporting "already there"
    /// for its own write.
    pub async fn set_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<bool> {
        let started = Instant::now();
        let result = async {
            let bytes = self.encode(key, value)?;
            let px = self.ttl_ms(key, ttl.into())?;
            let reply: Value = self
                .inner
                .redis
                .no_replay()
                .set(
                    key,
                    bytes,
                    Some(Expiration::PX(px)),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            Ok(!reply.is_null())
        }
        .await;
        self.finish(OpKind::Set, started, result)
    }

    /// Writes only when `key` exists (`SET XX PX`), replacing its TTL with
    /// `ttl`; `true` when it was written.
    pub async fn set_if_present<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<bool> {
        let started = Instant::now();
        let result = self
            .write(key, value, Some(ttl.into()), Some(SetOptions::XX))
            .await;
        self.finish(OpKind::Set, started, result)
    }

    /// Writes `value` at `key` **without expiry**. The only way to write an
    /// immortal key through this crate; use it for data that must outlive
    /// every cache policy, and delete it yourself.
    pub async fn set_persistent<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
    ) -> Result<()> {
        let started = Instant::now();
        let result = self.write(key, value, None, None).await.map(drop);
        self.finish(OpKind::Set, started, result)
    }

    #[inline]
    async fn write<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        ttl: Option<Ttl>,
        condition: Option<SetOptions>,
    ) -> Result<bool> {
        let bytes = self.encode(key, value)?;
        let expiration = match ttl {
            Some(ttl) => Some(Expiration::PX(self.ttl_ms(key, ttl)?)),
            None => None,
        };
        let reply: Value = self
            .client()
            .set(key, bytes, expiration, condition, false)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e))?;
        Ok(!reply.is_null())
    }

    /// Deletes `key` (`UNLINK`: the memory is freed in the background);
    /// `true` when it existed.
    pub async fn delete(&self, key: &RedisKey) -> Result<bool> {
        let started = Instant::now();
        let result = self
            .client()
            .unlink::<u64, _>(key)
            .await
            .map(|n| n > 0)
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::Delete, started, result)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &RedisKey) -> Result<bool> {
        let started = Instant::now();
        let result = self
            .client()
            .exists::<u64, _>(key)
            .await
            .map(|n| n > 0)
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::Exists, started, result)
    }

    /// The remaining TTL of `key` (`PTTL`).
    pub async fn ttl(&self, key: &RedisKey) -> Result<KeyTtl> {
        let started = Instant::now();
        let result = self
            .client()
            .pttl::<i64, _>(key)
            .await
            .map(KeyTtl::from_pttl)
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::Ttl, started, result)
    }

    /// Sets the TTL of an existing `key` (`PEXPIRE`); `false` when the key
    /// does not exist.
    pub async fn expire(&self, key: &RedisKey, ttl: impl Into<Ttl>) -> Result<bool> {
        let started = Instant::now();
        let result = async {
            let ms = self.ttl_ms(key, ttl.into())?;
            self.client()
                .pexpire::<bool, _>(key, ms, None)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))
        }
        .await;
        self.finish(OpKind::Ttl, started, result)
    }
}
