//! Property tests for what the core decodes from outside: stored bytes of
//! any shape through the codec, key segments read back from Redis, user
//! text given to the key builder, and connection URLs (whose password is
//! never shown). Never a panic, always a typed error; round trips where
//! there is an encoder. No Redis needed.

// a failed expectation in a test should panic with the value
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use aeturnis_redis_core::keys::{decode_segment, encode_segment, MAX_SEGMENT_LEN};
use aeturnis_redis_core::{Codec, CodecKind, ConfigError, Error, KeyError, KeySpace, RedisConfig};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A typed value with nested shapes, as a caller would store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
    guild: Option<String>,
    scores: BTreeMap<String, i64>,
    ratio: f64,
    flags: (bool, u8),
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        any::<u64>(),
        ".{0,20}",
        prop::collection::vec(".{0,8}", 0..4),
        prop::option::of(".{0,10}"),
        prop::collection::btree_map(".{0,6}", any::<i64>(), 0..4),
        // floats JSON reads back exactly (serde_json's default parser may
        // miss the last bit of arbitrary ones) and NaN is not equal to itself
        any::<i32>().prop_map(|i| f64::from(i) / 8.0),
        any::<(bool, u8)>(),
    )
        .prop_map(|(id, name, tags, guild, scores, ratio, flags)| Profile {
            id,
            name,
            tags,
            guild,
            scores,
            ratio,
            flags,
        })
}

const KINDS: [CodecKind; 2] = [CodecKind::MessagePack, CodecKind::Json];

/// Decodes `bytes` as `T` with `kind`: either a value, or
/// [`Error::Decode`] naming the key. Anything else (another variant, a
/// panic) fails the property.
fn decode_is_typed<T: DeserializeOwned>(
    kind: CodecKind,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    match Codec::new(kind).decode::<T>("props:key", bytes) {
        Ok(_) => Ok(()),
        Err(Error::Decode { key, .. }) => {
            prop_assert_eq!(key, "props:key");
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "{kind:?} decode of {bytes:?} gave {other:?}, not Error::Decode"
        ))),
    }
}

/// A segment of hostile text: the four escaped characters, `%` followed
/// by anything, multi-byte characters, and plain ASCII.
fn segment_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("%".to_owned()),
            Just(":".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("%3A".to_owned()),
            Just("%3a".to_owned()),
            Just("%25".to_owned()),
            Just("%7".to_owned()),
            "[a-zA-Z0-9]{1,3}",
            "\\PC",
            any::<char>().prop_map(String::from),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn should_decode_arbitrary_bytes_into_a_value_or_a_decode_error(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        for kind in KINDS {
            decode_is_typed::<Profile>(kind, &bytes)?;
            decode_is_typed::<String>(kind, &bytes)?;
            decode_is_typed::<u64>(kind, &bytes)?;
            decode_is_typed::<Vec<u32>>(kind, &bytes)?;
            decode_is_typed::<Option<(i8, bool)>>(kind, &bytes)?;
            decode_is_typed::<serde_json::Value>(kind, &bytes)?;
        }
    }

    #[test]
    fn should_refuse_a_truncated_or_extended_encoding_with_a_decode_error(
        value in profile(),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        for kind in KINDS {
            let bytes = Codec::new(kind).encode("k", &value).unwrap();
            // a strict prefix of a value is never a whole value
            let truncated = &bytes[..cut.index(bytes.len())];
            let refused = Codec::new(kind).decode::<Profile>("k", truncated);
            prop_assert!(matches!(refused, Err(Error::Decode { .. })), "{:?}", refused);
            let mut extended = bytes.clone();
            extended.extend_from_slice(&extra);
            decode_is_typed::<Profile>(kind, &extended)?;
        }
        // MessagePack refuses trailing bytes after a complete value
        let mut extended = Codec::new(CodecKind::MessagePack).encode("k", &value).unwrap();
        extended.extend_from_slice(&extra);
        let refused = Codec::new(CodecKind::MessagePack).decode::<Profile>("k", &extended);
        prop_assert!(matches!(refused, Err(Error::Decode { .. })), "{:?}", refused);
    }

    #[test]
    fn should_round_trip_every_value_through_both_codecs(value in profile()) {
        for kind in KINDS {
            let codec = Codec::new(kind);
            let bytes = codec.encode("k", &value).unwrap();
            let back: Profile = codec.decode("k", &bytes).unwrap();
            prop_assert_eq!(&back, &value);
        }
    }

    #[test]
    fn should_read_any_utf8_text_written_by_another_client_as_a_string(text in ".{0,40}") {
        for kind in KINDS {
            let codec = Codec::new(kind);
            let read: String = codec.decode("k", text.as_bytes()).unwrap();
            // text that happens to be a JSON or MessagePack string decodes
            // as that string; any other text reads back as itself
            let encoded_string: Result<String, _> = match kind {
                CodecKind::Json => serde_json::from_str::<String>(&text).map_err(|e| e.to_string()),
                _ => rmp_decode_string(text.as_bytes()),
            };
            match encoded_string {
                Ok(s) => prop_assert_eq!(read, s),
                Err(_) => prop_assert_eq!(read, text.clone()),
            }
        }
    }

    #[test]
    fn should_decode_any_segment_text_or_refuse_it_as_not_encoded(text in segment_text()) {
        match decode_segment(&text) {
            // what decodes is exactly what the encoder writes for it
            Ok(raw) => prop_assert_eq!(encode_segment(&raw), text),
            Err(KeyError::NotEncoded(given)) => prop_assert_eq!(given, text),
            Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
    }

    #[test]
    fn should_round_trip_any_text_through_the_segment_encoding(text in segment_text()) {
        let encoded = encode_segment(&text);
        prop_assert!(!encoded.contains([':', '{', '}']), "{}", encoded);
        prop_assert_eq!(decode_segment(&encoded).unwrap(), text);
    }

    #[test]
    fn should_build_a_key_from_any_user_text_or_give_a_typed_key_error(
        text in prop_oneof![segment_text(), ".{0,300}", "\\PC{0,80}", Just(String::new())],
    ) {
        let keys = KeySpace::new("props:").unwrap();
        match keys.key("user").id(&text).build() {
            Ok(key) => {
                // one segment after the namespace, reading back as the text
                let seg = key.as_str().strip_prefix("props:user:").unwrap();
                prop_assert_eq!(decode_segment(seg).unwrap(), text);
            }
            Err(KeyError::Empty) => prop_assert!(text.is_empty()),
            Err(KeyError::SegmentTooLong { len, max }) => {
                prop_assert_eq!((len, max), (text.len(), MAX_SEGMENT_LEN));
            }
            Err(KeyError::TooLong { len, .. }) => prop_assert!(len > text.len()),
            Err(KeyError::ControlCharacter(c)) => {
                prop_assert!(c.is_control() && text.contains(c), "{:?} in {:?}", c, text);
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
    }

    #[test]
    fn should_accept_a_prefix_or_refuse_it_with_a_typed_key_error(prefix in ".{0,140}") {
        match KeySpace::new(&prefix) {
            Ok(keys) => prop_assert_eq!(keys.prefix(), prefix.as_str()),
            Err(
                KeyError::Empty
                | KeyError::TooLong { .. }
                | KeyError::SegmentTooLong { .. }
                | KeyError::InvalidCharacter { .. }
                | KeyError::ControlCharacter(_),
            ) => {}
            Err(other) => prop_assert!(false, "{:?} gave {:?}", prefix, other),
        }
    }
}

fn rmp_decode_string(bytes: &[u8]) -> Result<String, String> {
    // the codec itself, with no text fallback, is not public: a complete
    // MessagePack string is one whose decode consumes every byte
    let codec = Codec::new(CodecKind::MessagePack);
    let as_value: Result<serde_json::Value, _> = codec.decode("k", bytes);
    match as_value {
        Ok(serde_json::Value::String(s)) if s.as_bytes() != bytes => Ok(s),
        _ => Err("not a MessagePack string".to_owned()),
    }
}

/// A URL assembled from parts that are each right or wrong, with the
/// password `password` in its user info.
fn url_with_password(password: &'static str) -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "redis",
            "rediss",
            "redis-cluster",
            "redis-sentinel",
            "REDIS",
            "http",
            "",
        ]),
        prop::option::of("[a-z_]{0,8}"),
        prop_oneof![
            "[a-z0-9.-]{0,12}",
            Just("[::1]".to_owned()),
            Just(String::new())
        ],
        prop::option::of(prop_oneof!["[0-9]{1,6}", "[a-z0-9-]{0,4}"]),
        prop::option::of(prop_oneof!["[0-9]{1,3}", ".{0,4}"]),
        prop::option::of(prop_oneof![
            "node=[a-z]{1,4}:[0-9]{1,5}",
            "sentinelServiceName=[a-z]{0,4}",
            ".{0,8}",
        ]),
    )
        .prop_map(move |(scheme, user, host, port, db, query)| {
            let mut url = format!("{scheme}://{}:{password}@{host}", user.unwrap_or_default());
            if let Some(port) = port {
                url.push_str(&format!(":{port}"));
            }
            if let Some(db) = db {
                url.push_str(&format!("/{db}"));
            }
            if let Some(query) = query {
                url.push_str(&format!("?{query}"));
            }
            url
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_parse_any_url_or_refuse_it_naming_the_url_without_its_password(
        url in url_with_password("Pw7Secret9Kx"),
    ) {
        const PASSWORD: &str = "Pw7Secret9Kx";
        match RedisConfig::from_url(&url) {
            Ok(config) => {
                let debug = format!("{config:?}");
                prop_assert!(!debug.contains(PASSWORD), "{}", debug);
            }
            Err(e @ ConfigError::Invalid { .. }) => {
                prop_assert_eq!(e.variable(), "url");
                let (shown, debug) = (e.to_string(), format!("{e:?}"));
                prop_assert!(!shown.contains(PASSWORD) && !debug.contains(PASSWORD), "{}", debug);
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", url, other),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_never_show_a_password_of_any_printable_characters(
        // `Zq` marks both ends, so the text is found only where the password is
        password in "Zq[!-~]{4,10}Zq",
        host in "[a-z]{1,6}",
        port in "[0-9]{1,5}",
    ) {
        let url = format!("redis://u:{password}@{host}:{port}/0");
        let shown = match RedisConfig::from_url(&url) {
            Ok(config) => format!("{config:?}"),
            Err(e) => format!("{e} {e:?}"),
        };
        prop_assert!(!shown.contains(&password), "{} -> {}", url, shown);
    }
}
