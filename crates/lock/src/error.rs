//! The lock error type.

use std::time::Duration;

use aeturnis_redis_core::{Classify, ConfigError, ErrorClass, KeyError};

/// Result alias used across `aeturnis-lock`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong taking, keeping or giving back a lock.
///
/// A refusal carries data: [`Contended`](Error::Contended) and
/// [`Timeout`](Error::Timeout) say how long the current holder still has
/// ([`Classify::retry_after`]), so a caller (or an HTTP layer) can
/// wait exactly that long.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis failed (connection, timeout, server error).
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// The resource name cannot name a lock (empty, too long, or a
    /// character a key cannot hold).
    #[error("invalid lock resource: {0}")]
    Key(#[from] KeyError),
    /// The TTL is zero, too large, or too short for the clock-drift margin.
    #[error("invalid lock TTL {ttl:?}: {reason}")]
    InvalidTtl {
        /// The TTL given.
        ttl: Duration,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A configuration value is out of range; the error names the setting
    /// (such as `LOCK_BACKOFF_MIN_MS` or `fence_ttl`).
    #[error("invalid lock configuration: {0}")]
    Config(#[from] ConfigError),
    /// Redlock was given masters that cannot form a safe majority (fewer
    /// than 3, an even count) or that do not share one key prefix.
    #[error("invalid Redlock masters ({masters} given): {reason}")]
    InvalidMasters {
        /// How many masters were given.
        masters: usize,
        /// Why that is refused.
        reason: &'static str,
    },
    /// One attempt found the lock held by someone else.
    #[error("lock `{resource}` is held by another owner; it expires in at most {retry_after:?}")]
    Contended {
        /// The resource.
        resource: String,
        /// Time left on the holder's lease (an upper bound on the wait,
        /// unless the holder extends it).
        retry_after: Duration,
    },
    /// [`acquire`](crate::LockManager::acquire) waited its whole timeout.
    #[error("lock `{resource}` not acquired within {waited:?}")]
    Timeout {
        /// The resource.
        resource: String,
        /// How long the caller waited.
        waited: Duration,
        /// Time left on the holder's lease when the last attempt failed.
        retry_after: Duration,
    },
    /// The lock is no longer ours: its TTL ran out, or an admin force-released
    /// it. Work done under it since then was not protected.
    #[error("lock `{resource}` was lost (expired or released by someone else)")]
    LockLost {
        /// The resource.
        resource: String,
    },
    /// No fencing token: a fence asked of a lock whose manager runs with
    /// [`fencing`](crate::LockConfig::fencing) off, or a fenced write with
    /// fence `0`.
    #[error("no fencing token for `{resource}` (the lock runs with fencing off)")]
    Unfenced {
        /// The resource.
        resource: String,
    },
    /// Redlock could not reach a majority of masters: too many are down or
    /// too slow. This is an availability failure, not contention.
    #[error("Redlock quorum not reached for `{resource}`: {reached} of {masters} masters answered yes, {needed} needed ({failed} failed)")]
    Quorum {
        /// The resource.
        resource: String,
        /// Masters that granted the request.
        reached: usize,
        /// The quorum, `masters / 2 + 1`.
        needed: usize,
        /// Masters that failed or timed out.
        failed: usize,
        /// Masters in total.
        masters: usize,
    },
}

impl Error {
    /// The lock was lost while held ([`LockLost`](Error::LockLost)); its
    /// class is [`Contended`](ErrorClass::Contended) with no known wait.
    #[must_use]
    pub fn is_lock_lost(&self) -> bool {
        matches!(self, Error::LockLost { .. })
    }
}

impl Classify for Error {
    /// One class per variant:
    ///
    /// | variant | class |
    /// |---|---|
    /// | [`Redis`](Error::Redis) | the core error's class |
    /// | [`Key`](Error::Key), [`Config`](Error::Config), [`InvalidTtl`](Error::InvalidTtl), [`InvalidMasters`](Error::InvalidMasters), [`Unfenced`](Error::Unfenced) | `InvalidInput` |
    /// | [`Contended`](Error::Contended), [`Timeout`](Error::Timeout) | `Contended { retry_after: Some(holder's remaining lease) }` |
    /// | [`LockLost`](Error::LockLost) | `Contended { retry_after: None }` |
    /// | [`Quorum`](Error::Quorum) | `Unavailable` (masters down or too slow, not contention) |
    ///
    /// A lost lock is neither bad input nor Redis being down, and it is not
    /// a bug: it is the normal outcome of a race (the lease ran out, or an
    /// admin took the lock), and someone else may hold the lock now. So it
    /// is classed as contention, with no known wait (we do not know the new
    /// holder's lease); [`is_lock_lost`](Error::is_lock_lost) tells it
    /// apart from a refusal.
    fn class(&self) -> ErrorClass {
        match self {
            Error::Redis(e) => e.class(),
            Error::Key(_)
            | Error::Config(_)
            | Error::InvalidTtl { .. }
            | Error::InvalidMasters { .. }
            | Error::Unfenced { .. } => ErrorClass::InvalidInput,
            Error::Contended { retry_after, .. } | Error::Timeout { retry_after, .. } => {
                ErrorClass::Contended {
                    retry_after: Some(*retry_after),
                }
            }
            Error::LockLost { .. } => ErrorClass::Contended { retry_after: None },
            Error::Quorum { .. } => ErrorClass::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_classify_every_variant_once() {
        let c = Error::Contended {
            resource: "r".into(),
            retry_after: Duration::from_millis(40),
        };
        assert_eq!(
            c.class(),
            ErrorClass::Contended {
                retry_after: Some(Duration::from_millis(40))
            }
        );
        assert!(c.is_contended() && c.is_retryable() && !c.is_lock_lost());
        let t = Error::Timeout {
            resource: "r".into(),
            waited: Duration::from_secs(1),
            retry_after: Duration::from_millis(7),
        };
        assert_eq!(t.retry_after(), Some(Duration::from_millis(7)));
        assert!(t.is_contended());
        let lost = Error::LockLost {
            resource: "r".into(),
        };
        assert_eq!(lost.class(), ErrorClass::Contended { retry_after: None });
        assert!(lost.is_lock_lost() && lost.retry_after().is_none());
        let q = Error::Quorum {
            resource: "r".into(),
            reached: 1,
            needed: 2,
            failed: 2,
            masters: 3,
        };
        assert!(q.is_unavailable() && q.is_retryable() && !q.is_contended());
        for bad in [
            Error::InvalidTtl {
                ttl: Duration::ZERO,
                reason: "zero",
            },
            Error::Config(ConfigError::invalid("LOCK_BACKOFF_MIN_MS", "zero")),
            Error::Key(KeyError::Empty),
            Error::InvalidMasters {
                masters: 2,
                reason: "even",
            },
            Error::Unfenced {
                resource: "r".into(),
            },
        ] {
            assert!(bad.is_invalid_input() && !bad.is_retryable(), "{bad:?}");
        }
        let down = Error::from(aeturnis_redis_core::Error::from(
            aeturnis_redis_core::fred::error::Error::new(
                aeturnis_redis_core::fred::error::ErrorKind::IO,
                "Connection refused",
            ),
        ));
        assert!(
            down.is_unavailable(),
            "wrapped core errors keep their class"
        );
    }
}
