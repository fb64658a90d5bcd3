//! Users and IP ranges that skip the limiter.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::key::LimitKey;

/// An IP address range in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or
/// a single address (`/32` or `/128` implied). Parsed with `std::net` only.
///
/// ```
/// use aeturnis_ratelimit::IpRange;
/// let net: IpRange = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.200.3.4".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range of `addr` with its first `prefix` bits fixed. Host bits
    /// set in `addr` are ignored.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpRange> {
        let addr = addr.to_canonical();
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return Err(Error::InvalidIpRange {
                input: format!("{addr}/{prefix}"),
                reason: "the prefix length is longer than the address",
            });
        }
        Ok(IpRange { addr, prefix })
    }

    /// Whether `ip` lies in the range (IPv4-mapped IPv6 addresses match
    /// IPv4 ranges).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<IpRange> {
        let bad = |reason| Error::InvalidIpRange {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad("not an IP address"))?;
        let prefix = match prefix {
            None => match addr.to_canonical() {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse()
                .map_err(|_| bad("the prefix length is out of range"))?,
            Some(_) => return Err(bad("the prefix length is not a number")),
        };
        IpRange::new(addr, prefix).map_err(|_| bad("the prefix length is longer than the address"))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// User ids and IP ranges that skip the limiter (their checks are allowed
/// without a round trip and counted as `whitelisted` in the stats).
///
/// ```
/// use aeturnis_ratelimit::{LimitKey, Whitelist};
/// let list = Whitelist::new().with_user("admin").with_range("127.0.0.0/8".parse()?);
/// assert!(list.matches(&LimitKey::user("admin")?));
/// assert!(list.matches(&LimitKey::ip("127.0.0.1".parse().unwrap())));
/// assert!(!list.matches(&LimitKey::user("mallory")?));
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whitelist {
    users: HashSet<String>,
    ranges: Vec<IpRange>,
}

impl Whitelist {
    /// An empty whitelist.
    #[must_use]
    pub fn new() -> Whitelist {
        Whitelist::default()
    }

    /// Adds a user id.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Whitelist {
        self.users.insert(user.into());
        self
    }

    /// Adds an IP range.
    #[must_use]
    pub fn with_range(mut self, range: IpRange) -> Whitelist {
        self.ranges.push(range);
        self
    }

    /// Adds one IP address.
    #[must_use]
    pub fn with_ip(self, ip: IpAddr) -> Whitelist {
        let ip = ip.to_canonical();
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        self.with_range(IpRange { addr: ip, prefix })
    }

    /// Parses a comma-separated list of IPs and CIDR ranges (as an
    /// environment variable would hold it); blank entries are skipped.
    pub fn with_ranges_from_str(mut self, list: &str) -> Result<Whitelist> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            self.ranges.push(item.parse()?);
        }
        Ok(self)
    }

    /// Whether nothing is whitelisted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.ranges.is_empty()
    }

    /// Whether `user` is whitelisted.
    #[must_use]
    pub fn contains_user(&self, user: &str) -> bool {
        self.users.contains(user)
    }

    /// Whether `ip` lies in a whitelisted range.
    #[must_use]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// Whether the key's user or IP is whitelisted.
    #[must_use]
    pub fn matches(&self, key: &LimitKey) -> bool {
        key.user_id().is_some_and(|u| self.contains_user(u))
            || key.ip_addr().is_some_and(|ip| self.contains_ip(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn should_match_cidr_ranges_by_prefix() -> Result<()> {
        let r: IpRange = "192.168.1.0/24".parse()?;
        assert!(r.contains(ip("192.168.1.255")));
        assert!(!r.contains(ip("192.168.2.0")));
        let all: IpRange = "0.0.0.0/0".parse()?;
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("::1")));
        let v6: IpRange = "2001:db8::/32".parse()?;
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host: IpRange = "10.0.0.7".parse()?;
        assert!(host.contains(ip("::ffff:10.0.0.7")));
        assert!(!host.contains(ip("10.0.0.8")));
        Ok(())
    }

    #[test]
    fn should_refuse_malformed_ranges() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "1.2.3.4/-1",
        ] {
            assert!(
                matches!(bad.parse::<IpRange>(), Err(Error::InvalidIpRange { .. })),
                "{bad} parsed"
            );
        }
        assert!(Whitelist::new()
            .with_ranges_from_str("10.0.0.0/8, nope")
            .is_err());
    }
}
