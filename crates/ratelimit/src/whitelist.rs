//! Users and IP ranges that skip the limiter.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use crate::error::{Error, Result};
use crate::key::LimitKey;

/// Parses an IP range in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or
/// a single address (`/32` or `/128` implied) into an [`IpNet`]. Strict:
/// no spaces, no shortened IPv4 (`10.0.0/8`), the prefix length a number
/// no longer than the address. Host bits set in the address are ignored
/// (`10.1.2.3/8` is `10.0.0.0/8`). An IPv4-mapped IPv6 range
/// (`::ffff:10.0.0.0/104`) is turned into its IPv4 range, because
/// addresses are matched in their canonical form (IPv4-mapped IPv6
/// addresses as IPv4). An IPv6 range wider than `/96` stays an IPv6 range
/// and covers IPv6 addresses only: `::/0` means every IPv6 client, not
/// every client, and `::/80` does not match `::ffff:1.2.3.4` (that client
/// is `1.2.3.4`). Whitelist IPv4 clients with IPv4 ranges.
///
/// ```
/// use aeturnis_ratelimit::{parse_ip_range, Error};
/// let net = parse_ip_range("10.0.0.0/8")?;
/// assert!(net.contains(&"10.200.3.4".parse::<std::net::IpAddr>().unwrap()));
/// assert!(matches!(parse_ip_range("10.0.0.0/33"), Err(Error::InvalidIpRange { .. })));
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
pub fn parse_ip_range(text: &str) -> Result<IpNet> {
    let bad = |reason| Error::InvalidIpRange {
        input: text.to_owned(),
        reason,
    };
    let net = match text.split_once('/') {
        None => IpNet::from(
            text.parse::<IpAddr>()
                .map_err(|_| bad("not an IP address"))?,
        ),
        Some((addr, prefix)) => {
            addr.parse::<IpAddr>()
                .map_err(|_| bad("not an IP address"))?;
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("the prefix length is not a number"));
            }
            text.parse::<IpNet>()
                .map_err(|_| bad("the prefix length is longer than the address"))?
        }
    };
    Ok(canonical(net.trunc()))
}

/// An IPv4-mapped IPv6 range as its IPv4 range; any other range as is.
fn canonical(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(prefix)) = (
            v6.network().to_ipv4_mapped(),
            v6.prefix_len().checked_sub(96),
        ) {
            if let Ok(v4) = Ipv4Net::new(v4, prefix) {
                return IpNet::V4(v4);
            }
        }
    }
    net
}

/// User ids and IP ranges that skip the limiter (their checks are allowed
/// without a round trip and counted as `whitelisted` in the stats).
///
/// ```
/// use aeturnis_ratelimit::{LimitKey, Whitelist};
/// let list = Whitelist::new()
///     .with_user("admin")
///     .with_range("127.0.0.0/8".parse().unwrap());
/// assert!(list.matches(&LimitKey::user("admin")?));
/// assert!(list.matches(&LimitKey::ip("127.0.0.1".parse().unwrap())));
/// assert!(!list.matches(&LimitKey::user("mallory")?));
/// # Ok::<(), aeturnis_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whitelist {
    users: HashSet<String>,
    ranges: Vec<IpNet>,
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

    /// Adds an IP range (an IPv4-mapped IPv6 range is stored as its IPv4
    /// range, see [`parse_ip_range`]).
    #[must_use]
    pub fn with_range(mut self, range: IpNet) -> Whitelist {
        self.ranges.push(canonical(range.trunc()));
        self
    }

    /// Adds one IP address.
    #[must_use]
    pub fn with_ip(self, ip: IpAddr) -> Whitelist {
        self.with_range(IpNet::from(ip.to_canonical()))
    }

    /// Parses a comma-separated list of IPs and CIDR ranges (as an
    /// environment variable would hold it) with [`parse_ip_range`]; spaces
    /// around an entry and blank entries are skipped.
    pub fn with_ranges_from_str(mut self, list: &str) -> Result<Whitelist> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            self.ranges.push(parse_ip_range(item)?);
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

    /// Whether `ip` lies in a whitelisted range (an IPv4-mapped IPv6
    /// address matches IPv4 ranges).
    #[must_use]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|r| r.contains(&ip))
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
        s.parse().unwrap()
    }

    fn one(range: &str) -> Result<Whitelist> {
        Ok(Whitelist::new().with_range(parse_ip_range(range)?))
    }

    #[test]
    fn should_match_cidr_ranges_by_prefix() -> Result<()> {
        let r = one("192.168.1.0/24")?;
        assert!(r.contains_ip(ip("192.168.1.255")));
        assert!(r.contains_ip(ip("192.168.1.0")));
        assert!(!r.contains_ip(ip("192.168.2.0")));
        assert!(!r.contains_ip(ip("192.168.0.255")));
        let all = one("0.0.0.0/0")?;
        assert!(all.contains_ip(ip("8.8.8.8")));
        assert!(!all.contains_ip(ip("::1")));
        let v6 = one("2001:db8::/32")?;
        assert!(v6.contains_ip(ip("2001:db8:ffff::1")));
        assert!(!v6.contains_ip(ip("2001:db9::1")));
        let all6 = one("::/0")?;
        assert!(all6.contains_ip(ip("2001:db9::1")));
        assert!(!all6.contains_ip(ip("10.0.0.1")));
        let host = one("10.0.0.7")?;
        assert!(host.contains_ip(ip("::ffff:10.0.0.7")));
        assert!(!host.contains_ip(ip("10.0.0.8")));
        let host6 = one("2001:db8::7")?;
        assert!(host6.contains_ip(ip("2001:db8::7")));
        assert!(!host6.contains_ip(ip("2001:db8::8")));
        // host bits are ignored
        let r = one("10.1.2.3/8")?;
        assert!(r.contains_ip(ip("10.200.0.1")));
        assert_eq!(
            parse_ip_range("10.1.2.3/8")?,
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
        // an IPv4-mapped range matches IPv4 and mapped addresses
        let mapped = one("::ffff:10.0.0.0/104")?;
        assert_eq!(
            parse_ip_range("::ffff:10.0.0.0/104")?,
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
        assert!(mapped.contains_ip(ip("10.9.9.9")));
        assert!(mapped.contains_ip(ip("::ffff:10.9.9.9")));
        assert!(!mapped.contains_ip(ip("11.0.0.1")));
        let list = Whitelist::new().with_ip(ip("::ffff:192.0.2.1"));
        assert!(list.contains_ip(ip("192.0.2.1")));
        Ok(())
    }

    #[test]
    fn should_refuse_malformed_ranges() {
        for bad in [
            "",
            " ",
            "/",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0",
            "x/8",
            "1.2.3.4/-1",
            "1.2.3.4/+1",
            "1.2.3.4/ 8",
            " 1.2.3.4/8",
            "1.2.3.4/8/8",
            "1.2.3.4/256",
            "1.2.3.4/99999999999",
            "1.2.3.4/0x8",
            "1.2.3.4/1.5",
            "1.2.3.04",
            "[::1]/64",
        ] {
            assert!(
                matches!(parse_ip_range(bad), Err(Error::InvalidIpRange { .. })),
                "{bad:?} parsed"
            );
        }
        assert!(matches!(
            Whitelist::new().with_ranges_from_str("10.0.0.0/8, nope"),
            Err(Error::InvalidIpRange { .. })
        ));
    }

    #[test]
    fn should_read_a_list_with_spaces_and_blank_entries() -> Result<()> {
        let list =
            Whitelist::new().with_ranges_from_str(" 10.0.0.0/8 , ,2001:db8::/32,192.0.2.1,")?;
        assert!(list.contains_ip(ip("10.1.1.1")));
        assert!(list.contains_ip(ip("2001:db8::1")));
        assert!(list.contains_ip(ip("192.0.2.1")));
        assert!(!list.contains_ip(ip("192.0.2.2")));
        assert!(Whitelist::new().with_ranges_from_str(" , ")?.is_empty());
        Ok(())
    }

    #[test]
    fn should_match_keys_by_user_or_ip() -> Result<()> {
        let list = Whitelist::new()
            .with_user("admin")
            .with_ranges_from_str("10.8.0.0/16")?;
        assert!(list.matches(&LimitKey::user("admin")?));
        assert!(list.matches(&LimitKey::ip(ip("10.8.3.4"))));
        assert!(list.matches(&LimitKey::hybrid("someone", ip("10.8.3.4"))?));
        assert!(list.matches(&LimitKey::hybrid("admin", ip("1.1.1.1"))?));
        assert!(!list.matches(&LimitKey::hybrid("someone", ip("10.9.0.1"))?));
        assert!(!list.matches(&LimitKey::new("admin")?));
        assert!(!list.matches(&LimitKey::new("10.8.3.4")?));
        Ok(())
    }
}
