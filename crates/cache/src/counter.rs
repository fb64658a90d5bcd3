//! Counters: `INCRBY` and the TTL in one script, so a counter is never left
//! without expiry.

use std::sync::LazyLock;
use std::time::Instant;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{LuaScript, RedisKey};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::stats::OpKind;
use crate::ttl::Ttl;

/// `INCRBY`, then `PEXPIRE` only when the key has no TTL (`PTTL == -1`):
/// a new counter gets the TTL, an existing one keeps its window, and a
/// counter some other client left immortal is given one.
pub(crate) static INCR: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "cache_incr",
        r"local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v",
    )
});

impl Cache {
    /// Adds `by` to the counter at `key` (created at 0) and returns the new
    /// value. On creation the counter gets `ttl` (or the default TTL); later
    /// increments keep the existing expiry, so the window does not slide.
    /// One script (`INCRBY` + `PEXPIRE` when no TTL is set), atomic.
    ///
    /// Sent with replay disabled: when the connection drops while the call
    /// is in flight it fails with a connection error (classed unavailable)
    /// instead of possibly counting twice. The
    /// increment may or may not have happened; read the counter to find out.
    ///
    /// A key holding something other than an integer, or an increment that
    /// would overflow, gives [`Error::NotACounter`].
    pub async fn incr(&self, key: &RedisKey, by: i64, ttl: impl Into<Ttl>) -> Result<i64> {
        let started = Instant::now();
        let result = async {
            let ms = self.ttl_ms(key, ttl.into())?;
            self.redis()
                .script_no_replay::<i64, _, _>(&INCR, key, vec![Value::from(by), Value::from(ms)])
                .await
                .map_err(|e| Error::from_core(key.as_str(), e))
        }
        .await;
        self.finish(OpKind::Counter, started, result)
    }

    /// Subtracts `by` from the counter at `key`; see [`incr`](Self::incr).
    pub async fn decr(&self, key: &RedisKey, by: i64, ttl: impl Into<Ttl>) -> Result<i64> {
        let negated = by.checked_neg().ok_or_else(|| Error::InvalidArgument {
            key: key.as_str().to_owned(),
            reason: "decrement is i64::MIN, which cannot be negated",
        })?;
        self.incr(key, negated, ttl).await
    }

    /// Reads the counter at `key` (`None` when it does not exist). Counters
    /// are stored as Redis integers, not through the codec; read them with
    /// this method rather than [`get`](Self::get).
    pub async fn counter(&self, key: &RedisKey) -> Result<Option<i64>> {
        let started = Instant::now();
        let result = async {
            let raw: Option<String> = self
                .client()
                .get(key)
                .await
                .map_err(|e| Error::from_fred(key.as_str(), e))?;
            match raw {
                None => {
                    self.count_reads(0, 1);
                    Ok(None)
                }
                Some(text) => {
                    self.count_reads(1, 0);
                    text.parse::<i64>()
                        .map(Some)
                        .map_err(|_| Error::NotACounter {
                            key: key.as_str().to_owned(),
                        })
                }
            }
        }
        .await;
        self.finish(OpKind::Get, started, result)
    }
}
