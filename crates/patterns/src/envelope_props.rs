//! Property tests of the stored envelope ([`super`]): bytes of any shape
//! decode to an entry, a lease, or `None` (not ours), never a panic; what
//! the encoder writes decodes to itself.

use aeturnis_redis_core::fred::bytes::Bytes;
use proptest::prelude::*;

use super::{decode, entry, lease, Entry, Stored, Token, MAGIC};

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..40))
}

/// Bytes of every kind: random, and random after the magic byte and a
/// kind byte, of lengths around the header's.
fn stored() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        (
            prop::sample::select(vec![b'E', b'L', b'X', 0]),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(kind, rest)| [vec![MAGIC, kind], rest].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_decode_any_bytes_to_an_entry_a_lease_or_not_ours(bytes in stored()) {
        match decode(&Bytes::from(bytes.clone())) {
            None => {}
            Some(Stored::Lease(token)) => {
                prop_assert_eq!(bytes.len(), 10);
                prop_assert_eq!(&lease(token), &bytes);
            }
            Some(Stored::Entry(e)) => {
                prop_assert!(bytes.len() >= 31);
                // re-encoding gives the same bytes, up to the unused flag bits
                let again = entry(e.token, e.soft_at_ms, e.hard_at_ms, e.delta_ms, e.value.as_deref());
                prop_assert_eq!(&again[..30], &bytes[..30]);
                prop_assert_eq!(&again[31..], if e.value.is_some() { &bytes[31..] } else { &[][..] });
            }
        }
        // a first byte other than the magic one is never ours
        if bytes.first() != Some(&MAGIC) {
            prop_assert_eq!(decode(&Bytes::from(bytes)), None);
        }
    }

    #[test]
    fn should_round_trip_every_entry_and_lease(
        token in any::<Token>(),
        soft in any::<u64>(),
        hard in any::<u64>(),
        delta in any::<u32>(),
        value in value(),
    ) {
        let bytes = Bytes::from(entry(token, soft, hard, delta, value.as_deref()));
        let expected = Entry {
            token,
            soft_at_ms: soft,
            hard_at_ms: hard,
            delta_ms: delta,
            value: value.map(Bytes::from),
        };
        prop_assert_eq!(decode(&bytes), Some(Stored::Entry(expected)));
        prop_assert_eq!(decode(&Bytes::from(lease(token))), Some(Stored::Lease(token)));
    }

    #[test]
    fn should_not_decode_a_cut_entry_header(
        token in any::<Token>(),
        value in value(),
        cut in 2..31usize,
    ) {
        let mut bytes = entry(token, 1, 2, 3, value.as_deref());
        bytes.truncate(cut);
        // a cut header is not an entry; 10 bytes of an entry are not a lease
        prop_assert_eq!(decode(&Bytes::from(bytes)), None);
    }
}
