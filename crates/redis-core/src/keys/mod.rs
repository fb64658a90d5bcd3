//! The key namespace: validated, collision-free keys and safe `SCAN MATCH`
//! patterns.
//!
//! Every key is `PREFIX` followed by `:`-separated segments. Fixed segments
//! (`part`) are code-chosen names such as `user` or `profile`; user segments
//! (`id`, `tag`) come from user text and are percent-encoded so that:
//!
//! * `:` in user text cannot forge another namespace (`%3A`);
//! * `{` and `}` cannot move the key to another cluster slot (`%7B`, `%7D`);
//! * `%` itself is encoded (`%25`), so encoding is injective.
//!
//! Empty segments, control characters and over-long segments or keys are
//! typed errors, never truncated.
//!
//! ```
//! use aeturnis_redis_core::KeySpace;
//! let keys = KeySpace::new("aeturnis:")?;
//! let k = keys.key("user").id("42").part("profile").build()?;
//! assert_eq!(k.as_str(), "aeturnis:user:42:profile");
//! let k = keys.key("user").id("a:b{c}").build()?;
//! assert_eq!(k.as_str(), "aeturnis:user:a%3Ab%7Bc%7D");
//! // keys that must share a cluster slot use a hash tag
//! let s = keys.key("session").tag("42").id("abc").build()?;
//! assert_eq!(s.as_str(), "aeturnis:session:{42}:abc");
//! // user text in a SCAN pattern is escaped
//! assert_eq!(keys.pattern("user").id("a*").any().build()?, "aeturnis:user:a\\*:*");
//! # Ok::<(), aeturnis_redis_core::KeyError>(())
//! ```

use std::fmt;
use std::sync::Arc;

mod segment;

use segment::{check_fixed, encode_into};
pub use segment::{check_user, decode_segment, encode_segment, escape_pattern};

/// Longest accepted user or fixed segment, in bytes of input.
pub const MAX_SEGMENT_LEN: usize = 512;
/// Longest accepted complete key, in bytes.
pub const MAX_KEY_LEN: usize = 2048;
/// Longest accepted prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 128;

/// Why a key, segment or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A segment (or the prefix) is empty.
    #[error("empty key segment")]
    Empty,
    /// A segment is longer than [`MAX_SEGMENT_LEN`].
    #[error("key segment is {len} bytes long, the limit is {max}")]
    SegmentTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The whole key is longer than [`MAX_KEY_LEN`].
    #[error("key is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A segment holds a control character.
    #[error("key segment contains control character {0:?}")]
    ControlCharacter(char),
    /// A fixed segment or the prefix holds a character it may not hold.
    #[error("`{text}` may only contain {allowed}")]
    InvalidCharacter {
        /// The offending text.
        text: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A key was given two hash tags.
    #[error("a key can carry only one hash tag")]
    DuplicateTag,
    /// Text read back from Redis is not a segment this encoder wrote (a
    /// bare `%`, or an escape other than `%25 %3A %7B %7D`).
    #[error("`{0}` is not an encoded key segment")]
    NotEncoded(String),
}

/// A finished, validated key. Converts into fred's key type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RedisKey(String);

impl RedisKey {
    /// The key text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key text, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }

    /// The cluster hash slot of this key.
    #[must_use]
    pub fn slot(&self) -> u16 {
        hash_slot(&self.0)
    }
}

impl fmt::Display for RedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RedisKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<RedisKey> for fred::types::Key {
    fn from(key: RedisKey) -> Self {
        key.0.into()
    }
}

impl From<&RedisKey> for fred::types::Key {
    fn from(key: &RedisKey) -> Self {
        key.0.as_str().into()
    }
}

impl From<RedisKey> for String {
    fn from(key: RedisKey) -> Self {
        key.0
    }
}

/// The cluster hash slot (0..16384) of a key, honouring `{hash tags}`.
#[must_use]
pub fn hash_slot(key: &str) -> u16 {
    fred::util::redis_keyslot(key.as_bytes())
}

/// A key prefix and the builders that hang keys and patterns under it.
/// Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: Arc<str>,
}

impl Default for KeySpace {
    fn default() -> Self {
        KeySpace {
            prefix: Arc::from(Self::DEFAULT_PREFIX),
        }
    }
}

impl KeySpace {
    /// The default prefix, as in the original system.
    pub const DEFAULT_PREFIX: &'static str = "aeturnis:";

    /// A key space under `prefix`: 1 to 128 bytes of ASCII letters, digits and
    /// `:_-.`; no glob characters and no braces, so the prefix can neither
    /// widen a pattern nor pin every key to one cluster slot.
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        if prefix.is_empty() {
            return Err(KeyError::Empty);
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(KeyError::SegmentTooLong {
                len: prefix.len(),
                max: MAX_PREFIX_LEN,
            });
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_-.".contains(&b))
        {
            return Err(KeyError::InvalidCharacter {
                text: prefix.to_owned(),
                allowed: "ASCII letters, digits and `:_-.`",
            });
        }
        Ok(KeySpace {
            prefix: Arc::from(prefix),
        })
    }

    /// The prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Starts a key `PREFIX<namespace>`; `namespace` is a fixed segment.
    pub fn key(&self, namespace: &str) -> KeyBuilder {
        let mut b = KeyBuilder {
            buf: String::with_capacity(64),
            tagged: false,
            error: None,
        };
        b.buf.push_str(&self.prefix);
        b.push_fixed(namespace, false);
        b
    }

    /// Starts a `SCAN MATCH` pattern `PREFIX<namespace>`.
    pub fn pattern(&self, namespace: &str) -> PatternBuilder {
        let mut p = PatternBuilder {
            inner: self.key(namespace),
        };
        p.inner.buf = escape_pattern(&p.inner.buf);
        p
    }

    /// A pattern matching every key of this key space.
    #[must_use]
    pub fn pattern_all(&self) -> String {
        format!("{}*", escape_pattern(&self.prefix))
    }

    /// The key without the prefix, if it is in this key space.
    #[must_use]
    pub fn strip_prefix<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&*self.prefix)
    }
}

/// Builds one key. Errors are kept until [`build`](KeyBuilder::build), so
/// calls chain.
#[derive(Debug, Clone)]
#[must_use]
pub struct KeyBuilder {
    buf: String,
    tagged: bool,
    error: Option<KeyError>,
}

impl KeyBuilder {
    fn push_fixed(&mut self, part: &str, separator: bool) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = check_fixed(part) {
            self.error = Some(e);
            return;
        }
        if separator {
            self.buf.push(':');
        }
        self.buf.push_str(part);
    }

    fn push_user(&mut self, text: &str, tag: bool) {
        if self.error.is_some() {
            return;
        }
        if tag && self.tagged {
            self.error = Some(KeyError::DuplicateTag);
            return;
        }
        if let Err(e) = check_user(text) {
            self.error = Some(e);
            return;
        }
        self.buf.push(':');
        if tag {
            self.tagged = true;
            self.buf.push('{');
        }
        encode_into(text, &mut self.buf);
        if tag {
            self.buf.push('}');
        }
    }

    /// Appends a fixed, code-chosen segment: ASCII letters, digits, `_-.`.
    pub fn part(mut self, part: &str) -> Self {
        self.push_fixed(part, true);
        self
    }

    /// Appends a segment of user text, encoded.
    pub fn id(mut self, text: impl AsRef<str>) -> Self {
        self.push_user(text.as_ref(), false);
        self
    }

    /// Appends a segment of user text as the key's hash tag (`{...}`): keys
    /// with the same tag share a cluster slot.
    pub fn tag(mut self, text: impl AsRef<str>) -> Self {
        self.push_user(text.as_ref(), true);
        self
    }

    /// Finishes the key.
    pub fn build(self) -> Result<RedisKey, KeyError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.buf.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong {
                len: self.buf.len(),
                max: MAX_KEY_LEN,
            });
        }
        Ok(RedisKey(self.buf))
    }
}

/// Builds a `SCAN MATCH` pattern: fixed and user segments are escaped, and
/// only [`any`](PatternBuilder::any) adds a wildcard.
#[derive(Debug, Clone)]
#[must_use]
pub struct PatternBuilder {
    inner: KeyBuilder,
}

impl PatternBuilder {
    /// Appends a fixed segment.
    pub fn part(mut self, part: &str) -> Self {
        let before = self.inner.buf.len();
        self.inner.push_fixed(part, true);
        self.escape_from(before);
        self
    }

    /// Appends an encoded, escaped user segment.
    pub fn id(mut self, text: impl AsRef<str>) -> Self {
        let before = self.inner.buf.len();
        self.inner.push_user(text.as_ref(), false);
        self.escape_from(before);
        self
    }

    /// Appends an encoded, escaped user segment as a hash tag.
    pub fn tag(mut self, text: impl AsRef<str>) -> Self {
        let before = self.inner.buf.len();
        self.inner.push_user(text.as_ref(), true);
        self.escape_from(before);
        self
    }

    /// Appends `:*`, matching one or more remaining segments.
    pub fn any(mut self) -> Self {
        if self.inner.error.is_none() {
            self.inner.buf.push_str(":*");
        }
        self
    }

    fn escape_from(&mut self, from: usize) {
        if self.inner.error.is_none() {
            let tail = escape_pattern(&self.inner.buf[from..]);
            self.inner.buf.truncate(from);
            self.inner.buf.push_str(&tail);
        }
    }

    /// Finishes the pattern.
    pub fn build(self) -> Result<String, KeyError> {
        self.inner.build().map(RedisKey::into_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ks() -> KeySpace {
        KeySpace::new("app:").unwrap()
    }

    #[test]
    fn should_encode_every_special_character_between_plain_runs() {
        let key = ks().key("user").id("%a:é{b}}:").build().unwrap();
        assert_eq!(key.as_str(), "app:user:%25a%3Aé%7Bb%7D%7D%3A");
        let plain = ks().key("user").tag("0f3a").id("Zx-_9").build().unwrap();
        assert_eq!(plain.as_str(), "app:user:{0f3a}:Zx-_9");
    }

    #[test]
    fn should_reject_bad_segments_with_typed_errors() {
        assert_eq!(ks().key("user").id("").build(), Err(KeyError::Empty));
        assert_eq!(ks().key("").build(), Err(KeyError::Empty));
        assert_eq!(
            ks().key("user").id("a\nb").build(),
            Err(KeyError::ControlCharacter('\n'))
        );
        assert_eq!(
            ks().key("user").id("a\0b").build(),
            Err(KeyError::ControlCharacter('\0'))
        );
        assert_eq!(
            ks().key("user").id("a\u{7f}b").build(),
            Err(KeyError::ControlCharacter('\u{7f}'))
        );
        // non-ASCII text: C1 controls too
        assert_eq!(
            ks().key("user").id("é\u{85}").build(),
            Err(KeyError::ControlCharacter('\u{85}'))
        );
        assert!(matches!(
            ks().key("user").id("x".repeat(MAX_SEGMENT_LEN + 1)).build(),
            Err(KeyError::SegmentTooLong { .. })
        ));
        let long = "y".repeat(MAX_SEGMENT_LEN);
        assert!(matches!(
            ks().key("a")
                .id(&long)
                .id(&long)
                .id(&long)
                .id(&long)
                .build(),
            Err(KeyError::TooLong { .. })
        ));
        assert!(matches!(
            ks().key("us er").build(),
            Err(KeyError::InvalidCharacter { .. })
        ));
        assert!(matches!(
            ks().key("user").part("a:b").build(),
            Err(KeyError::InvalidCharacter { .. })
        ));
        assert_eq!(
            ks().key("s").tag("a").tag("b").build(),
            Err(KeyError::DuplicateTag)
        );
        // the first error wins and later calls do not panic
        assert_eq!(
            ks().key("user").id("").part("x").tag("y").build(),
            Err(KeyError::Empty)
        );
    }

    #[test]
    fn should_reject_bad_prefixes() {
        assert_eq!(KeySpace::new(""), Err(KeyError::Empty));
        for bad in ["a b", "a*", "a{b}", "a?", "é:"] {
            assert!(KeySpace::new(bad).is_err(), "{bad}");
        }
        assert!(KeySpace::new(&"p".repeat(MAX_PREFIX_LEN + 1)).is_err());
    }

    #[test]
    fn should_keep_tagged_keys_in_one_slot() {
        let a = ks().key("session").tag("user-1").id("s1").build().unwrap();
        let b = ks().key("index").tag("user-1").build().unwrap();
        assert_eq!(a.slot(), b.slot());
        // braces in user text cannot move the slot
        let evil = ks().key("session").id("{user-2}").build().unwrap();
        let tagged = ks().key("session").tag("user-2").id("s1").build().unwrap();
        assert_eq!(tagged.slot(), hash_slot("user-2"));
        assert_ne!(evil.slot(), tagged.slot());
        assert!(!evil.as_str().contains('{'));
    }

    fn decode(s: &str) -> String {
        decode_segment(s).unwrap_or_default()
    }

    proptest! {
        #[test]
        fn should_encode_injectively(a in "\\PC{1,40}", b in "\\PC{1,40}") {
            let ka = ks().key("u").id(&a).build().unwrap();
            let kb = ks().key("u").id(&b).build().unwrap();
            prop_assert_eq!(a == b, ka == kb);
            let seg = ka.as_str().strip_prefix("app:u:").unwrap();
            let clean = !seg.contains(':') && !seg.contains('{') && !seg.contains('}');
            prop_assert!(clean, "segment {} was not encoded", seg);
            prop_assert_eq!(decode(seg), a);
        }

        #[test]
        fn should_never_split_user_text_into_two_segments(a in "\\PC{1,20}", b in "\\PC{1,20}") {
            let one = ks().key("u").id(format!("{a}:{b}")).build().unwrap();
            let two = ks().key("u").id(&a).id(&b).build().unwrap();
            prop_assert_ne!(one, two);
        }
    }
}
