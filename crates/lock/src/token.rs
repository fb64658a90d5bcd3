//! Lock tokens (who holds a lock) and fencing tokens (in which order).

use std::fmt;

use rand::RngCore;

/// The random value that proves ownership of one acquisition: 128 bits
/// from the operating system's CSPRNG (through `rand`'s thread RNG), as
/// 32 lowercase hex digits. A fresh one is drawn for every acquisition, so
/// a stale holder can never release or extend a newer holder's lock.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LockToken(String);

impl LockToken {
    /// Number of hex digits in a token.
    pub const LEN: usize = 32;

    /// A fresh random token.
    #[must_use]
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let mut s = String::with_capacity(Self::LEN);
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        LockToken(s)
    }

    /// The token text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for LockToken {
    // only a prefix: enough to correlate logs, not enough to forge a release
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockToken({}…)", &self.0[..8.min(self.0.len())])
    }
}

/// A number that strictly increases with every fence issued for a
/// resource, from a counter in the lock's hash slot, together with the
/// identity of the holder it was issued to.
///
/// A [`LockManager`](crate::LockManager) issues it **on demand**:
/// [`LockGuard::fence`](crate::LockGuard::fence) runs one script that bumps
/// the counter only while the guard's token still holds the lock, so a
/// holder that lost the lock can never obtain one, and fences grow in
/// holding order. [`Redlock`](crate::Redlock) issues it with every
/// acquisition (see the guide).
///
/// Pass it to whatever the lock protects; the protected store must refuse
/// a write whose fencing token is lower than the last one it accepted, and
/// an equal one from another holder (see
/// [`LockManager::fenced_write`](crate::LockManager::fenced_write)). That
/// turns "a paused holder whose lease expired writes late" from silent
/// corruption into a refused write.
///
/// Equality, order and hashing look at the number only; the holder is an
/// identity `fenced_write` checks, never shown by `Debug`.
#[derive(Clone, Copy)]
pub struct FencingToken {
    value: u64,
    /// The holder's lock token (its 128 bits), when issued to a guard.
    holder: Option<u128>,
}

impl FencingToken {
    /// Wraps a raw value (for example one read back from storage). It
    /// carries no holder identity, so a fenced write with it is refused
    /// when it only *equals* the last accepted fence.
    #[must_use]
    pub const fn new(value: u64) -> Self {
        FencingToken {
            value,
            holder: None,
        }
    }

    /// A fence issued to the holder of `token`.
    pub(crate) fn issued(value: u64, token: &LockToken) -> Self {
        FencingToken {
            value,
            holder: u128::from_str_radix(token.as_str(), 16).ok(),
        }
    }

    /// The raw value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.value
    }

    /// The holder identity as the scripts store it (32 hex digits), or
    /// `""` for a fence built with [`new`](Self::new).
    pub(crate) fn holder_text(self) -> String {
        self.holder.map(|h| format!("{h:032x}")).unwrap_or_default()
    }
}

impl PartialEq for FencingToken {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for FencingToken {}

impl PartialOrd for FencingToken {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FencingToken {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl std::hash::Hash for FencingToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl fmt::Debug for FencingToken {
    // the holder is the lock token: never in a log
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FencingToken({})", self.value)
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_draw_distinct_128_bit_tokens() {
        let a = LockToken::random();
        let b = LockToken::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn should_order_fencing_tokens_numerically() {
        assert!(FencingToken::new(9) < FencingToken::new(10));
        assert_eq!(FencingToken::new(7).get(), 7);
    }

    #[test]
    fn should_carry_the_holder_without_showing_it() {
        let t = LockToken::random();
        let f = FencingToken::issued(5, &t);
        assert_eq!(f.holder_text(), t.as_str());
        assert_eq!(f, FencingToken::new(5), "compared by value only");
        assert_eq!(FencingToken::new(5).holder_text(), "");
        assert_eq!(format!("{f:?}"), "FencingToken(5)");
    }
}
