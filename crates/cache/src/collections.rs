//! Sets and lists of typed values (members encoded with the codec).
//!
//! **Naming.** Each collection's methods share a prefix naming the
//! collection, so they read apart from the single-key operations and sort
//! together: `list_*` for lists, `zset_*` (and `leaderboard_*`) for sorted
//! sets, and `members_*` for Redis sets. A Redis set is *not* `set_*`: that
//! would read like [`Cache::set`] (writing a value), so
//! `cache.set_add(..)` became [`members_add`](Cache::members_add):
//!
//! | Redis | method |
//! |---|---|
//! | `SADD` + `PEXPIRE` | [`members_add`](Cache::members_add) |
//! | `SREM` | [`members_remove`](Cache::members_remove) |
//! | `SMEMBERS` | [`members`](Cache::members) |
//! | `SISMEMBER` | [`members_contains`](Cache::members_contains) |
//! | `SCARD` | [`members_len`](Cache::members_len) |
//!
//! Every write that can create the collection sets its TTL in the same
//! atomic script (`SADD`/`RPUSH`/`LPUSH` + `PEXPIRE`), so the collection
//! lives for the TTL after its last addition. Removals keep the TTL as it
//! is. Encoding is deterministic for the same value of the same type, so a
//! member added as `T` is found again as `T` (beware of `HashMap`s inside
//! members: their field order is not stable; use `BTreeMap`).

use std::time::Instant;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::RedisKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::stats::OpKind;
use crate::ttl::Ttl;
use crate::write_ttl::Replay;

impl Cache {
    fn encode_all<T: Serialize>(&self, key: &RedisKey, members: &[T]) -> Result<Vec<Value>> {
        members
            .iter()
            .map(|m| self.encode(key, m).map(Value::Bytes))
            .collect()
    }

    fn decode_all<T: DeserializeOwned>(&self, key: &RedisKey, raw: &[Bytes]) -> Result<Vec<T>> {
        raw.iter().map(|b| self.decode(key, b)).collect()
    }

    // ----- sets: members_* -----

    /// Adds `members` to the set at `key` and sets its TTL, atomically;
    /// returns how many were new. Safe to replay.
    pub async fn members_add<T: Serialize>(
        &self,
        key: &RedisKey,
        members: &[T],
        ttl: impl Into<Ttl>,
    ) -> Result<u64> {
        let started = Instant::now();
        let result = async {
            let args = self.encode_all(key, members)?;
            let (added, _) = self
                .write_with_ttl(key, "SADD", args, ttl.into(), Replay::Safe)
                .await?;
            Ok(added.unsigned_abs())
        }
        .await;
        self.finish(OpKind::Collection, started, result)
    }

    /// Removes `members` from the set at `key`; returns how many were there.
    pub async fn members_remove<T: Serialize>(&self, key: &RedisKey, members: &[T]) -> Result<u64> {
        let started = Instant::now();
        let result = async {
            let args = self.encode_all(key, members)?;
            if args.is_empty() {
                return Ok(0);
            }
            self.client()
                .srem::<u64, _, _>(key, args)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))
        }
        .await;
        self.finish(OpKind::Collection, started, result)
    }

    /// Every member of the set at `key` (empty when it does not exist), in
    /// no particular order. One `SMEMBERS`: for large sets prefer smaller
    /// keys, this reads the whole set.
    pub async fn members<T: DeserializeOwned>(&self, key: &RedisKey) -> Result<Vec<T>> {
        let started = Instant::now();
        let result = async {
            let raw: Vec<Bytes> = self
                .client()
                .smembers(key)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            self.decode_all(key, &raw)
        }
        .await;
        self.finish(OpKind::Collection, started, result)
    }

    /// Whether `member` is in the set at `key`.
    pub async fn members_contains<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        member: &T,
    ) -> Result<bool> {
        let started = Instant::now();
        let result = async {
            let m = self.encode(key, member)?;
            self.client()
                .sismember::<bool, _, _>(key, m)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))
        }
        .await;
        self.finish(OpKind::Collection, started, result)
    }

    /// The number of members of the set at `key` (0 when it does not exist).
    pub async fn members_len(&self, key: &RedisKey) -> Result<u64> {
        let started = Instant::now();
        let result = self
            .client()
            .scard::<u64, _>(key)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::Collection, started, result)
    }

    // ----- lists -----

    /// Appends `values` to the list at `key` (`RPUSH`) and sets its TTL,
    /// atomically; returns the new length. Sent with replay disabled (a
    /// replay would append twice).
    pub async fn list_push_back<T: Serialize>(
        &self,
        key: &RedisKey,
        values: &[T],
        ttl: impl Into<Ttl>,
    ) -> Result<u64> {
        self.list_push(key, "RPUSH", values, ttl.into()).await
    }

    /// Prepends `values` to the list at `key` (`LPUSH`: the last value ends
    /// up first) and sets its TTL, atomically; returns the new length. Sent
    /// with replay disabled.
    pub async fn list_push_front<T: Serialize>(
        &self,
        key: &RedisKey,
        values: &[T],
        ttl: impl Into<Ttl>,
    ) -> Result<u64> {
        self.list_push(key, "LPUSH", values, ttl.into()).await
    }

    async fn list_push<T: Serialize>(
        &self,
        key: &RedisKey,
        command: &'static str,
        values: &[T],
        ttl: Ttl,
    ) -> Result<u64> {
        let started = Instant::now();
        let result = async {
            let args = self.encode_all(key, values)?;
            let (_, len) = self
                .write_with_ttl(key, command, args, ttl, Replay::Forbidden)
                .await?;
            Ok(len.as_i64().unwrap_or(0).unsigned_abs())
        }
        .await;
        self.finish(OpKind::List, started, result)
    }

    /// Removes and returns the first element of the list at `key`. Sent with
    /// replay disabled (a replay would pop twice).
    pub async fn list_pop_front<T: DeserializeOwned>(&self, key: &RedisKey) -> Result<Option<T>> {
        let started = Instant::now();
        let result = async {
            let raw: Option<Bytes> = self
                .redis()
                .no_replay()
                .lpop(key, None)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            raw.map(|b| self.decode(key, &b)).transpose()
        }
        .await;
        self.finish(OpKind::List, started, result)
    }

    /// Removes and returns the last element of the list at `key`. Sent with
    /// replay disabled.
    pub async fn list_pop_back<T: DeserializeOwned>(&self, key: &RedisKey) -> Result<Option<T>> {
        let started = Instant::now();
        let result = async {
            let raw: Option<Bytes> = self
                .redis()
                .no_replay()
                .rpop(key, None)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            raw.map(|b| self.decode(key, &b)).transpose()
        }
        .await;
        self.finish(OpKind::List, started, result)
    }

    /// Elements `start..=stop` of the list at `key` (`LRANGE`; negative
    /// indices count from the end, `0, -1` is the whole list).
    pub async fn list_range<T: DeserializeOwned>(
        &self,
        key: &RedisKey,
        start: i64,
        stop: i64,
    ) -> Result<Vec<T>> {
        let started = Instant::now();
        let result = async {
            let raw: Vec<Bytes> = self
                .client()
                .lrange(key, start, stop)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            self.decode_all(key, &raw)
        }
        .await;
        self.finish(OpKind::List, started, result)
    }

    /// The length of the list at `key` (0 when it does not exist).
    pub async fn list_len(&self, key: &RedisKey) -> Result<u64> {
        let started = Instant::now();
        let result = self
            .client()
            .llen::<u64, _>(key)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::List, started, result)
    }

    /// Keeps only elements `start..=stop` of the list at `key` (`LTRIM`),
    /// for capped lists such as "last 100 events". Safe to replay.
    pub async fn list_trim(&self, key: &RedisKey, start: i64, stop: i64) -> Result<()> {
        let started = Instant::now();
        let result = self
            .client()
            .ltrim::<(), _>(key, start, stop)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::List, started, result)
    }
}
