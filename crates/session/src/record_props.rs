//! Property tests of the stored session form ([`super`]): bytes read back
//! from Redis of any shape decode to a session or [`Error::Corrupt`] naming
//! the key, never a panic; what the encoder writes decodes to itself, and
//! any cut of it is refused.

use std::net::IpAddr;

use proptest::prelude::*;

use super::{decode, encode_tail, header, time, Header, VERSION};
use crate::error::Error;
use crate::id::{CharacterId, SessionId, UserId};
use crate::metadata::SessionMetadata;

fn stored(created: u64, last: u64, abs: u64, tail: &[u8]) -> Vec<u8> {
    let mut v = vec![VERSION];
    v.extend_from_slice(&created.to_be_bytes());
    v.extend_from_slice(&last.to_be_bytes());
    v.extend_from_slice(&abs.to_be_bytes());
    v.extend_from_slice(tail);
    v
}

fn user() -> impl Strategy<Value = UserId> {
    "[^\\p{Cc}]{1,40}".prop_map(|u| UserId::new(u).unwrap())
}

fn metadata() -> impl Strategy<Value = SessionMetadata> {
    (
        prop::option::of(any::<IpAddr>()),
        prop::option::of(".{0,60}"),
        prop::option::of(".{0,20}"),
        prop::option::of(".{0,20}"),
    )
        .prop_map(|(ip, agent, device, location)| {
            let mut m = SessionMetadata::new();
            m.ip_address = ip;
            m.user_agent = agent;
            m.device = device;
            m.location = location;
            m
        })
}

/// A record's timestamps: real ones and the extremes.
fn millis() -> impl Strategy<Value = u64> {
    prop_oneof![0..4_000_000_000_000u64, Just(u64::MAX), Just(0)]
}

/// Checks `decode`'s answer for `bytes`: a session whose header agrees with
/// [`header`], or `Corrupt` naming the key.
fn decodes_or_corrupt(id: &SessionId, bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode(id.clone(), "props:key", bytes, 1_000, 2_000) {
        Ok(s) => {
            let h =
                header(bytes).ok_or_else(|| TestCaseError::fail("a session without a header"))?;
            prop_assert_eq!(s.created_at, time(h.created));
            prop_assert_eq!(s.expires_at, time(3_000));
        }
        Err(Error::Corrupt { key, reason }) => {
            prop_assert_eq!(key, "props:key");
            prop_assert!(!reason.is_empty());
        }
        Err(other) => prop_assert!(false, "{:?} gave {:?}", bytes, other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_decode_any_stored_bytes_to_a_session_or_a_corrupt_error(
        raw in prop::collection::vec(any::<u8>(), 0..80),
        tail in prop::collection::vec(any::<u8>(), 0..60),
        (c, l, a) in (millis(), millis(), millis()),
    ) {
        let id = SessionId::generate(&UserId::new("u").unwrap());
        decodes_or_corrupt(&id, &raw)?;
        // a valid header before random fields
        decodes_or_corrupt(&id, &stored(c, l, a, &tail))?;
        // header() never panics, and reads exactly the three timestamps
        let h = header(&stored(c, l, a, &tail));
        prop_assert_eq!(h, Some(Header { created: c, last_seen: l, absolute: a }));
        let _ = header(&raw);
    }

    #[test]
    fn should_round_trip_every_session_and_refuse_every_cut_or_extension(
        user in user(),
        character in prop::option::of("[^\\p{Cc}]{1,20}"),
        meta in metadata(),
        (c, l, a) in (millis(), millis(), millis()),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..4),
    ) {
        let character = character.map(|c| CharacterId::new(c).unwrap());
        let id = SessionId::generate(&user);
        let bytes = stored(c, l, a, &encode_tail(&user, character.as_ref(), &meta));
        let s = decode(id.clone(), "k", &bytes, 10, 5).unwrap();
        prop_assert_eq!(&s.user, &user);
        prop_assert_eq!(&s.character, &character);
        prop_assert_eq!(&s.metadata, &meta);
        prop_assert_eq!(s.created_at, time(c));
        prop_assert_eq!(s.last_seen, time(l));
        prop_assert_eq!(s.absolute_expires_at, time(a));
        prop_assert_eq!(s.expires_at, time(15));

        let cut_at = cut.index(bytes.len());
        let cut_read = decode(id.clone(), "k", &bytes[..cut_at], 0, 0);
        prop_assert!(matches!(cut_read, Err(Error::Corrupt { .. })), "{:?}", cut_read);
        let extended = [bytes, extra].concat();
        let extended_read = decode(id, "k", &extended, 0, 0);
        prop_assert!(matches!(extended_read, Err(Error::Corrupt { .. })), "{:?}", extended_read);
    }
}
