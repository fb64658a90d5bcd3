//! Property tests of `ClientIp` on untrusted input: arbitrary `Forwarded`
//! and `X-Forwarded-For` field lines (any bytes a header value may hold,
//! several lines), arbitrary trusted ranges and peers. The walk never
//! panics; the address it picks is the peer or one written in the header;
//! with no trusted range the header is ignored; and a well-formed chain
//! through trusted proxies yields the right-most untrusted hop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aeturnis_tower::ratelimit::{ClientIp, ForwardedHeader};
use axum::http::{HeaderValue, Request};
use proptest::prelude::*;

/// Which header, by name and by `ClientIp` setting.
fn header_kind() -> impl Strategy<Value = (ForwardedHeader, &'static str)> {
    prop_oneof![
        Just((ForwardedHeader::XForwardedFor, "x-forwarded-for")),
        Just((ForwardedHeader::Forwarded, "forwarded")),
    ]
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        // IPv4-mapped IPv6, which the walk reads as IPv4
        any::<[u8; 4]>().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped())),
    ]
}

/// A trusted range: a network and a prefix length valid for its family.
#[derive(Debug, Clone, Copy)]
struct Range {
    net: IpAddr,
    bits: u8,
}

impl Range {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }

    /// An address inside the range, from `seed`'s host bits.
    fn member(self, seed: u128) -> IpAddr {
        match self.net {
            IpAddr::V4(n) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(
                    (u32::from(n) & mask) | (seed as u32 & !mask),
                ))
            }
            IpAddr::V6(n) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from((u128::from(n) & mask) | (seed & !mask)))
            }
        }
    }

    fn cidr(self) -> String {
        format!("{}/{}", self.net, self.bits)
    }
}

fn range() -> impl Strategy<Value = Range> {
    prop_oneof![
        (any::<[u8; 4]>(), 0_u8..=32).prop_map(|(b, bits)| Range {
            net: IpAddr::from(b),
            bits
        }),
        (any::<[u8; 16]>(), 0_u8..=128).prop_map(|(b, bits)| Range {
            net: IpAddr::from(b),
            bits
        }),
    ]
}

/// One node as a proxy may write it: bare, with a port, bracketed,
/// quoted; in either header's syntax.
fn write_node(ip: IpAddr, form: u8, port: u16, header: ForwardedHeader) -> String {
    let node = match (ip, form % 3) {
        (IpAddr::V4(v4), 1) => format!("{v4}:{port}"),
        (IpAddr::V6(v6), 1) => format!("[{v6}]:{port}"),
        (IpAddr::V6(v6), 2) => format!("[{v6}]"),
        (ip, _) => ip.to_string(),
    };
    match header {
        ForwardedHeader::XForwardedFor => node,
        // RFC 7239: a node with ':' or '[' must be quoted
        _ => match form % 4 {
            0 => format!("for=\"{node}\""),
            1 => format!("proto=https;for=\"{node}\";by=_proxy"),
            2 => format!("For=\"{node}\";host=example.com"),
            _ => format!("for=\"{node}\""),
        },
    }
}

/// Junk a client (or a broken proxy) may put in a hop: text with the
/// header's separators, quotes, brackets, obfuscated names.
fn junk_hop() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("unknown".to_owned()),
        Just("_hidden".to_owned()),
        Just("for=unknown".to_owned()),
        Just("for=\"[::1\"".to_owned()),
        Just("[10.0.0.1]x".to_owned()),
        Just("for=".to_owned()),
        Just("=;=;".to_owned()),
        "[ -~]{0,24}",
    ]
}

fn request(peer: SocketAddr, name: &'static str, lines: &[HeaderValue]) -> Request<()> {
    let mut r = Request::new(());
    r.extensions_mut().insert(peer);
    for line in lines {
        r.headers_mut().append(name, line.clone());
    }
    r
}

/// Every address written in `lines`: each run of address characters, read
/// as an address or a socket address (an independent reading, not the
/// parser's).
fn written_addresses(lines: &[HeaderValue]) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in lines {
        let text = String::from_utf8_lossy(line.as_bytes());
        for token in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':')) {
            if let Ok(ip) = token.parse::<IpAddr>() {
                found.push(ip.to_canonical());
            } else if let Ok(addr) = token.parse::<SocketAddr>() {
                found.push(addr.ip().to_canonical());
            }
        }
    }
    found
}

/// Arbitrary header lines: any bytes a `HeaderValue` accepts (visible
/// ASCII, space, tab, obs-text), or hop lists mixing junk and addresses.
fn header_lines(header: ForwardedHeader) -> impl Strategy<Value = Vec<HeaderValue>> {
    let raw = proptest::collection::vec(
        prop_oneof![Just(b'\t'), 0x20_u8..0x7f, 0x80_u8..=0xff],
        0..80,
    )
    .prop_filter_map("a header value", |b| HeaderValue::from_bytes(&b).ok());
    let hops = proptest::collection::vec(
        prop_oneof![
            junk_hop(),
            (any_ip(), any::<u8>(), any::<u16>())
                .prop_map(move |(ip, form, port)| write_node(ip, form, port, header)),
        ],
        0..8,
    )
    .prop_filter_map("a header value", |hops| {
        HeaderValue::from_str(&hops.join(", ")).ok()
    });
    proptest::collection::vec(prop_oneof![raw, hops], 0..4)
}

/// A header kind and `min..4` trusted ranges.
fn setup(min: usize) -> impl Strategy<Value = ((ForwardedHeader, &'static str), Vec<Range>)> {
    (header_kind(), proptest::collection::vec(range(), min..4))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_pick_the_peer_or_an_address_written_in_the_header(
        ((header, name), ranges) in setup(0),
        lines in header_kind().prop_flat_map(|(h, _)| header_lines(h)),
        peer in any_ip(),
        port in any::<u16>(),
        trust_peer in any::<bool>(),
    ) {
        // half the time the peer itself is trusted, so the header is read
        let mut cidrs: Vec<String> = ranges.iter().map(|r| r.cidr()).collect();
        if trust_peer {
            cidrs.push(peer.to_canonical().to_string());
        }
        let ip = ClientIp::new(&cidrs).unwrap().with_header(header);
        let chosen = ip
            .client_ip(&request(SocketAddr::new(peer, port), name, &lines))
            .expect("a peer address is set");
        prop_assert!(
            chosen == peer.to_canonical() || written_addresses(&lines).contains(&chosen),
            "{chosen} is neither the peer {peer} nor written in {lines:?}"
        );
    }

    #[test]
    fn should_ignore_the_header_without_a_trusted_proxy(
        (header, name) in header_kind(),
        lines in header_kind().prop_flat_map(|(h, _)| header_lines(h)),
        peer in any_ip(),
        port in any::<u16>(),
    ) {
        let ip = ClientIp::new(Vec::<String>::new()).unwrap().with_header(header);
        let chosen = ip.client_ip(&request(SocketAddr::new(peer, port), name, &lines));
        prop_assert_eq!(chosen, Some(peer.to_canonical()));
    }

    #[test]
    fn should_yield_the_right_most_untrusted_hop_of_a_well_formed_chain(
        ((header, name), ranges) in setup(1),
        // each hop: trusted (a member of a range) or an arbitrary address,
        // in one of the written forms
        hops in proptest::collection::vec(
            (any::<bool>(), any::<u128>(), any_ip(), any::<u8>(), any::<u16>()),
            0..8,
        ),
        split in any::<proptest::sample::Index>(),
        peer_seed in any::<u128>(),
        port in any::<u16>(),
    ) {
        let trusted = |ip: IpAddr| ranges.iter().any(|r| r.contains(ip));
        let pick = |seed: u128| ranges[(seed % ranges.len() as u128) as usize];
        let hops: Vec<(IpAddr, String)> = hops
            .into_iter()
            .map(|(proxy, seed, other, form, port)| {
                let ip = if proxy { pick(seed).member(seed) } else { other };
                (ip, write_node(ip, form, port, header))
            })
            .collect();
        // the hops spread over one or two field lines, in order
        let at = if hops.is_empty() { 0 } else { split.index(hops.len() + 1) };
        let join = |part: &[(IpAddr, String)]| {
            part.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(", ")
        };
        let lines: Vec<HeaderValue> = [join(&hops[..at]), join(&hops[at..])]
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| HeaderValue::from_str(l).unwrap())
            .collect();
        let peer = pick(peer_seed).member(peer_seed);
        let expected = hops
            .iter()
            .rev()
            .map(|(ip, _)| ip.to_canonical())
            .find(|ip| !trusted(*ip))
            .or_else(|| hops.first().map(|(ip, _)| ip.to_canonical()))
            .unwrap_or(peer);
        let cidrs: Vec<String> = ranges.iter().map(|r| r.cidr()).collect();
        let ip = ClientIp::new(&cidrs).unwrap().with_header(header);
        let chosen = ip.client_ip(&request(SocketAddr::new(peer, port), name, &lines));
        prop_assert_eq!(chosen, Some(expected), "hops {:?}", lines);
    }
}
