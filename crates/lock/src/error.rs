//! The lock error type.

use aeturnis_redis_core::Classify as _;
use std::time::Duration;

/// Result alias used across `aeturnis-lock`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong taking, keeping or giving back a lock.
///
/// A refusal carries data: [`Contended`](Error::Contended) and
/// [`Timeout`](Error::Timeout) say how long the current holder still has
/// ([`retry_after`](Error::retry_after)), so a caller (or an HTTP layer) can
/// wait exactly that long.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis failed (connection, timeout, server error, bad key).
    #[error(transparent)]
    Redis(#[from] aeturnis_redis_core::Error),
    /// The resource name cannot name a lock.
    #[error("invalid lock resource: {reason}")]
    InvalidResource {
        /// Why it was refused.
        reason: String,
    },
    /// The TTL is zero, too large, or too short for the clock-drift margin.
    #[error("invalid lock TTL {ttl:?}: {reason}")]
    InvalidTtl {
        /// The TTL given.
        ttl: Duration,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid lock configuration: {0}")]
    InvalidConfig(&'static str),
    /// Redlock was given a number of masters that cannot form a safe majority.
    #[error("Redlock needs an odd number of at least 3 masters, got {masters}: {reason}")]
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
    /// A fenced write carried no fencing token: the guard came from a
    /// manager with [`fencing`](crate::LockConfig::fencing) off.
    #[error("fenced write to `{resource}` without a fencing token (the lock manager runs with fencing off)")]
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
    /// Trying again later may succeed: contention, a wait timeout, a lost
    /// quorum, or a retryable Redis error.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Redis(e) => e.is_retryable(),
            Error::Contended { .. } | Error::Timeout { .. } | Error::Quorum { .. } => true,
            _ => false,
        }
    }

    /// Someone else holds the lock ([`Contended`](Error::Contended) or
    /// [`Timeout`](Error::Timeout)).
    #[must_use]
    pub fn is_contended(&self) -> bool {
        matches!(self, Error::Contended { .. } | Error::Timeout { .. })
    }

    /// The lock was lost while held.
    #[must_use]
    pub fn is_lock_lost(&self) -> bool {
        matches!(self, Error::LockLost { .. })
    }

    /// How long until the current holder's lease runs out, when known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Contended { retry_after, .. } | Error::Timeout { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Redis could not be reached in time (a connection error or timeout,
    /// or a Redlock quorum lost to unreachable masters).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Redis(e) => e.is_connection() || e.is_timeout(),
            Error::Quorum { .. } => true,
            _ => false,
        }
    }
}

impl From<aeturnis_redis_core::KeyError> for Error {
    fn from(e: aeturnis_redis_core::KeyError) -> Self {
        Error::InvalidResource {
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_classify_denials_and_losses() {
        let c = Error::Contended {
            resource: "r".into(),
            retry_after: Duration::from_millis(40),
        };
        assert!(c.is_contended() && c.is_retryable());
        assert_eq!(c.retry_after(), Some(Duration::from_millis(40)));
        let lost = Error::LockLost {
            resource: "r".into(),
        };
        assert!(lost.is_lock_lost() && !lost.is_retryable() && lost.retry_after().is_none());
        let q = Error::Quorum {
            resource: "r".into(),
            reached: 1,
            needed: 2,
            failed: 2,
            masters: 3,
        };
        assert!(q.is_unavailable() && q.is_retryable() && !q.is_contended());
        let bad = Error::InvalidTtl {
            ttl: Duration::ZERO,
            reason: "zero",
        };
        assert!(!bad.is_retryable());
    }
}
