//! Input checks for the values clients send; a failure is a 400.

use crate::response::ApiError;

/// The longest player name accepted.
pub(crate) const MAX_NAME_LEN: usize = 32;
/// The longest chat message accepted, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 500;
/// The longest item name accepted.
pub(crate) const MAX_ITEM_LEN: usize = 64;
/// The largest damage one combat action may deal.
pub(crate) const MAX_DAMAGE: u32 = 10_000;

/// A player name: 1 to 32 ASCII letters, digits, `_` or `-`. Stricter than
/// the session crate's user ids so names read well in URLs and lock names.
pub(crate) fn player_name<'a>(field: &'static str, name: &'a str) -> Result<&'a str, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(name)
    } else {
        Err(ApiError::bad_request(format!(
            "`{field}` must be 1 to {MAX_NAME_LEN} ASCII letters, digits, `_` or `-`"
        )))
    }
}

/// Free text: not blank, at most `max` characters, no control characters.
pub(crate) fn text<'a>(
    field: &'static str,
    text: &'a str,
    max: usize,
) -> Result<&'a str, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(format!("`{field}` is empty")));
    }
    if text.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "`{field}` contains control characters"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_accept_only_plain_player_names() {
        assert!(player_name("user", "alice_01-x").is_ok());
        assert!(player_name("user", "").is_err());
        assert!(player_name("user", "a{b}").is_err());
        assert!(player_name("user", "ælfrida").is_err());
        assert!(player_name("user", &"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn should_refuse_blank_long_or_control_text() {
        assert!(text("message", "hello", 10).is_ok());
        assert!(text("message", "   ", 10).is_err());
        assert!(text("message", "a\u{7}b", 10).is_err());
        assert!(text("message", &"é".repeat(11), 10).is_err());
        assert!(text("message", &"é".repeat(10), 10).is_ok());
    }
}
