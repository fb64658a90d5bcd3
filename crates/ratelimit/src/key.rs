//! What a limit applies to: an IP, a user, both, or a caller-chosen text.

use std::fmt;
use std::net::IpAddr;

use aeturnis_redis_core::keys::{check_user, KeyBuilder, KeyError};

use crate::error::{Error, Result};

/// The subject of a limit. Its user and IP feed the
/// [`Whitelist`](crate::Whitelist); it ends the Redis key through the core's
/// key builder, which percent-encodes user text, so a subject cannot forge
/// another key:
///
/// | subject | [`as_str`](LimitKey::as_str) | Redis key suffix (after `<prefix>rl:<name>:`) |
/// |---|---|---|
/// | `ip(203.0.113.9)` | `ip:203.0.113.9` | `ip:203.0.113.9` |
/// | `ip(2001:db8::1)` | `ip:2001:db8::1` | `ip:2001%3Adb8%3A%3A1` |
/// | `user("42")` | `u:42` | `u:42` |
/// | `hybrid("42", 10.1.2.3)` | `u:42\|ip:10.1.2.3` | `u:42:ip:10.1.2.3` |
/// | `new("any text")` | `any text` | `any text` (one encoded segment) |
///
/// The kinds `ip` and `u` are fixed segments and the user text cannot hold
/// a raw `:`, so the suffix tells the kind apart: `new("ip:1.2.3.4")` is a
/// different key from `ip(1.2.3.4)`. The key carries no hash tag: every
/// script touches this one key only.
///
/// ```
/// use aeturnis_ratelimit::LimitKey;
/// let by_ip = LimitKey::ip("10.1.2.3".parse().unwrap());
/// assert_eq!(by_ip.as_str(), "ip:10.1.2.3");
/// let by_user = LimitKey::user("42")?;
/// let both = LimitKey::hybrid("42", "10.1.2.3".parse().unwrap())?;
/// assert_eq!(both.as_str(), "u:42|ip:10.1.2.3");
/// assert!(matches!(LimitKey::user(""), Err(aeturnis_ratelimit::Error::EmptyKey)));
/// # let _ = by_user;
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimitKey {
    text: String,
    user: Option<String>,
    ip: Option<IpAddr>,
}

impl LimitKey {
    /// Per IP address (`ip:<addr>`; IPv4-mapped IPv6 addresses are
    /// canonicalised to IPv4).
    #[must_use]
    pub fn ip(ip: IpAddr) -> LimitKey {
        let ip = ip.to_canonical();
        LimitKey {
            text: format!("ip:{ip}"),
            user: None,
            ip: Some(ip),
        }
    }

    /// Per user (`u:<user>`). An empty user id is [`Error::EmptyKey`]; one
    /// with a control character or longer than
    /// [`MAX_SEGMENT_LEN`](aeturnis_redis_core::keys::MAX_SEGMENT_LEN) bytes
    /// is [`Error::Key`].
    pub fn user(user: &str) -> Result<LimitKey> {
        non_empty(user)?;
        Ok(LimitKey {
            text: format!("u:{user}"),
            user: Some(user.to_owned()),
            ip: None,
        })
    }

    /// Per user and IP together (`u:<user>|ip:<addr>`); the user id is
    /// checked as in [`user`](Self::user).
    pub fn hybrid(user: &str, ip: IpAddr) -> Result<LimitKey> {
        non_empty(user)?;
        let ip = ip.to_canonical();
        Ok(LimitKey {
            text: format!("u:{user}|ip:{ip}"),
            user: Some(user.to_owned()),
            ip: Some(ip),
        })
    }

    /// Any caller-chosen text, used as is. Empty text is [`Error::EmptyKey`];
    /// text with a control character or longer than
    /// [`MAX_SEGMENT_LEN`](aeturnis_redis_core::keys::MAX_SEGMENT_LEN) bytes
    /// is [`Error::Key`] (the core key builder's rules for user text, checked
    /// here so a bad key fails where it is made, not at the first check).
    ///
    /// ```
    /// use aeturnis_ratelimit::{Error, LimitKey};
    /// assert!(matches!(LimitKey::new("a\0b"), Err(Error::Key(_))));
    /// assert!(matches!(LimitKey::new(""), Err(Error::EmptyKey)));
    /// ```
    pub fn new(text: &str) -> Result<LimitKey> {
        non_empty(text)?;
        Ok(LimitKey {
            text: text.to_owned(),
            user: None,
            ip: None,
        })
    }

    /// The key text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The user, when the key names one.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The IP address, when the key names one.
    #[must_use]
    pub fn ip_addr(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Appends this subject's segments to a limiter's key (see the table
    /// above).
    pub(crate) fn append_to(&self, key: KeyBuilder) -> KeyBuilder {
        // the IP text is the suffix of `text` after the last `ip:` marker
        // (an address never contains `|`)
        let ip_text = || {
            self.text
                .rsplit_once("ip:")
                .map_or(self.text.as_str(), |(_, ip)| ip)
        };
        match (&self.user, self.ip) {
            (None, None) => key.id(&self.text),
            (None, Some(_)) => key.part("ip").id(ip_text()),
            (Some(user), None) => key.part("u").id(user),
            (Some(user), Some(_)) => key.part("u").id(user).part("ip").id(ip_text()),
        }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The core's rules for user text in a key, with the crate's own
/// [`Error::EmptyKey`] for empty text.
fn non_empty(text: &str) -> Result<()> {
    match check_user(text) {
        Ok(()) => Ok(()),
        Err(KeyError::Empty) => Err(Error::EmptyKey),
        Err(e) => Err(Error::Key(e)),
    }
}

/// A client-chosen id for one check (a random UUID v4). The sliding log
/// stores it as the request's member, so a check re-sent with the same id
/// counts once and gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(uuid::Uuid);

impl RequestId {
    /// A fresh random id.
    #[must_use]
    pub fn new() -> RequestId {
        RequestId(uuid::Uuid::new_v4())
    }

    /// Wraps an id the caller already has (for example an idempotency key).
    #[must_use]
    pub fn from_uuid(id: uuid::Uuid) -> RequestId {
        RequestId(id)
    }

    /// The UUID.
    #[must_use]
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use aeturnis_redis_core::KeySpace;

    use super::*;

    fn redis_key(key: &LimitKey) -> String {
        let keys = KeySpace::new("aeturnis:").unwrap();
        key.append_to(keys.key("rl").part("api"))
            .build()
            .unwrap()
            .into_string()
    }

    #[test]
    fn should_build_short_keys_without_a_hash_tag() {
        let ip = LimitKey::ip("203.0.113.9".parse().unwrap());
        assert_eq!(redis_key(&ip), "aeturnis:rl:api:ip:203.0.113.9");
        let mapped = LimitKey::ip("::ffff:203.0.113.9".parse().unwrap());
        assert_eq!(redis_key(&mapped), "aeturnis:rl:api:ip:203.0.113.9");
        let v6 = LimitKey::ip("2001:db8::1".parse().unwrap());
        assert_eq!(redis_key(&v6), "aeturnis:rl:api:ip:2001%3Adb8%3A%3A1");
        let user = LimitKey::user("42").unwrap();
        assert_eq!(redis_key(&user), "aeturnis:rl:api:u:42");
        let both = LimitKey::hybrid("a|ip:b", "10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!(redis_key(&both), "aeturnis:rl:api:u:a|ip%3Ab:ip:10.1.2.3");
        let text = LimitKey::new("x{y}:z").unwrap();
        assert_eq!(redis_key(&text), "aeturnis:rl:api:x%7By%7D%3Az");
    }

    #[test]
    fn should_refuse_bad_text_where_the_key_is_made() {
        use aeturnis_redis_core::keys::MAX_SEGMENT_LEN;
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let long = "x".repeat(MAX_SEGMENT_LEN + 1);
        for bad in [
            "a\0b",
            "a\nb",
            "\u{7f}",
            "tab\there",
            "\u{85}",
            long.as_str(),
        ] {
            assert!(
                matches!(LimitKey::new(bad), Err(Error::Key(_))),
                "new({bad:?})"
            );
            assert!(
                matches!(LimitKey::user(bad), Err(Error::Key(_))),
                "user({bad:?})"
            );
            assert!(
                matches!(LimitKey::hybrid(bad, ip), Err(Error::Key(_))),
                "hybrid({bad:?})"
            );
        }
        assert!(matches!(
            LimitKey::new("a\0b"),
            Err(Error::Key(KeyError::ControlCharacter('\0')))
        ));
        assert!(matches!(LimitKey::new(""), Err(Error::EmptyKey)));
        assert!(matches!(LimitKey::user(""), Err(Error::EmptyKey)));
        assert!(matches!(LimitKey::hybrid("", ip), Err(Error::EmptyKey)));
        // the longest accepted text, and text with spaces and non-ASCII
        let longest = "x".repeat(MAX_SEGMENT_LEN);
        for good in [longest.as_str(), "any text", "ælfrida", "{}:%"] {
            let key = LimitKey::new(good).unwrap();
            redis_key(&key);
            assert!(LimitKey::user(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn should_give_different_subjects_different_keys() {
        let ip = |s: &str| LimitKey::ip(s.parse().unwrap());
        let subjects = [
            ip("1.2.3.4"),
            ip("::1"),
            LimitKey::user("1.2.3.4").unwrap(),
            LimitKey::user("ip:1.2.3.4").unwrap(),
            LimitKey::user("u").unwrap(),
            LimitKey::user("ip").unwrap(),
            LimitKey::hybrid("1.2.3.4", "1.2.3.4".parse().unwrap()).unwrap(),
            LimitKey::hybrid("x:ip:1.2.3.4", "5.6.7.8".parse().unwrap()).unwrap(),
            LimitKey::hybrid("x", "1.2.3.4".parse().unwrap()).unwrap(),
            LimitKey::new("1.2.3.4").unwrap(),
            LimitKey::new("ip:1.2.3.4").unwrap(),
            LimitKey::new("u:1.2.3.4").unwrap(),
            LimitKey::new("u:x|ip:1.2.3.4").unwrap(),
            LimitKey::new("ip").unwrap(),
            LimitKey::new("u").unwrap(),
        ];
        let keys: HashSet<String> = subjects.iter().map(redis_key).collect();
        assert_eq!(keys.len(), subjects.len(), "{keys:?}");
    }
}
