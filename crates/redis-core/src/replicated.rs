//! Opt-in write concern: writes acknowledged only once `n` replicas hold
//! them (`WAIT` on the connection that sent them).

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::time::Duration;

use fred::clients::{Client, Pipeline, WithOptions};
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand, Value};

use crate::client::Redis;
use crate::config::ConfigError;
use crate::duration::{ceil_millis, checked_millis};
use crate::error::{Error, Result};
use crate::keys::{hash_slot, RedisKey};

/// How many replicas must hold a write before it counts as acknowledged,
/// and how long to wait for them (`WAIT replicas timeout`). See
/// [`Redis::replicated`] and the guide's "Failover" section.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use aeturnis_redis_core::WriteConcern;
///
/// let concern = WriteConcern::new(NonZeroU32::MIN, Duration::from_millis(500))?;
/// assert_eq!(concern.replicas().get(), 1);
/// assert!(WriteConcern::new(NonZeroU32::MIN, Duration::ZERO).is_err());
/// # Ok::<(), aeturnis_redis_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteConcern {
    replicas: NonZeroU32,
    timeout: Duration,
}

impl WriteConcern {
    /// `replicas` must acknowledge within `timeout`. A zero timeout is
    /// refused (Redis reads `WAIT n 0` as "wait forever"), and so is one
    /// above [`MAX_DURATION`](crate::duration::MAX_DURATION).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a zero or too long timeout.
    pub fn new(replicas: NonZeroU32, timeout: Duration) -> Result<Self, ConfigError> {
        checked_millis(timeout).map_err(|e| ConfigError::duration("write concern timeout", e))?;
        Ok(WriteConcern { replicas, timeout })
    }

    /// How many replicas must acknowledge.
    #[must_use]
    pub fn replicas(&self) -> NonZeroU32 {
        self.replicas
    }

    /// How long `WAIT` blocks for them.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A batch of writes sent with a [`WriteConcern`]: queue commands on it as
/// on a fred [`Pipeline`] (it dereferences to one), then
/// [`send`](Replicated::send). Built by [`Redis::replicated`].
pub struct Replicated {
    pipeline: Pipeline<WithOptions<Client>>,
    concern: WriteConcern,
    slot: u16,
}

impl fmt::Debug for Replicated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicated")
            .field("concern", &self.concern)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Deref for Replicated {
    type Target = Pipeline<WithOptions<Client>>;

    fn deref(&self) -> &Self::Target {
        &self.pipeline
    }
}

impl Replicated {
    /// Sends the queued writes and `WAIT` in one pipeline on one connection,
    /// with replay disabled, and returns the writes' replies in order.
    ///
    /// # Errors
    /// [`Error::NotReplicated`] when fewer replicas than the concern asks
    /// acknowledged within its timeout (the writes were applied on the
    /// primary and may still reach the replicas); [`Error::Redis`] when a
    /// write failed or the connection dropped (a connection error: the
    /// writes may or may not have been applied, and nothing was re-sent).
    pub async fn send(self) -> Result<Vec<Value>> {
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(self.slot), true);
        let _: () = self
            .pipeline
            .custom(
                wait,
                vec![
                    Value::Integer(i64::from(self.concern.replicas.get())),
                    Value::Integer(
                        i64::try_from(ceil_millis(self.concern.timeout)).unwrap_or(i64::MAX),
                    ),
                ],
            )
            .await?;
        let mut replies: Vec<Value> = self.pipeline.all().await?;
        let acked = match replies.pop() {
            Some(Value::Integer(n)) => u32::try_from(n).unwrap_or(0),
            other => return Err(Error::UnexpectedReply(format!("WAIT answered {other:?}"))),
        };
        let wanted = self.concern.replicas.get();
        if acked < wanted {
            return Err(Error::NotReplicated { acked, wanted });
        }
        Ok(replies)
    }
}

impl Redis {
    /// A batch of writes that counts as acknowledged only once
    /// `concern.replicas()` replicas hold it: the writes and a `WAIT` go in
    /// one pipeline on one connection (`WAIT` covers the writes of its own
    /// connection only), with replay disabled. A failover that promotes
    /// one of those replicas keeps every write [`send`](Replicated::send)
    /// acknowledged.
    ///
    /// `key` names the slot: in a cluster the `WAIT` goes to the primary
    /// of `key`'s slot, so every key the batch writes must share that slot
    /// (a hash tag); a write to another slot is not covered. Elsewhere it
    /// only documents the batch.
    ///
    /// The cost is one replica round trip per batch, during which the
    /// connection (shared by every caller of this client) serves nothing
    /// else: use it for the writes that must survive a failover, batch
    /// them, and give the handle a pool
    /// ([`RedisConfig::pool_size`](crate::RedisConfig::pool_size)).
    ///
    /// ```no_run
    /// # async fn demo(redis: aeturnis_redis_core::Redis) -> aeturnis_redis_core::Result<()> {
    /// use std::num::NonZeroU32;
    /// use std::time::Duration;
    /// use aeturnis_redis_core::prelude::*;
    /// use aeturnis_redis_core::WriteConcern;
    ///
    /// let concern = WriteConcern::new(NonZeroU32::MIN, Duration::from_millis(500))?;
    /// let key = redis.keys().key("order").id("42").build()?;
    /// let batch = redis.replicated(concern, &key)?;
    /// let _: () = batch.set(key.as_str(), "paid", None, None, false).await?;
    /// batch.send().await?; // on the primary and on one replica
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Shutdown`] or [`Error::Disconnected`] as
    /// [`ensure_connected`](Self::ensure_connected);
    /// [`Error::Config`] when the concern's timeout is not below the
    /// command timeout (fred would time the `WAIT` out first).
    pub fn replicated(&self, concern: WriteConcern, key: &RedisKey) -> Result<Replicated> {
        self.ensure_connected()?;
        let command_timeout = self.config().command_timeout;
        if !command_timeout.is_zero() && concern.timeout >= command_timeout {
            return Err(ConfigError::invalid(
                "write concern timeout",
                format!(
                    "{:?} must be below the command timeout ({command_timeout:?})",
                    concern.timeout
                ),
            )
            .into());
        }
        Ok(Replicated {
            pipeline: Pipeline::from(self.no_replay()),
            concern,
            slot: hash_slot(key.as_str()),
        })
    }
}
