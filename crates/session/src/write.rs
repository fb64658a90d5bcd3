//! Writes: [`SessionManager::create`] (with eviction), extend, character
//! binding, metadata updates and id rotation.

use std::time::Duration;

use aeturnis_redis_core::duration::checked_millis;
use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::types::Value;

use crate::error::{Error, Result};
use crate::id::{CharacterId, SessionId, UserId};
use crate::manager::SessionManager;
use crate::metadata::SessionMetadata;
use crate::record::{self, Session};
use crate::reply::{array, int, integer, non_negative, optional_session, session_from};
use crate::scripts;
use crate::stats::StatsDelta;

impl SessionManager {
    /// Creates a session for `user` with a fresh random id. When the user
    /// already has [`max_per_user`](crate::SessionConfig::max_per_user) live
    /// sessions, the least recently used are evicted in the same script.
    pub async fn create(&self, user: &UserId, metadata: SessionMetadata) -> Result<Session> {
        self.create_with_id(SessionId::generate(user), user, metadata)
            .await
    }

    /// Creates a session with a caller-chosen id (from
    /// [`SessionId::generate`]). Calling it again with the same id returns
    /// the session the first call created, without inserting or evicting
    /// anything: this is what makes a create that fred re-sends after a
    /// reconnect safe, and it lets a caller retry a create that failed
    /// with an ambiguous (timeout or connection) error.
    pub async fn create_with_id(
        &self,
        id: SessionId,
        user: &UserId,
        metadata: SessionMetadata,
    ) -> Result<Session> {
        metadata.validate()?;
        if !id.belongs_to_slot_of(user) {
            return Err(Error::IdConflict {
                id: id.to_string(),
                reason: "the id carries another user's slot tag",
            });
        }
        let key = self.session_key(&id)?;
        let index = self.index_key(user)?;
        let tail = record::encode_tail(user, None, &metadata);
        let args = vec![
            Value::from(id.random_part()),
            Value::Bytes(Bytes::from(tail)),
            int(self.idle_ms),
            int(self.absolute_ms),
            int(u64::from(self.config.max_per_user.get())),
            int(self.touch_ms),
            Value::from(self.session_head(id.tag())?),
            int(self.index_keep_ms()),
        ];
        let reply: Value = self
            .redis
            .script(&scripts::CREATE, vec![key.clone(), index], args)
            .await?;
        let items = array(reply, 6)?;
        let outcome = integer(&items[3])?;
        if outcome < 0 {
            return Err(Error::IdConflict {
                id: id.to_string(),
                reason: "the id is taken by another user's session",
            });
        }
        if outcome != 1 {
            // a replay: the session the first call stored
            return session_from(id, &key, &items);
        }
        let evicted = integer(&items[4])?;
        self.record(StatsDelta {
            active: 1 - evicted,
            created: 1,
            ended: evicted,
            ended_ms: integer(&items[5])?,
            user: Some(user.as_str()),
        });
        // fresh: the script stored what was sent, and does not send it back
        Ok(record::fresh(
            id,
            user.clone(),
            metadata,
            non_negative(integer(&items[1])?),
            non_negative(integer(&items[2])?),
            self.absolute_ms,
        ))
    }

    /// Pushes the idle expiry `by` further (capped by the absolute expiry).
    /// Sent without replay: after a dropped connection it fails with a
    /// connection error instead of possibly extending twice.
    pub async fn extend(&self, id: &SessionId, by: Duration) -> Result<Option<Session>> {
        let by = checked_millis(by).map_err(|source| Error::InvalidDuration {
            what: "extension",
            source,
        })?;
        let key = self.session_key(id)?;
        let args = vec![
            int(by),
            int(self.touch_ms),
            Value::from(self.index_head(id.tag())?),
        ];
        let reply: Value = self
            .redis
            .script_no_replay(&scripts::EXTEND, key.clone(), args)
            .await?;
        optional_session(id.clone(), &key, reply)
    }

    /// Binds a character to the session. `None` when the session is gone
    /// (it is never written back).
    pub async fn bind_character(
        &self,
        id: &SessionId,
        character: &CharacterId,
    ) -> Result<Option<Session>> {
        self.update_fields(
            id,
            vec![(
                record::F_CHARACTER,
                Some(character.as_str().as_bytes().to_vec()),
            )],
        )
        .await
    }

    /// Removes the character binding.
    pub async fn unbind_character(&self, id: &SessionId) -> Result<Option<Session>> {
        self.update_fields(id, vec![(record::F_CHARACTER, None)])
            .await
    }

    /// Replaces the session's metadata (every field; absent fields are
    /// cleared). `None` when the session is gone.
    pub async fn update_metadata(
        &self,
        id: &SessionId,
        metadata: SessionMetadata,
    ) -> Result<Option<Session>> {
        metadata.validate()?;
        let text = |s: Option<String>| s.map(String::into_bytes);
        self.update_fields(
            id,
            vec![
                (
                    record::F_IP,
                    metadata.ip_address.as_ref().map(record::ip_bytes),
                ),
                (record::F_USER_AGENT, text(metadata.user_agent)),
                (record::F_DEVICE, text(metadata.device)),
                (record::F_LOCATION, text(metadata.location)),
            ],
        )
        .await
    }

    async fn update_fields(
        &self,
        id: &SessionId,
        fields: Vec<(u8, Option<Vec<u8>>)>,
    ) -> Result<Option<Session>> {
        let key = self.session_key(id)?;
        let mut args = Vec::with_capacity(fields.len() * 2);
        for (field, value) in fields {
            args.push(int(u64::from(field)));
            args.push(Value::Bytes(Bytes::from(record::encode_field(
                value.as_deref(),
            ))));
        }
        let reply: Value = self
            .redis
            .script(&scripts::UPDATE, key.clone(), args)
            .await?;
        optional_session(id.clone(), &key, reply)
    }

    /// Session fixation defence: moves the session to a fresh id (same
    /// data, same expiry, same place in the user's LRU order); the old id
    /// is dead at once. `None` when the session is gone.
    pub async fn rotate(&self, id: &SessionId) -> Result<Option<Session>> {
        self.rotate_to(id, SessionId::generate_with_tag(id.tag()))
            .await
    }

    /// [`rotate`](Self::rotate) to a caller-chosen id, which must carry the
    /// same slot tag. Running it again with the same ids returns the
    /// rotated session (a replay after a reconnect is harmless).
    pub async fn rotate_to(&self, id: &SessionId, new_id: SessionId) -> Result<Option<Session>> {
        if new_id.tag() != id.tag() {
            return Err(Error::IdConflict {
                id: new_id.to_string(),
                reason: "a rotated id must keep the slot tag",
            });
        }
        let old_key = self.session_key(id)?;
        let new_key = self.session_key(&new_id)?;
        let args = vec![
            Value::from(self.index_head(id.tag())?),
            Value::from(id.random_part()),
            Value::from(new_id.random_part()),
        ];
        let reply: Value = self
            .redis
            .script(&scripts::ROTATE, vec![old_key, new_key.clone()], args)
            .await?;
        if let Value::Integer(-1) = reply {
            return Err(Error::IdConflict {
                id: new_id.to_string(),
                reason: "the id is already in use",
            });
        }
        optional_session(new_id, &new_key, reply)
    }
}
