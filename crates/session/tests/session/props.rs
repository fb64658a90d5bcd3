//! Property tests for the session token parser and the id checks, which
//! see untrusted text (a cookie or header value) before any Redis round
//! trip: never a panic, always a typed error naming why. No Redis needed.

use aeturnis_session::{
    CharacterId, Error, SessionId, TokenError, UserId, MAX_CHARACTER_ID_LEN, MAX_USER_ID_LEN,
    TOKEN_LEN,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;

const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Text shaped like a token to a varying degree: any text, text of the
/// token's length, and a hex tag, a separator and 22 characters drawn
/// from base64url plus a few that are not in it.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        any::<String>(),
        "[ -~]{27}",
        "[0-9a-fA-G]{4}[.:_][A-Za-z0-9_+/=-]{22}",
        "[0-9a-f]{4}\\.[A-Za-z0-9_-]{22}",
        "\\PC{20,27}",
    ]
}

/// A token with the tag `tag` carrying exactly `bytes`.
fn token_of(tag: &str, bytes: &[u8; 16]) -> String {
    let mut buf = [0u8; 24];
    let n = URL_SAFE_NO_PAD.encode_slice(bytes, &mut buf).unwrap();
    format!("{tag}.{}", std::str::from_utf8(&buf[..n]).unwrap())
}

fn uuid_v4_rfc4122(bytes: &[u8; 16]) -> bool {
    bytes[6] >> 4 == 4 && bytes[8] >> 6 == 0b10
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn should_parse_any_text_or_refuse_it_with_the_matching_token_error(text in token_like()) {
        match SessionId::parse(&text) {
            Ok(id) => {
                prop_assert_eq!(id.as_str(), text.as_str());
                prop_assert_eq!(id.to_string(), text.clone());
                prop_assert_eq!(&text.parse::<SessionId>().unwrap(), &id);
                // the Debug form never carries the whole token
                let debug = format!("{id:?}");
                prop_assert!(!debug.contains(&text[5..]), "{}", debug);
            }
            Err(TokenError::Empty) => prop_assert!(text.is_empty()),
            Err(TokenError::Length { len, expected }) => {
                prop_assert_eq!((len, expected), (text.len(), TOKEN_LEN));
                prop_assert!(!text.is_empty());
            }
            Err(TokenError::Malformed) => prop_assert_eq!(text.len(), TOKEN_LEN),
            Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
    }

    #[test]
    fn should_accept_exactly_the_canonical_spelling_of_a_uuid_v4(
        tag in "[0-9a-f]{4}",
        mut bytes in any::<[u8; 16]>(),
        make_v4 in any::<bool>(),
    ) {
        // half the cases carry the version and variant bits of a UUID v4
        if make_v4 {
            bytes[6] = 0x40 | (bytes[6] & 0x0f);
            bytes[8] = 0x80 | (bytes[8] & 0x3f);
        }
        let token = token_of(&tag, &bytes);
        prop_assert_eq!(token.len(), TOKEN_LEN);
        match SessionId::parse(&token) {
            Ok(id) => {
                prop_assert!(uuid_v4_rfc4122(&bytes), "{} is not a UUID v4", token);
                prop_assert_eq!(id.tag(), tag.as_str());
            }
            Err(TokenError::Malformed) => prop_assert!(!uuid_v4_rfc4122(&bytes)),
            Err(other) => prop_assert!(false, "{:?} gave {:?}", token, other),
        }
    }

    #[test]
    fn should_refuse_a_generated_token_with_one_character_changed_unless_it_is_another_valid_id(
        user in "\\PC{1,40}",
        at in 0..TOKEN_LEN,
        with in prop_oneof![
            prop::sample::select(B64URL.as_bytes().to_vec()).prop_map(char::from),
            any::<char>(),
        ],
    ) {
        let user = UserId::new(user).unwrap();
        let good = SessionId::generate(&user);
        prop_assert!(good.belongs_to_slot_of(&user));
        prop_assert_eq!(&SessionId::parse(good.as_str()).unwrap(), &good);
        let mut changed: Vec<char> = good.as_str().chars().collect();
        changed[at] = with;
        let changed: String = changed.into_iter().collect();
        match SessionId::parse(&changed) {
            // only a change inside an alphabet keeps a token; it is then
            // another token, never a second spelling of the same one
            Ok(other) => {
                prop_assert_eq!(changed.as_str(), other.as_str());
                if changed != good.as_str() {
                    prop_assert_ne!(&other, &good);
                }
            }
            Err(TokenError::Malformed) => prop_assert_eq!(changed.len(), TOKEN_LEN),
            Err(TokenError::Length { len, .. }) => {
                prop_assert_eq!(len, changed.len());
                prop_assert!(!with.is_ascii());
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", changed, other),
        }
    }

    #[test]
    fn should_accept_a_user_id_or_refuse_it_as_an_invalid_id(text in prop_oneof![".{0,140}", any::<String>()]) {
        let valid = !text.is_empty()
            && text.len() <= MAX_USER_ID_LEN
            && !text.chars().any(char::is_control);
        match UserId::new(text.clone()) {
            Ok(id) => {
                prop_assert!(valid, "{:?} accepted", text);
                prop_assert_eq!(id.as_str(), text.as_str());
                prop_assert_eq!(id.slot_tag().len(), 4);
            }
            Err(Error::InvalidId { what, .. }) => {
                prop_assert!(!valid, "{:?} refused", text);
                prop_assert_eq!(what, "user id");
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
        let valid = !text.is_empty()
            && text.len() <= MAX_CHARACTER_ID_LEN
            && !text.chars().any(char::is_control);
        match CharacterId::new(text.clone()) {
            Ok(id) => prop_assert!(valid && id.as_str() == text),
            Err(Error::InvalidId { what, .. }) => {
                prop_assert!(!valid);
                prop_assert_eq!(what, "character id");
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
    }
}
