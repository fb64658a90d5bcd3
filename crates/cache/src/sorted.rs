//! Sorted sets with text members, and the leaderboard helpers on top.
//!
//! Additions set the key's TTL in the same atomic script, like the other
//! collections. Leaderboards rank the highest score first; ties are ordered
//! by member, reverse-lexicographically (Redis `ZREVRANK` order).

use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Instant;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{LuaScript, RedisKey};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::stats::OpKind;
use crate::ttl::Ttl;
use crate::write_ttl::Replay;

/// One leaderboard row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct RankedEntry {
    /// Place on the board: 1 is the highest score.
    pub rank: u64,
    /// The member.
    pub member: String,
    /// Its score.
    pub score: f64,
}

/// `ZREVRANK` of `ARGV[1]`, then the `ARGV[2]` entries on either side with
/// their scores, in one atomic call: `{first zero-based rank, {m, s, ...}}`
/// or nil when the member is not on the board.
pub(crate) static AROUND: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "cache_leaderboard_around",
        r"local r = redis.call('ZREVRANK', KEYS[1], ARGV[1])
if not r then return false end
local radius = tonumber(ARGV[2])
local first = r - radius
if first < 0 then first = 0 end
return {first, redis.call('ZREVRANGE', KEYS[1], first, r + radius, 'WITHSCORES')}",
    )
});

/// `ZINCRBY` that refuses a non-finite result, then `PEXPIRE`, in one
/// atomic call. `KEYS[1]` the sorted set, `ARGV[1]` the TTL in ms,
/// `ARGV[2]` the increment, `ARGV[3]` the member. The new score is computed
/// from `ZSCORE` first (the same IEEE addition `ZINCRBY` does); when it is
/// not finite (`inf`, `-inf`, `nan`) the script returns `false` having
/// written nothing. Otherwise it returns `ZINCRBY`'s reply (the new score).
/// Lua's numbers are the same doubles Redis keeps, and Redis prints scores
/// with 17 significant digits, so reading the old score loses nothing.
pub(crate) static INCR_SCORE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "cache_zset_incr",
        r"local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[3]) or '0')
local new = old + tonumber(ARGV[2])
if new ~= new or new == math.huge or new == -math.huge then return false end
local score = redis.call('ZINCRBY', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return score",
    )
});

fn check_score(key: &RedisKey, score: f64) -> Result<()> {
    if score.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            key: key.as_str().to_owned(),
            reason: "a score must be a finite number",
        })
    }
}

fn parse_score(key: &RedisKey, v: &Value) -> Result<f64> {
    v.as_f64().ok_or_else(|| {
        Error::unexpected(format!(
            "score at `{}` is not a number: {v:?}",
            key.as_str()
        ))
    })
}

/// Parses a `WITHSCORES` reply: flat `[m, s, m, s]` (RESP2, Lua) or pairs
/// `[[m, s], ...]` (RESP3), into rows ranked from `first_rank` (1-based).
fn parse_ranked(key: &RedisKey, reply: Vec<Value>, first_rank: u64) -> Result<Vec<RankedEntry>> {
    let mut pairs: Vec<(Value, Value)> = Vec::with_capacity(reply.len() / 2);
    let mut it = reply.into_iter().peekable();
    while let Some(v) = it.next() {
        match v {
            Value::Array(pair) if pair.len() == 2 => {
                let mut p = pair.into_iter();
                if let (Some(m), Some(s)) = (p.next(), p.next()) {
                    pairs.push((m, s));
                }
            }
            member => {
                let score = it
                    .next()
                    .ok_or_else(|| Error::unexpected("odd WITHSCORES reply"))?;
                pairs.push((member, score));
            }
        }
    }
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, (m, s))| {
            Ok(RankedEntry {
                rank: first_rank + i as u64,
                member: m.into_string().ok_or_else(|| {
                    Error::unexpected(format!("member at `{}` is not text", key.as_str()))
                })?,
                score: parse_score(key, &s)?,
            })
        })
        .collect()
}

impl Cache {
    /// Sets the scores of `entries` (member, score) in the sorted set at
    /// `key` (`ZADD`) and its TTL, atomically; returns how many members were
    /// new. Safe to replay (the same scores are set again).
    pub async fn zset_add(
        &self,
        key: &RedisKey,
        entries: &[(&str, f64)],
        ttl: impl Into<Ttl>,
    ) -> Result<u64> {
        let started = Instant::now();
        let result = async {
            let mut args = Vec::with_capacity(entries.len() * 2);
            for &(member, score) in entries {
                check_score(key, score)?;
                args.push(Value::Double(score));
                args.push(Value::from(member));
            }
            let (added, _) = self
                .write_with_ttl(key, "ZADD", args, ttl.into(), Replay::Safe)
                .await?;
            Ok(added.unsigned_abs())
        }
        .await;
        self.finish(OpKind::SortedSet, started, result)
    }

    /// Adds `by` to the score of `member` (created at 0) and sets the TTL,
    /// atomically; returns the new score. Sent with replay disabled (a
    /// replay would add twice). One script: `ZSCORE`, the check, `ZINCRBY`,
    /// `PEXPIRE`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `by` is not finite (nothing is
    /// sent); [`Error::NotFinite`] when the new score would not be finite
    /// (`f64::MAX` added to `f64::MAX`): checked on the server in the same
    /// atomic call, so nothing is stored and the TTL is unchanged.
    pub async fn zset_incr(
        &self,
        key: &RedisKey,
        member: &str,
        by: f64,
        ttl: impl Into<Ttl>,
    ) -> Result<f64> {
        let started = Instant::now();
        let result = async {
            check_score(key, by)?;
            let ms = self.ttl_ms(key, ttl.into())?;
            let score: Value = self
                .redis()
                .script_no_replay(
                    &INCR_SCORE,
                    key,
                    vec![Value::from(ms), Value::Double(by), Value::from(member)],
                )
                .await
                .map_err(|e| Error::from_core(key.as_str(), e))?;
            if score.is_null() {
                return Err(Error::NotFinite {
                    key: key.as_str().to_owned(),
                    member: member.to_owned(),
                });
            }
            parse_score(key, &score)
        }
        .await;
        self.finish(OpKind::SortedSet, started, result)
    }

    /// The score of `member`, if it is in the sorted set.
    pub async fn zset_score(&self, key: &RedisKey, member: &str) -> Result<Option<f64>> {
        let started = Instant::now();
        let result = self
            .client()
            .zscore::<Option<f64>, _, _>(key, member)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::SortedSet, started, result)
    }

    /// Removes `members`; returns how many were there.
    pub async fn zset_remove(&self, key: &RedisKey, members: &[&str]) -> Result<u64> {
        let started = Instant::now();
        let result = async {
            if members.is_empty() {
                return Ok(0);
            }
            let args: Vec<Value> = members.iter().map(|m| Value::from(*m)).collect();
            self.client()
                .zrem::<u64, _, _>(key, args)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))
        }
        .await;
        self.finish(OpKind::SortedSet, started, result)
    }

    /// The number of members (0 when the key does not exist).
    pub async fn zset_len(&self, key: &RedisKey) -> Result<u64> {
        let started = Instant::now();
        let result = self
            .client()
            .zcard::<u64, _>(key)
            .await
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::SortedSet, started, result)
    }

    // ----- leaderboard helpers -----

    /// Puts `member` on the leaderboard with `score` (replacing its score).
    /// See [`zset_add`](Self::zset_add).
    pub async fn leaderboard_add(
        &self,
        key: &RedisKey,
        member: &str,
        score: f64,
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        self.zset_add(key, &[(member, score)], ttl).await.map(drop)
    }

    /// Adds `by` to `member`'s score; returns the new score. See
    /// [`zset_incr`](Self::zset_incr) (not replayed).
    pub async fn leaderboard_incr(
        &self,
        key: &RedisKey,
        member: &str,
        by: f64,
        ttl: impl Into<Ttl>,
    ) -> Result<f64> {
        self.zset_incr(key, member, by, ttl).await
    }

    /// The best `n` entries, highest score first, with their ranks (1-based).
    /// One `ZRANGE ... REV WITHSCORES`.
    pub async fn leaderboard_top(&self, key: &RedisKey, n: NonZeroU32) -> Result<Vec<RankedEntry>> {
        let started = Instant::now();
        let result = async {
            let reply: Vec<Value> = self
                .client()
                .zrange(key, 0, i64::from(n.get()) - 1, None, true, None, true)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            parse_ranked(key, reply, 1)
        }
        .await;
        self.finish(OpKind::SortedSet, started, result)
    }

    /// `member`'s place on the board (1 = highest score), or `None` when it
    /// is not on it. One `ZREVRANK`.
    pub async fn leaderboard_rank(&self, key: &RedisKey, member: &str) -> Result<Option<u64>> {
        let started = Instant::now();
        let result = self
            .client()
            .zrevrank::<Option<u64>, _, _>(key, member, false)
            .await
            .map(|r| r.map(|r| r + 1))
            .map_err(|e| Error::from_fred(key.as_str(), e));
        self.finish(OpKind::SortedSet, started, result)
    }

    /// The page of the board around `member`: up to `radius` entries above
    /// it, the member itself and up to `radius` below, with ranks; `None`
    /// when the member is not on the board. One atomic script, so the page
    /// is consistent with the member's rank.
    pub async fn leaderboard_around(
        &self,
        key: &RedisKey,
        member: &str,
        radius: u32,
    ) -> Result<Option<Vec<RankedEntry>>> {
        let started = Instant::now();
        let result = async {
            let reply: Value = self
                .redis()
                .script(
                    &AROUND,
                    key,
                    vec![Value::from(member), Value::from(i64::from(radius))],
                )
                .await
                .map_err(|e| Error::from_core(key.as_str(), e))?;
            if reply.is_null() {
                return Ok(None);
            }
            let mut parts = reply.into_array().into_iter();
            let first = parts.next().and_then(|v| v.as_i64()).unwrap_or(0);
            let entries = parts.next().map(Value::into_array).unwrap_or_default();
            parse_ranked(key, entries, first.unsigned_abs() + 1).map(Some)
        }
        .await;
        self.finish(OpKind::SortedSet, started, result)
    }
}
