//! [`CacheAside::write_through`]: write the source of truth, then the cache.
//!
//! The order is fixed: the writer first. Its error returns at once and the
//! cache is not touched. Then the cache step ([`WriteMode`]): store the new
//! value as a fresh entry, or remove the key. The cache step is retried
//! with backoff (3 attempts, 25/50/100 ms). If it still fails, a background
//! task keeps trying to remove the key, with the same backoff doubling up
//! to 1 s, until it succeeds or the policy's hard TTL has passed: so no
//! reader is served the old value for longer than the time Redis stays
//! unreachable, and never longer than the hard TTL (when the old entry
//! expires by itself). The call then answers [`WriteOutcome::CachePending`].
//!
//! A new entry carries a fresh token, so a load that started before the
//! write (and read the old row) cannot store its value over it. Two
//! concurrent `write_through`s of one key store in the order their cache
//! steps reach Redis, which may differ from the order their writers
//! reached the source; where writers of one key race, use
//! [`WriteMode::Invalidate`] (the next read loads the source's value) or
//! hold a lock around the pair.

use std::error::Error as StdError;
use std::future::Future;
use std::time::{Duration, Instant};

use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::fred::types::Expiration;
use aeturnis_redis_core::RedisKey;

use crate::cache_aside::{CacheAside, Cacheable};
use crate::envelope;
use crate::error::{Error, Result};
use crate::policy::Policy;

/// What the cache step of a write-through does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Store the written value as a fresh entry (the next read is a hit).
    #[default]
    Set,
    /// Remove the key (the next read loads from the source).
    Invalidate,
}

/// How a write-through ended once the source accepted the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The cache step succeeded.
    Cached,
    /// The cache step failed after its retries; a background task keeps
    /// removing the key (see the [module docs](self)).
    CachePending,
}

/// Attempts of the cache step before it is left to the background task.
const ATTEMPTS: u32 = 3;
/// First backoff of the cache step.
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// Longest backoff of the background removal.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl<T: Cacheable> CacheAside<T> {
    /// Runs `writer` (the source of truth's write), then the cache step per
    /// `mode`. See the [module docs](self) for the order and the bound on
    /// staleness when Redis fails.
    ///
    /// # Errors
    /// [`Error::Load`] with the writer's error as the source (the cache is
    /// untouched); an encoding error for `value`.
    pub async fn write_through<W, E>(
        &self,
        key: &RedisKey,
        value: &T,
        policy: &Policy,
        mode: WriteMode,
        writer: W,
    ) -> Result<WriteOutcome>
    where
        W: Future<Output = std::result::Result<(), E>>,
        E: StdError + Send + Sync + 'static,
    {
        writer.await.map_err(|e| Error::load(key.as_str(), e))?;
        let redis = self.redis().clone();
        let ttl = policy.settings().ttl;
        let entry = match mode {
            WriteMode::Set => {
                let encoded = redis.codec().encode(key.as_str(), value)?;
                let now = self.clock().now_ms().await.ok();
                now.map(|now| {
                    let soft = policy.settings().soft_ttl.unwrap_or(ttl);
                    Bytes::from(envelope::entry(
                        envelope::new_token(),
                        now.saturating_add(ceil_millis(soft)),
                        now.saturating_add(ceil_millis(ttl)),
                        0,
                        Some(&encoded),
                    ))
                })
            }
            WriteMode::Invalidate => None,
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let step = match &entry {
                Some(bytes) => redis
                    .client()
                    .set::<(), _, _>(
                        key,
                        bytes.clone(),
                        Some(Expiration::PX(
                            i64::try_from(ceil_millis(ttl)).unwrap_or(i64::MAX),
                        )),
                        None,
                        false,
                    )
                    .await
                    .map(drop),
                None => redis.client().unlink::<u64, _>(key).await.map(drop),
            };
            match step {
                Ok(()) => return Ok(WriteOutcome::Cached),
                Err(e) if attempt < ATTEMPTS => {
                    tracing::debug!(key = %key, error = %e, attempt, "write-through cache step failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "write-through cache step failed; removing the key in the background");
                }
            }
        }
        let key = key.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + ttl;
            let mut backoff = FIRST_BACKOFF;
            while Instant::now() < deadline {
                if redis.client().unlink::<u64, _>(&key).await.is_ok() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        Ok(WriteOutcome::CachePending)
    }
}
