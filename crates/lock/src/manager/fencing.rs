//! Fenced writes: a compare-and-set record beside the lock that keeps the
//! highest accepted fencing token.

use aeturnis_redis_core::fred::interfaces::HashesInterface;
use aeturnis_redis_core::fred::types::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::LockManager;
use crate::error::{Error, Result};
use crate::scripts;
use crate::token::FencingToken;

/// A fenced write was refused: a holder with a newer fencing token has
/// already written, or (`current == offered`) another holder with the
/// same fence, which only a split brain (two primaries each issuing from
/// the same replicated counter) or a fence built by hand can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleFence {
    /// The token that was refused.
    pub offered: FencingToken,
    /// The newest token accepted so far.
    pub current: FencingToken,
}

impl LockManager {
    /// Writes `value` for `resource` unless a newer fencing token has
    /// already written: one compare-and-set script that keeps the highest
    /// accepted token and the holder it was issued to. Writing again with
    /// the same fence is accepted only from the same holder (so a replay of
    /// this call, which fred re-sends after a reconnect, is harmless); an
    /// equal fence from another holder is refused, as is one built with
    /// [`FencingToken::new`], which names no holder. Returns
    /// `Ok(Err(StaleFence))` on refusal.
    ///
    /// `fence` comes from [`LockGuard::fence`](crate::LockGuard::fence) or
    /// [`LockContext::fence`](crate::LockContext::fence), which issue it on
    /// demand while the lock is held.
    ///
    /// The record lives beside the lock (same hash slot) with
    /// [`LockConfig::fence_ttl`](crate::LockConfig::fence_ttl).
    ///
    /// # Errors
    /// Bad resource, encoding, or Redis.
    pub async fn fenced_write<T: Serialize + ?Sized>(
        &self,
        resource: &str,
        fence: FencingToken,
        value: &T,
    ) -> Result<std::result::Result<(), StaleFence>> {
        let keys = self.keys(resource)?;
        if fence.get() == 0 {
            return Err(Error::Unfenced {
                resource: keys.resource.clone(),
            });
        }
        let bytes = self.inner.redis.codec().encode(&keys.fenced(), value)?;
        let outcome = scripts::fenced_write(
            &self.inner.redis,
            keys.fenced(),
            keys.state(),
            fence.get(),
            &fence.holder_text(),
            bytes,
            self.inner.fence_ttl_ms,
        )
        .await?;
        Ok(outcome.map(drop).map_err(|last| StaleFence {
            offered: fence,
            current: FencingToken::new(last),
        }))
    }

    /// Reads the last accepted fenced write: its token and value.
    ///
    /// # Errors
    /// Bad resource, decoding, or Redis.
    pub async fn fenced_read<T: DeserializeOwned>(
        &self,
        resource: &str,
    ) -> Result<Option<(FencingToken, T)>> {
        let keys = self.keys(resource)?;
        let (fence, value): (Option<u64>, Option<Value>) = self
            .inner
            .redis
            .client()
            .hmget(keys.fenced(), vec!["f", "v"])
            .await
            .map_err(aeturnis_redis_core::Error::from)?;
        let (Some(fence), Some(value)) = (fence, value) else {
            return Ok(None);
        };
        let bytes = value.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let value = self.inner.redis.codec().decode(&keys.fenced(), &bytes)?;
        Ok(Some((FencingToken::new(fence), value)))
    }
}
