//! Value codec: MessagePack (rmp-serde, compact) by default, JSON selectable.
//!
//! Decoding falls back to reading the stored bytes as a plain UTF-8 string
//! when they are not valid for the codec, so a value that another client
//! wrote with a plain `SET key "text"` reads back as a `String`.

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Serialize;

use crate::error::{Error, Result};

/// Which wire format values use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// MessagePack through rmp-serde, compact (struct fields as arrays).
    /// Smaller and faster than JSON; the default.
    #[default]
    MessagePack,
    /// JSON through serde_json; readable with `redis-cli`.
    Json,
}

/// Encodes and decodes typed values. Cheap to copy.
///
/// ```
/// use aeturnis_redis_core::{Codec, CodecKind};
/// let codec = Codec::new(CodecKind::MessagePack);
/// let bytes = codec.encode("user:1", &(7u32, "sword"))?;
/// let back: (u32, String) = codec.decode("user:1", &bytes)?;
/// assert_eq!(back, (7, "sword".to_owned()));
/// // a plain string written by another client reads as a string
/// let plain: String = codec.decode("greeting", b"hello world")?;
/// assert_eq!(plain, "hello world");
/// # Ok::<(), aeturnis_redis_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Codec {
    kind: CodecKind,
}

impl Codec {
    /// A codec of the given kind.
    #[must_use]
    pub const fn new(kind: CodecKind) -> Self {
        Codec { kind }
    }

    /// The wire format.
    #[must_use]
    pub const fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Encodes `value`; `key` only names the key in the error.
    pub fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>> {
        let encoded = match self.kind {
            CodecKind::MessagePack => rmp_serde::to_vec(value).map_err(|e| e.to_string()),
            CodecKind::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        encoded.map_err(|reason| Error::Encode {
            key: key.to_owned(),
            reason,
        })
    }

    /// Decodes `bytes` read from `key` into `T`.
    ///
    /// When the bytes are not a complete value of the codec's format, and they
    /// are UTF-8, they are offered to `T` as a plain string: this is how text
    /// written by other clients reads back as a `String`. Anything else gives
    /// [`Error::Decode`] naming the key.
    pub fn decode<T: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Result<T> {
        let primary = match self.kind {
            CodecKind::MessagePack => decode_msgpack::<T>(bytes),
            CodecKind::Json => serde_json::from_slice::<T>(bytes).map_err(|e| e.to_string()),
        };
        primary.or_else(|reason| {
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| {
                    let de: StrDeserializer<'_, ValueError> = text.into_deserializer();
                    T::deserialize(de).ok()
                })
                .ok_or_else(|| Error::Decode {
                    key: key.to_owned(),
                    reason,
                })
        })
    }
}

fn decode_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    let mut de = rmp_serde::Deserializer::new(bytes);
    let value = T::deserialize(&mut de).map_err(|e| e.to_string())?;
    let rest = de.into_inner();
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} trailing bytes after the value", rest.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Profile {
        id: u64,
        name: String,
        tags: Vec<String>,
        guild: Option<String>,
    }

    fn profile() -> Profile {
        Profile {
            id: 42,
            name: "Ælfrida".into(),
            tags: vec!["pvp".into()],
            guild: None,
        }
    }

    #[test]
    fn should_round_trip_both_codecs() {
        for kind in [CodecKind::MessagePack, CodecKind::Json] {
            let codec = Codec::new(kind);
            let bytes = codec.encode("k", &profile()).unwrap();
            assert_eq!(codec.decode::<Profile>("k", &bytes).unwrap(), profile());
        }
    }

    #[test]
    fn should_use_compact_msgpack() {
        let bytes = Codec::default().encode("k", &profile()).unwrap();
        // compact: a 4-element array, no field names
        assert_eq!(bytes[0], 0x94);
        assert!(!bytes.windows(4).any(|w| w == b"name"));
    }

    #[test]
    fn should_read_plain_strings_written_by_other_clients() {
        for kind in [CodecKind::MessagePack, CodecKind::Json] {
            let codec = Codec::new(kind);
            let s: String = codec.decode("k", b"hello there").unwrap();
            assert_eq!(s, "hello there");
            let s: String = codec.decode("k", b"42").unwrap();
            assert_eq!(s, "42");
        }
    }

    #[test]
    fn should_give_typed_decode_errors_naming_the_key() {
        for kind in [CodecKind::MessagePack, CodecKind::Json] {
            let codec = Codec::new(kind);
            let err = codec
                .decode::<Profile>("user:7:profile", b"\xff\xfe garbage")
                .unwrap_err();
            match err {
                Error::Decode { key, .. } => assert_eq!(key, "user:7:profile"),
                other => panic!("unexpected error {other:?}"),
            }
        }
        let err = Codec::default()
            .decode::<Profile>("k", &[0x94, 0x01])
            .unwrap_err();
        assert!(matches!(err, Error::Decode { .. }));
    }

    #[test]
    fn should_reject_trailing_bytes() {
        let mut bytes = Codec::default().encode("k", &7u32).unwrap();
        bytes.push(0x01);
        let err = Codec::default().decode::<u32>("k", &bytes).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }
}
