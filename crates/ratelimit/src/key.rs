//! What a limit applies to: an IP, a user, both, or a caller-chosen text.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// The subject of a limit. The text becomes the Redis key's hash tag
/// (encoded by the core's key builder, so it cannot forge another key or
/// another cluster slot); the user and IP also feed the
/// [`Whitelist`](crate::Whitelist).
///
/// ```
/// use aeturnis_ratelimit::LimitKey;
/// let by_ip = LimitKey::ip("10.1.2.3".parse().unwrap());
/// assert_eq!(by_ip.as_str(), "ip:10.1.2.3");
/// let by_user = LimitKey::user("42")?;
/// let both = LimitKey::hybrid("42", "10.1.2.3".parse().unwrap())?;
/// assert_eq!(both.as_str(), "u:42|ip:10.1.2.3");
/// assert!(LimitKey::user("").is_err());
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

    /// Per user (`u:<user>`). An empty user id is [`Error::EmptyKey`].
    pub fn user(user: &str) -> Result<LimitKey> {
        non_empty(user)?;
        Ok(LimitKey {
            text: format!("u:{user}"),
            user: Some(user.to_owned()),
            ip: None,
        })
    }

    /// Per user and IP together (`u:<user>|ip:<addr>`).
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
    /// over-long text or control characters fail when the key is built.
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
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn non_empty(text: &str) -> Result<()> {
    if text.is_empty() {
        Err(Error::EmptyKey)
    } else {
        Ok(())
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
