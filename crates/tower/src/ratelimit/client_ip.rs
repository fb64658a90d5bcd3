//! [`ClientIp`]: the client address behind trusted proxies, read from
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` from the right.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aeturnis_ratelimit::LimitKey;
use http::{HeaderMap, Request};
use ipnet::IpNet;

use crate::error::KeyError;
use crate::ratelimit::key::{peer_addr, Extracted, KeyExtractor};

/// The forwarding header your proxies write. Name exactly the one they
/// append to: a header the proxy does not touch is client-controlled all
/// the way to the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`. Default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

/// The client IP behind a chain of trusted proxies.
///
/// Starting from the TCP peer, as long as the current hop lies inside a
/// trusted range, the next address to the left in the forwarding header
/// becomes the candidate; the first untrusted one is the client. The
/// leftmost entry (which the client writes) is only reached when every
/// hop to its right is trusted. A peer outside the trusted ranges is the
/// client and the header is never read, so a client cannot choose its key
/// by spoofing. A malformed or obfuscated entry (`unknown`, `_hidden`,
/// garbage) stops the walk at the last address known good. IPv6 clients
/// are grouped by prefix (default /64).
///
/// ```
/// use aeturnis_tower::ratelimit::{ClientIp, ForwardedHeader};
/// let ip = ClientIp::new(["10.0.0.0/8", "192.168.1.7"])?
///     .with_header(ForwardedHeader::Forwarded);
/// let request = http::Request::builder()
///     .header("forwarded", "for=198.51.100.9, for=10.0.0.2")
///     .extension(std::net::SocketAddr::from(([10, 0, 0, 1], 443)))
///     .body(())?;
/// assert_eq!(ip.client_ip(&request), Some("198.51.100.9".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<[IpNet]>,
    header: ForwardedHeader,
    v6_prefix: u8,
}

impl ClientIp {
    /// Trusts `ranges` (CIDR `10.0.0.0/8` or single addresses). A range
    /// that parses as neither is [`Error::InvalidCidr`](crate::Error::InvalidCidr).
    pub fn new<I, T>(ranges: I) -> crate::Result<ClientIp>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let trusted = ranges
            .into_iter()
            .map(|r| {
                let r = r.as_ref().trim();
                r.parse::<IpNet>()
                    .or_else(|_| r.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| crate::Error::InvalidCidr(r.to_owned()))
            })
            .collect::<crate::Result<Vec<_>>>()?;
        Ok(ClientIp {
            trusted: trusted.into(),
            header: ForwardedHeader::default(),
            v6_prefix: 64,
        })
    }

    /// Reads `header`. Default: [`ForwardedHeader::XForwardedFor`].
    #[must_use]
    pub fn with_header(mut self, header: ForwardedHeader) -> ClientIp {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by their first `bits` bits. Default: 64.
    pub fn with_v6_prefix(mut self, bits: u8) -> crate::Result<ClientIp> {
        if bits > 128 {
            return Err(crate::Error::InvalidPrefix(bits));
        }
        self.v6_prefix = bits;
        Ok(self)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of `request` (ungrouped), or `None` without a
    /// peer address.
    pub fn client_ip<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        peer_addr(request).map(|peer| self.walk(peer.to_canonical(), request.headers()))
    }

    /// The walk from `peer` leftwards through the header's hops.
    fn walk(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if !self.is_trusted(client) {
            return client;
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        // every field line, in order; the hops are read right to left
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                // a non-ASCII line: nothing in it, nor left of it, is usable
                hops.clear();
                continue;
            };
            hops.extend(value.split(','));
        }
        for hop in hops.iter().rev() {
            if !self.is_trusted(client) {
                break;
            }
            let parsed = match self.header {
                ForwardedHeader::XForwardedFor => parse_node(hop.trim()),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            };
            match parsed {
                Some(ip) => client = ip.to_canonical(),
                None => break,
            }
        }
        client
    }
}

impl<B> KeyExtractor<Request<B>> for ClientIp {
    fn extract(&self, request: &Request<B>) -> Extracted {
        Extracted::Ready(
            self.client_ip(request)
                .map(|ip| LimitKey::ip(group_ip(ip, self.v6_prefix)))
                .ok_or(KeyError::NoPeerAddress),
        )
    }
}

/// The `for=` node of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value.trim()))
            .flatten()
    })
}

/// A node: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:80`,
/// `2001:db8::1`, optionally in double quotes. `unknown`, obfuscated
/// identifiers, and anything after `]` but a port are `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|port| port.parse::<u16>().is_ok());
        return if port_ok { ip.parse().ok() } else { None };
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// `ip` with IPv6 addresses cut to their first `v6_prefix` bits; IPv4 (and
/// IPv4-mapped IPv6) unchanged.
pub(crate) fn group_ip(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if v6_prefix < 128 => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(v6_prefix))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn should_parse_every_node_form() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:8080"), Some(ip("192.0.2.1")));
        assert_eq!(
            parse_node("\"[2001:db8::1]:4711\""),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(parse_node("[2001:db8::1"), None);
        assert_eq!(parse_node("[2001:db8::1]:80"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]x"), None);
        assert_eq!(parse_node("[2001:db8::1]:99999"), None);
        assert_eq!(parse_node("[2001:db8::1]:"), None);
        assert_eq!(forwarded_for("proto=https;For=\"[::1]\""), Some(ip("::1")));
        assert_eq!(forwarded_for("by=10.0.0.1"), None);
    }

    #[test]
    fn should_group_ipv6_by_prefix_and_leave_ipv4_alone() {
        assert_eq!(
            group_ip(ip("2001:db8:1:2:3:4:5:6"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            group_ip(ip("2001:db8:1:2:3:4:5:6"), 128),
            ip("2001:db8:1:2:3:4:5:6")
        );
        assert_eq!(group_ip(ip("2001:db8:1:2:3:4:5:6"), 0), ip("::"));
        assert_eq!(group_ip(ip("::ffff:192.0.2.1"), 64), ip("192.0.2.1"));
    }
}
