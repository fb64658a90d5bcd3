//! Ids: [`UserId`], [`CharacterId`] and the session token [`SessionId`].
//!
//! A session id is `TTTT.RRRRRRRRRRRRRRRRRRRRRR`: a 4-character slot tag
//! derived from the user id (16 bits of an FNV-1a hash, lowercase hex), a
//! dot, and 22 base64url characters carrying a random UUID v4 (122 bits
//! from the operating system's CSPRNG). The tag is not a secret: it only
//! routes the session to the hash slot of its user's index, so that every
//! key of one user shares a cluster slot (see the crate docs). Parsing is
//! strict: exactly 27 bytes, the exact alphabets, canonical base64url, and
//! the UUID version and variant bits; anything else is refused before any
//! Redis round trip.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::{Error, TokenError};

/// Longest accepted user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;
/// Longest accepted character id, in bytes.
pub const MAX_CHARACTER_ID_LEN: usize = 128;

const TAG_LEN: usize = 4;
const RANDOM_LEN: usize = 22;
/// Length of a session token.
pub const TOKEN_LEN: usize = TAG_LEN + 1 + RANDOM_LEN;

fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), Error> {
    let reason = if text.is_empty() {
        "empty".to_owned()
    } else if text.len() > max {
        format!("{} bytes long, the limit is {max}", text.len())
    } else if let Some(c) = text.chars().find(|c| c.is_control()) {
        format!("contains control character {c:?}")
    } else {
        return Ok(());
    };
    Err(Error::InvalidId { what, reason })
}

/// A user id: 1 to 128 bytes of text without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Validates `id`.
    ///
    /// ```
    /// use aeturnis_session::UserId;
    /// assert!(UserId::new("player-42").is_ok());
    /// use aeturnis_session::Error;
    /// assert!(matches!(UserId::new(""), Err(Error::InvalidId { .. })));
    /// assert!(matches!(UserId::new("a\nb"), Err(Error::InvalidId { .. })));
    /// ```
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        check_text("user id", &id, MAX_USER_ID_LEN)?;
        Ok(UserId(id))
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 4-character slot tag every session id of this user carries.
    #[must_use]
    pub fn slot_tag(&self) -> String {
        tag_of(self.0.as_bytes())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        UserId::new(s)
    }
}

/// A character id bound to a session: 1 to 128 bytes without control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CharacterId(String);

impl CharacterId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        check_text("character id", &id, MAX_CHARACTER_ID_LEN)?;
        Ok(CharacterId(id))
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CharacterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 16 bits of FNV-1a 64 of the user id, as 4 lowercase hex characters.
fn tag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let folded = (h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) & 0xffff;
    format!("{folded:04x}")
}

/// A session id, which is also the bearer token a client presents (cookie
/// or header value). Unforgeable: 122 random bits.
///
/// ```
/// use aeturnis_session::{SessionId, UserId};
/// let user = UserId::new("player-42")?;
/// let id = SessionId::generate(&user);
/// assert_eq!(id.as_str().len(), 27);
/// assert_eq!(SessionId::parse(id.as_str())?, id);
/// assert!(matches!(
///     SessionId::parse("not-a-token"),
///     Err(aeturnis_session::TokenError::Length { len: 11, expected: 27 })
/// ));
/// # Ok::<(), aeturnis_session::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl fmt::Debug for SessionId {
    // a token is a credential: show the tag and a short prefix only
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}.{}…)", self.tag(), &self.random_part()[..4])
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SessionId {
    /// A fresh id for a session of `user`: the user's slot tag and a random
    /// UUID v4 from the operating system's CSPRNG.
    #[must_use]
    pub fn generate(user: &UserId) -> Self {
        SessionId::generate_with_tag(&user.slot_tag())
    }

    /// A fresh id with a given (valid) slot tag.
    pub(crate) fn generate_with_tag(tag: &str) -> Self {
        let random = uuid::Uuid::new_v4();
        let mut s = String::with_capacity(TOKEN_LEN);
        s.push_str(tag);
        s.push('.');
        encode_b64(random.as_bytes(), &mut s);
        SessionId(s)
    }

    /// Parses a token strictly. No Redis round trip.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let b = token.as_bytes();
        if b.is_empty() {
            return Err(TokenError::Empty);
        }
        if b.len() != TOKEN_LEN {
            return Err(TokenError::Length {
                len: b.len(),
                expected: TOKEN_LEN,
            });
        }
        let (tag, rest) = b.split_at(TAG_LEN);
        if !tag.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) || rest[0] != b'.' {
            return Err(TokenError::Malformed);
        }
        let bytes = decode_b64(&rest[1..]).ok_or(TokenError::Malformed)?;
        let uuid = uuid::Uuid::from_bytes(bytes);
        if uuid.get_version_num() != 4 || uuid.get_variant() != uuid::Variant::RFC4122 {
            return Err(TokenError::Malformed);
        }
        Ok(SessionId(token.to_owned()))
    }

    /// The token text (what the client stores).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slot tag part.
    #[must_use]
    pub fn tag(&self) -> &str {
        &self.0[..TAG_LEN]
    }

    /// The random part, used as the member in the user's index.
    pub(crate) fn random_part(&self) -> &str {
        &self.0[TAG_LEN + 1..]
    }

    /// Whether this id carries `user`'s slot tag (a requirement for
    /// [`SessionManager::create_with_id`](crate::SessionManager::create_with_id)).
    #[must_use]
    pub fn belongs_to_slot_of(&self, user: &UserId) -> bool {
        self.tag() == user.slot_tag()
    }

    pub(crate) fn from_parts(tag: &str, random: &str) -> Result<Self, TokenError> {
        SessionId::parse(&format!("{tag}.{random}"))
    }
}

impl FromStr for SessionId {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        SessionId::parse(s)
    }
}

/// Appends the 22 base64url characters (RFC 4648 §5, no padding) of 16
/// bytes to `out`.
fn encode_b64(bytes: &[u8; 16], out: &mut String) {
    let mut buf = [0u8; RANDOM_LEN];
    let n = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut buf)
        .unwrap_or_default();
    // base64url output is ASCII, so always UTF-8
    out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
}

/// The 16 bytes of exactly 22 base64url characters, strictly: no padding,
/// only the URL-safe alphabet, and the 4 unused low bits of the last
/// character zero (the engine refuses trailing bits), so each id has
/// exactly one spelling. Decodes into a fixed array: no allocation.
fn decode_b64(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != RANDOM_LEN {
        return None;
    }
    let mut out = [0u8; 16];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut out).ok()?;
    (n == 16).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn should_round_trip_generated_ids() {
        let u = user("player-42");
        for _ in 0..1000 {
            let id = SessionId::generate(&u);
            assert_eq!(id.as_str().len(), TOKEN_LEN);
            assert!(id.belongs_to_slot_of(&u));
            assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn should_derive_a_stable_tag_from_the_user() {
        assert_eq!(user("player-42").slot_tag(), user("player-42").slot_tag());
        assert_eq!(user("player-42").slot_tag(), tag_of(b"player-42"));
        let tags: std::collections::HashSet<_> = (0..1000)
            .map(|i| user(&format!("u{i}")).slot_tag())
            .collect();
        assert!(tags.len() > 950, "tags spread over slots: {}", tags.len());
    }

    #[test]
    fn should_refuse_malformed_tokens() {
        let good = SessionId::generate(&user("a")).to_string();
        assert_eq!(SessionId::parse(""), Err(TokenError::Empty));
        assert!(matches!(
            SessionId::parse(&good[1..]),
            Err(TokenError::Length { .. })
        ));
        assert!(matches!(
            SessionId::parse(&"x".repeat(10_000)),
            Err(TokenError::Length { .. })
        ));
        let mut upper_tag = good.clone();
        upper_tag.replace_range(0..1, "G");
        assert_eq!(SessionId::parse(&upper_tag), Err(TokenError::Malformed));
        let no_dot = good.replacen('.', "-", 1);
        assert_eq!(SessionId::parse(&no_dot), Err(TokenError::Malformed));
        let mut bad_char = good.clone();
        bad_char.replace_range(10..11, "*");
        assert_eq!(SessionId::parse(&bad_char), Err(TokenError::Malformed));
        // a non-canonical last character
        let mut non_canonical = good;
        non_canonical.replace_range(TOKEN_LEN - 1.., "B");
        assert_eq!(SessionId::parse(&non_canonical), Err(TokenError::Malformed));
        // 16 bytes that are not a UUID v4
        let mut s = String::from("abcd.");
        encode_b64(&[0u8; 16], &mut s);
        assert_eq!(SessionId::parse(&s), Err(TokenError::Malformed));
        // multi-byte UTF-8 of the right byte length
        let utf8 = format!("abcd.{}", "é".repeat(11));
        assert_eq!(utf8.len(), TOKEN_LEN);
        assert_eq!(SessionId::parse(&utf8), Err(TokenError::Malformed));
    }

    #[test]
    fn should_encode_base64url_as_rfc_4648_without_padding() {
        // RFC 4648 §5 alphabet: 0xfb 0xff -> "-_" characters, no '=' padding
        let mut s = String::new();
        encode_b64(&[0xfb; 16], &mut s);
        assert_eq!(s, "-_v7-_v7-_v7-_v7-_v7-w");
        assert_eq!(decode_b64(s.as_bytes()), Some([0xfb; 16]));
        let mut z = String::new();
        encode_b64(&[0; 16], &mut z);
        assert_eq!(z, "A".repeat(RANDOM_LEN));
        // the same text with padding, or the standard alphabet, is refused
        assert_eq!(decode_b64(format!("{}==", &s[..20]).as_bytes()), None);
        assert_eq!(decode_b64(s.replace('-', "+").as_bytes()), None);
        assert_eq!(decode_b64(s.replace('_', "/").as_bytes()), None);
        // every non-canonical last character (low 4 bits set) is refused
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (i, c) in alphabet.iter().enumerate() {
            let mut t = z.clone().into_bytes();
            t[RANDOM_LEN - 1] = *c;
            assert_eq!(
                decode_b64(&t).is_some(),
                i % 16 == 0,
                "last character {}",
                char::from(*c)
            );
        }
    }

    #[test]
    fn should_not_print_the_whole_token_in_debug() {
        let id = SessionId::generate(&user("a"));
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(id.random_part()));
    }

    #[test]
    fn should_validate_user_and_character_ids() {
        let refused = |r: Result<(), Error>, what: &str, why: &str| {
            assert!(
                matches!(&r, Err(Error::InvalidId { what: w, reason }) if *w == what && reason.contains(why)),
                "{what}: {r:?}"
            );
        };
        refused(UserId::new("").map(drop), "user id", "empty");
        refused(
            UserId::new("x".repeat(MAX_USER_ID_LEN + 1)).map(drop),
            "user id",
            "129 bytes long, the limit is 128",
        );
        assert!(UserId::new("x".repeat(MAX_USER_ID_LEN)).is_ok());
        refused(
            UserId::new("a\u{7}").map(drop),
            "user id",
            "control character",
        );
        assert!(UserId::new("a:b{c}%").is_ok());
        refused(CharacterId::new("").map(drop), "character id", "empty");
        refused(
            CharacterId::new("c".repeat(MAX_CHARACTER_ID_LEN + 1)).map(drop),
            "character id",
            "129 bytes long",
        );
        assert!(CharacterId::new("hero-1").is_ok());
    }
}
