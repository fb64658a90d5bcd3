//! Typed key helpers for the original system's key schema.
//!
//! | helper | key (after the prefix) | holds |
//! |---|---|---|
//! | [`Schema::user_profile`] | `user:{id}:profile` | a player's profile |
//! | [`Schema::user_settings`] | `user:{id}:settings` | preferences |
//! | [`Schema::user_friends`] | `user:{id}:friends` | a set of friend ids |
//! | [`Schema::char_data`] | `char:{id}:data` | core character data |
//! | [`Schema::char_inventory`] | `char:{id}:inventory` | a character's inventory |
//! | [`Schema::guild_data`] | `guild:{id}:data` | guild information |
//! | [`Schema::zone_data`] | `zone:{id}:data` | zone state |
//! | [`Schema::leaderboard`] | `leaderboard:{type}` | a sorted set of scores |
//!
//! Sessions and rate limits have their own crates (`aeturnis-session`,
//! `aeturnis-ratelimit`) and key builders.
//!
//! The id is the key's hash tag (`{...}`), so every key of one user (or one
//! character) lives in one cluster slot and a script may touch them
//! together. User text is percent-encoded by the core key builder: an id
//! holding `:`, `{` or `}` cannot reach another key.
//!
//! ```
//! use aeturnis_cache::Schema;
//! use aeturnis_redis_core::KeySpace;
//! let schema = Schema::new(KeySpace::new("game:")?);
//! assert_eq!(schema.user_profile("42")?.as_str(), "game:user:{42}:profile");
//! assert_eq!(schema.char_inventory("7")?.as_str(), "game:char:{7}:inventory");
//! assert_eq!(schema.leaderboard("pvp")?.as_str(), "game:leaderboard:{pvp}");
//! // hostile ids stay inside their segment
//! assert_eq!(schema.user_profile("1}:x")?.as_str(), "game:user:{1%7D%3Ax}:profile");
//! assert!(matches!(schema.user_profile(""), Err(aeturnis_redis_core::KeyError::Empty)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use aeturnis_redis_core::{KeyError, KeySpace, RedisKey};

/// Builds the schema's keys under one key space. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Schema {
    keys: KeySpace,
}

impl Schema {
    /// The schema under `keys`' prefix.
    #[must_use]
    pub fn new(keys: KeySpace) -> Schema {
        Schema { keys }
    }

    /// `user:{id}:profile`.
    pub fn user_profile(&self, user_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("user").tag(user_id).part("profile").build()
    }

    /// `user:{id}:settings`.
    pub fn user_settings(&self, user_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("user").tag(user_id).part("settings").build()
    }

    /// `user:{id}:friends`.
    pub fn user_friends(&self, user_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("user").tag(user_id).part("friends").build()
    }

    /// `char:{id}:data`.
    pub fn char_data(&self, char_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("char").tag(char_id).part("data").build()
    }

    /// `guild:{id}:data`.
    pub fn guild_data(&self, guild_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("guild").tag(guild_id).part("data").build()
    }

    /// `zone:{id}:data`.
    pub fn zone_data(&self, zone_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("zone").tag(zone_id).part("data").build()
    }

    /// `char:{id}:inventory`.
    pub fn char_inventory(&self, char_id: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("char").tag(char_id).part("inventory").build()
    }

    /// `leaderboard:{type}`.
    pub fn leaderboard(&self, board: impl AsRef<str>) -> Result<RedisKey, KeyError> {
        self.keys.key("leaderboard").tag(board).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_build_every_schema_key_in_its_documented_format() {
        let schema = Schema::new(KeySpace::new("game:").unwrap());
        let keys = [
            (schema.user_profile("42"), "game:user:{42}:profile"),
            (schema.user_settings("42"), "game:user:{42}:settings"),
            (schema.user_friends("42"), "game:user:{42}:friends"),
            (schema.char_data("7"), "game:char:{7}:data"),
            (schema.char_inventory("7"), "game:char:{7}:inventory"),
            (schema.guild_data("g1"), "game:guild:{g1}:data"),
            (schema.zone_data("z9"), "game:zone:{z9}:data"),
            (schema.leaderboard("pvp"), "game:leaderboard:{pvp}"),
        ];
        for (key, expected) in keys {
            assert_eq!(key.unwrap().as_str(), expected);
        }
    }

    #[test]
    fn should_keep_one_ids_keys_in_one_slot_and_hostile_ids_in_their_segment() {
        let schema = Schema::new(KeySpace::new("game:").unwrap());
        let user = [
            schema.user_profile("42").unwrap(),
            schema.user_settings("42").unwrap(),
            schema.user_friends("42").unwrap(),
        ];
        assert!(user.iter().all(|k| k.slot() == user[0].slot()), "{user:?}");
        let character = [
            schema.char_data("42").unwrap(),
            schema.char_inventory("42").unwrap(),
        ];
        assert_eq!(character[0].slot(), character[1].slot());
        // `:`, `{` and `}` in an id are encoded, so it cannot reach another key
        assert_eq!(
            schema.user_settings("1}:x{").unwrap().as_str(),
            "game:user:{1%7D%3Ax%7B}:settings"
        );
        assert_eq!(schema.char_data(""), Err(KeyError::Empty));
        assert_eq!(
            schema.leaderboard("a\nb"),
            Err(KeyError::ControlCharacter('\n'))
        );
    }
}
