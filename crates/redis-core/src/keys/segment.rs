//! One key segment: validation, percent-encoding and its inverse, and
//! escaping for `SCAN MATCH` patterns.

use super::{KeyError, MAX_SEGMENT_LEN};

pub(super) fn check_fixed(part: &str) -> Result<(), KeyError> {
    if part.is_empty() {
        return Err(KeyError::Empty);
    }
    if part.len() > MAX_SEGMENT_LEN {
        return Err(KeyError::SegmentTooLong {
            len: part.len(),
            max: MAX_SEGMENT_LEN,
        });
    }
    if !part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(KeyError::InvalidCharacter {
            text: part.to_owned(),
            allowed: "ASCII letters, digits and `_-.`",
        });
    }
    Ok(())
}

/// Checks a user segment: non-empty, at most [`MAX_SEGMENT_LEN`] bytes, no
/// control characters.
pub fn check_user(text: &str) -> Result<(), KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    if text.len() > MAX_SEGMENT_LEN {
        return Err(KeyError::SegmentTooLong {
            len: text.len(),
            max: MAX_SEGMENT_LEN,
        });
    }
    // ASCII text (ids, tokens, addresses) is checked byte by byte; for
    // ASCII, `is_ascii_control` is exactly `char::is_control`
    let control = if text.is_ascii() {
        text.bytes().find(u8::is_ascii_control).map(char::from)
    } else {
        text.chars().find(|c| c.is_control())
    };
    if let Some(c) = control {
        return Err(KeyError::ControlCharacter(c));
    }
    Ok(())
}

/// Percent-encodes `%`, `:`, `{` and `}` in user text.
#[must_use]
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    encode_into(text, &mut out);
    out
}

/// The inverse of [`encode_segment`]: `%25 %3A %7B %7D` back to
/// `% : { }`. Use it on a segment of a key read back from Redis (a `SCAN`
/// result).
///
/// ```
/// use aeturnis_redis_core::keys::{decode_segment, encode_segment};
/// let raw = "guild:{7}%";
/// assert_eq!(decode_segment(&encode_segment(raw))?, raw);
/// assert!(decode_segment("50%").is_err());
/// # Ok::<(), aeturnis_redis_core::KeyError>(())
/// ```
///
/// # Errors
/// [`KeyError::NotEncoded`] for text the encoder cannot have written (a
/// `%` not followed by one of the four escapes, or a raw `:`, `{` or `}`).
pub fn decode_segment(text: &str) -> Result<String, KeyError> {
    let not_encoded = || KeyError::NotEncoded(text.to_owned());
    if text.contains([':', '{', '}']) {
        return Err(not_encoded());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).ok_or_else(not_encoded)?;
        out.push(match escape {
            "%25" => '%',
            "%3A" => ':',
            "%7B" => '{',
            "%7D" => '}',
            _ => return Err(not_encoded()),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn encode_into(text: &str, out: &mut String) {
    // runs of plain text are copied whole (the common case: all of it)
    let mut rest = text;
    while let Some(i) = rest.find(['%', ':', '{', '}']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'%' => "%25",
            b':' => "%3A",
            b'{' => "%7B",
            _ => "%7D",
        });
        // the four are ASCII: the next byte starts a character
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Escapes the glob characters `* ? [ ] \` so `text` matches itself
/// literally in `SCAN MATCH` / `KEYS`.
#[must_use]
pub fn escape_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_refuse_to_decode_text_the_encoder_cannot_write() {
        for bad in ["%", "a%2", "%41", "a:b", "{x}", "%3a"] {
            assert_eq!(
                decode_segment(bad),
                Err(KeyError::NotEncoded(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(decode_segment("plain").as_deref(), Ok("plain"));
    }
}
