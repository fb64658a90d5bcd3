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

/// A number that strictly increases with every acquisition of a resource,
/// issued by the acquire script from a counter in the lock's hash slot.
///
/// Pass it to whatever the lock protects; the protected store must refuse
/// a write whose fencing token is lower than the last one it accepted (see
/// [`LockManager::fenced_write`](crate::LockManager::fenced_write)). That
/// turns "a paused holder whose lease expired writes late" from silent
/// corruption into a refused write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// Wraps a raw value (for example one read back from storage).
    #[must_use]
    pub const fn new(value: u64) -> Self {
        FencingToken(value)
    }

    /// The raw value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
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
}
