//! Property tests for what the limiter parses from untrusted or operator
//! input: limit keys built from user text, IP addresses and CIDR ranges,
//! whitelist lists. Never a panic, always a typed error; parsing and
//! printing round-trip. No Redis needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aeturnis_ratelimit::core::keys::{KeyError, MAX_SEGMENT_LEN};
use aeturnis_ratelimit::ipnet::IpNet;
use aeturnis_ratelimit::{parse_ip_range, Error, LimitKey, Whitelist};
use proptest::prelude::*;

/// User text of every kind: empty, control characters, separators a key
/// could be forged with, long runs, any Unicode.
fn user_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9]{1,12}",
        "[a-z:|{}%*?\\[\\]]{1,16}",
        ".{0,20}",
        any::<String>(),
        "[\\x00-\\x1f\\x7f]{1,3}",
        "x{500,530}",
    ]
}

/// Whether the core key builder accepts `text` as user text.
fn valid_user_text(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_SEGMENT_LEN && !text.chars().any(char::is_control)
}

/// Checks a [`LimitKey`] constructor's answer for `text`.
fn check_key(text: &str, made: Result<LimitKey, Error>) -> Result<(), TestCaseError> {
    match made {
        Ok(_) => prop_assert!(valid_user_text(text), "{:?} accepted", text),
        Err(Error::EmptyKey) => prop_assert!(text.is_empty()),
        Err(Error::Key(KeyError::SegmentTooLong { len, max })) => {
            prop_assert_eq!((len, max), (text.len(), MAX_SEGMENT_LEN));
        }
        Err(Error::Key(KeyError::ControlCharacter(c))) => {
            prop_assert!(c.is_control() && text.contains(c), "{:?} in {:?}", c, text);
        }
        Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
    }
    Ok(())
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
        // IPv4-mapped IPv6 addresses, which are matched as IPv4
        any::<Ipv4Addr>().prop_map(|v4| IpAddr::V6(v4.to_ipv6_mapped())),
    ]
}

/// An address and a prefix length that fits it.
fn ip_and_prefix() -> impl Strategy<Value = (IpAddr, u8)> {
    any_ip().prop_flat_map(|ip| {
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        (Just(ip), 0..=max)
    })
}

/// Text shaped like an IP range, right or wrong.
fn range_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[0-9./]{1,20}",
        "[0-9a-fA-F:./%]{1,45}",
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,4}(/[0-9+ -]{0,4})?",
        ip_and_prefix().prop_map(|(ip, p)| format!("{ip}/{p}")),
        (any_ip(), 0..300u32).prop_map(|(ip, p)| format!("{ip}/{p}")),
        (any_ip(), "[ \\t]{1,2}").prop_map(|(ip, s)| format!("{s}{ip}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_make_a_key_from_any_user_text_or_give_a_typed_error(
        text in user_text(),
        ip in any_ip(),
    ) {
        check_key(&text, LimitKey::new(&text))?;
        check_key(&text, LimitKey::user(&text))?;
        check_key(&text, LimitKey::hybrid(&text, ip))?;
        if let Ok(key) = LimitKey::hybrid(&text, ip) {
            prop_assert_eq!(key.user_id(), Some(text.as_str()));
            prop_assert_eq!(key.ip_addr(), Some(ip.to_canonical()));
        }
        if let Ok(key) = LimitKey::new(&text) {
            prop_assert_eq!(key.as_str(), text.as_str());
            prop_assert_eq!((key.user_id(), key.ip_addr()), (None, None));
        }
    }

    #[test]
    fn should_key_an_address_by_its_canonical_form(ip in any_ip()) {
        let key = LimitKey::ip(ip);
        let canonical = ip.to_canonical();
        prop_assert_eq!(key.ip_addr(), Some(canonical));
        let expected = format!("ip:{canonical}");
        prop_assert_eq!(key.as_str(), expected.as_str());
        prop_assert_eq!(key.user_id(), None);
    }

    #[test]
    fn should_parse_any_text_as_a_range_or_refuse_it_naming_the_input(text in range_text()) {
        match parse_ip_range(&text) {
            Ok(net) => {
                // canonical: printing and parsing again gives the same range
                prop_assert_eq!(parse_ip_range(&net.to_string()).unwrap(), net);
                prop_assert_eq!(net.trunc(), net);
                prop_assert!(!text.contains(char::is_whitespace), "{:?} accepted", text);
            }
            Err(Error::InvalidIpRange { input, reason }) => {
                prop_assert_eq!(input, text);
                prop_assert!(!reason.is_empty());
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
    }

    #[test]
    fn should_parse_every_address_with_a_fitting_prefix_into_a_range_holding_it(
        (ip, prefix) in ip_and_prefix(),
    ) {
        let text = format!("{ip}/{prefix}");
        let net = parse_ip_range(&text).unwrap();
        // host bits are dropped, not refused
        prop_assert_eq!(net, IpNet::new(ip, prefix).unwrap().trunc().pipe_canonical());
        let single = parse_ip_range(&ip.to_string()).unwrap();
        prop_assert_eq!(single.addr(), ip.to_canonical());
        let list = Whitelist::new().with_ranges_from_str(&format!(" , {text} ,")).unwrap();
        // The documented rule (`parse_ip_range`): an IPv6 range wider than /96
        // covers IPv6 clients only, and a mapped address is its IPv4 client,
        // so `::/80` does not hold `::ffff:1.2.3.4`.
        let mapped_below_96 =
            matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()) && prefix < 96;
        prop_assert_eq!(list.contains_ip(ip), !mapped_below_96, "{} in {}", ip, net);
        prop_assert_eq!(list.matches(&LimitKey::ip(ip)), !mapped_below_96);
    }

    #[test]
    fn should_refuse_a_prefix_longer_than_the_address((ip, extra) in (any_ip(), 1..200u32)) {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let text = format!("{ip}/{}", max + extra);
        prop_assert!(
            matches!(&parse_ip_range(&text), Err(Error::InvalidIpRange { input, .. }) if *input == text),
            "{} accepted", text
        );
    }

    #[test]
    fn should_build_a_whitelist_from_any_list_or_name_the_bad_entry(
        items in prop::collection::vec(range_text(), 0..5),
    ) {
        let list = items.join(",");
        match Whitelist::new().with_ranges_from_str(&list) {
            Ok(whitelist) => {
                // every entry parsed (after trimming), and no user was added
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let net = parse_ip_range(item).unwrap();
                    prop_assert!(whitelist.contains_ip(net.network()) || net.network().to_canonical() != net.network());
                }
            }
            Err(Error::InvalidIpRange { input, .. }) => {
                let trimmed: Vec<&str> = list.split(',').map(str::trim).collect();
                prop_assert!(trimmed.contains(&input.as_str()), "{:?} not an entry of {:?}", input, list);
                prop_assert!(parse_ip_range(&input).is_err());
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", list, other),
        }
    }
}

/// The range as `parse_ip_range` stores it: an IPv4-mapped IPv6 range of
/// prefix 96 or more as its IPv4 range.
trait PipeCanonical {
    fn pipe_canonical(self) -> IpNet;
}

impl PipeCanonical for IpNet {
    fn pipe_canonical(self) -> IpNet {
        match self {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap(),
                None => self,
            },
            other => other,
        }
    }
}
