//! [`SessionManager`]: every session operation, one round trip each.

use std::sync::Arc;
use std::time::Duration;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::bytes_utils::Str;
use aeturnis_redis_core::fred::interfaces::ClientLike;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, Value};
use aeturnis_redis_core::{LuaScript, Redis, RedisKey, ServerClock};

use crate::config::{millis, positive_ms, SessionConfig};
use crate::error::{Error, Result};
use crate::id::{CharacterId, SessionId, UserId};
use crate::metadata::SessionMetadata;
use crate::record::{self, Session};
use crate::scripts;
use crate::stats::{StatsBuffer, StatsDelta};

/// Creates, reads, slides, updates and revokes sessions. Cheap to clone.
///
/// See the crate docs for the key layout and the guarantees.
#[derive(Debug, Clone)]
pub struct SessionManager {
    pub(crate) redis: Redis,
    pub(crate) config: SessionConfig,
    idle_ms: u64,
    absolute_ms: u64,
    touch_ms: u64,
    pub(crate) stats: Arc<StatsBuffer>,
    /// The server clock estimate the fast read decides with.
    clock: ServerClock,
    /// `GETEX`, routed by its first argument (the key); fred 10.1 has no
    /// typed method for it.
    getex: CustomCommand,
    /// The idle TTL in ms, as `GETEX`'s `PX` argument.
    idle_arg: Value,
    /// Added to every clock estimate (tests only).
    clock_skew_ms: i64,
}

/// Added to the clock's uncertainty before any decision the fast read
/// makes: when in doubt, the script decides.
const MARGIN_MS: u64 = 5;

fn skewed(ms: u64, skew: i64) -> u64 {
    if skew >= 0 {
        ms.saturating_add(skew.unsigned_abs())
    } else {
        ms.saturating_sub(skew.unsigned_abs())
    }
}

impl SessionManager {
    /// A manager over `redis` (keys go under the connection's key prefix).
    /// Fails when `config` does not [`validate`](SessionConfig::validate).
    pub fn new(redis: Redis, config: SessionConfig) -> Result<Self> {
        config.validate()?;
        let idle_ms = millis(config.idle_ttl);
        let manager = SessionManager {
            idle_ms,
            absolute_ms: millis(config.absolute_ttl),
            touch_ms: millis(config.touch_interval),
            stats: Arc::default(),
            clock: ServerClock::new(redis.clone()),
            getex: CustomCommand::new_static("GETEX", ClusterHash::FirstKey, false),
            idle_arg: Value::from(idle_ms.to_string()),
            clock_skew_ms: 0,
            redis,
            config,
        };
        for script in [
            &*scripts::GET_SLIDE,
            &*scripts::CREATE,
            &*scripts::EXTEND,
            &*scripts::UPDATE,
            &*scripts::ROTATE,
            &*scripts::REVOKE,
            &*scripts::REVOKE_ALL,
            &*scripts::LIST,
            &*scripts::STATS,
        ] {
            manager.redis.register_script(script);
        }
        Ok(manager)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The Redis handle.
    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The server clock estimate that [`get`](Self::get) decides with.
    #[must_use]
    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    /// Tests only: makes every clock estimate of this manager wrong by
    /// `skew_ms` (negative: behind the server), beyond its uncertainty, to
    /// show what a wrong estimate can and cannot do.
    #[doc(hidden)]
    #[must_use]
    pub fn with_clock_skew_ms_for_tests(mut self, skew_ms: i64) -> Self {
        self.clock_skew_ms = skew_ms;
        self
    }

    // ---- keys -----------------------------------------------------------

    pub(crate) fn session_key(&self, id: &SessionId) -> Result<RedisKey> {
        Ok(self
            .redis
            .keys()
            .key("s")
            .tag(id.tag())
            .id(id.random_part())
            .build()?)
    }

    /// `PREFIX s:{TAG}:`, to which scripts append index members.
    fn session_head(&self, tag: &str) -> Result<String> {
        let mut head = self.redis.keys().key("s").tag(tag).build()?.into_string();
        head.push(':');
        Ok(head)
    }

    pub(crate) fn index_key(&self, user: &UserId) -> Result<RedisKey> {
        Ok(self
            .redis
            .keys()
            .key("su")
            .tag(user.slot_tag())
            .id(user.as_str())
            .build()?)
    }

    /// `PREFIX su:{TAG}:`, to which scripts append the encoded user id.
    fn index_head(&self, tag: &str) -> Result<String> {
        let mut head = self.redis.keys().key("su").tag(tag).build()?.into_string();
        head.push(':');
        Ok(head)
    }

    // ---- create ---------------------------------------------------------

    /// Creates a session for `user` with a fresh random id. When the user
    /// already has [`max_per_user`](SessionConfig::max_per_user) live
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
        let session = session_from(id, &key, &items)?;
        if outcome == 1 {
            let evicted = integer(&items[4])?;
            self.record(StatsDelta {
                active: 1 - evicted,
                created: 1,
                ended: evicted,
                ended_ms: integer(&items[5])?,
                user: Some(user.as_str()),
            });
        }
        Ok(session)
    }

    // ---- read -----------------------------------------------------------

    /// Get and slide: returns the session and pushes its idle expiry to
    /// `now + idle_ttl` (never past the absolute expiry). `last_seen` and
    /// the user's LRU order are recorded when the previous record is at
    /// least the touch interval old. `None` when the session does not exist
    /// (never created, revoked, evicted or expired).
    ///
    /// With a non-zero [`touch_interval`](SessionConfig::touch_interval)
    /// this is, nearly always, one native command: `GETEX key PX idle`.
    /// The decisions that need the time use the manager's
    /// [`ServerClock`] (an estimate of the Redis server's clock, no round
    /// trip), taken after the reply and widened by its uncertainty plus
    /// 5 ms. The get-and-slide script (which decides with the server's own
    /// `TIME`) runs instead, in a second round trip, when
    ///
    /// * a touch may be due (`now + margin - last_seen >= touch_interval`);
    /// * the slide may have passed the absolute expiry
    ///   (`now + margin + idle_ttl > absolute`: the last idle TTL of the
    ///   session's life, or past it): the script pulls the expiry back to
    ///   the absolute one, to the millisecond, or deletes a session whose
    ///   absolute expiry has passed;
    /// * the estimate is provably behind the server (earlier than the
    ///   stored `last_seen`, which the server wrote): the clock is also
    ///   recalibrated.
    ///
    /// Otherwise the session is returned with `expires_at = now +
    /// idle_ttl`: the clock's estimate, accurate to its uncertainty (a few
    /// ms on a healthy network). With a zero touch interval every read
    /// records a touch, so it is the script alone. See the crate docs for
    /// why this is safe.
    pub async fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        // after `shutdown`: a typed error at once, as for every script call
        self.redis.ensure_open()?;
        // a zero touch interval records every read: the script
        if self.touch_ms == 0 {
            return self.get_by_script(id).await;
        }
        // the key's own buffer becomes the argument: no copy
        let key = Str::from(self.session_key(id)?.into_string());
        let value: Option<Bytes> = self
            .redis
            .client()
            .custom(
                self.getex.clone(),
                vec![
                    Value::String(key.clone()),
                    Value::from_static_str("PX"),
                    self.idle_arg.clone(),
                ],
            )
            .await?;
        let Some(bytes) = value else {
            // missing: GETEX wrote nothing
            return Ok(None);
        };
        let Some(head) = record::header(&bytes) else {
            // not a session of ours: the decoder names what is wrong
            return record::decode(id.clone(), &key, &bytes, 0, 0).map(Some);
        };
        // Taken after the reply, so no earlier than the moment the server
        // ran GETEX (and any replay of it fred sent before that reply), to
        // within the clock's uncertainty. No estimate (the first
        // calibration failed): let the script decide.
        let Ok(now) = self.clock.now().await else {
            return self.get_by_script(id).await;
        };
        let estimate = skewed(now.ms, self.clock_skew_ms);
        // the latest the server's clock can read now
        let latest = estimate.saturating_add(now.uncertainty_ms() + MARGIN_MS);
        if latest < head.last_seen {
            // the server wrote `last_seen` by its clock, earlier: this
            // estimate is behind it, so none of its decisions can be
            // trusted. The script decides; the clock recalibrates.
            self.clock.refresh_in_background();
            return self.get_by_script(id).await;
        }
        if latest - head.last_seen >= self.touch_ms {
            // a touch may be due (once per touch interval): the script
            // records it, and caps or deletes the session, atomically
            return self.get_by_script(id).await;
        }
        if latest.saturating_add(self.idle_ms) > head.absolute {
            // the slide may have gone past the absolute expiry (the last
            // idle TTL of the session's life, or past its end): the script
            // pulls the expiry back to the absolute one, or deletes the
            // session, by the server's TIME
            return self.get_by_script(id).await;
        }
        // The server ran GETEX before `latest`, more than one idle TTL
        // before the absolute expiry: the session was live, and the expiry
        // GETEX set is before the absolute one.
        record::decode(id.clone(), &key, &bytes, estimate, self.idle_ms).map(Some)
    }

    /// The get-and-slide script: one atomic read, slide, touch (when due)
    /// and delete (when past the absolute expiry).
    async fn get_by_script(&self, id: &SessionId) -> Result<Option<Session>> {
        let key = &self.session_key(id)?;
        let args = vec![
            int(self.idle_ms),
            int(self.touch_ms),
            Value::from(self.index_head(id.tag())?),
            Value::from(id.random_part()),
        ];
        let reply: Value = self
            .redis
            .script(&scripts::GET_SLIDE, key.clone(), args)
            .await?;
        optional_session(id.clone(), key, reply)
    }

    /// [`get`](Self::get) for a token as the client sent it. A malformed,
    /// empty or oversized token gives `Ok(None)` without a Redis round trip.
    pub async fn get_by_token(&self, token: &str) -> Result<Option<Session>> {
        match SessionId::parse(token) {
            Ok(id) => self.get(&id).await,
            Err(_) => Ok(None),
        }
    }

    /// Every live session of `user`, most recently used first. Index entries
    /// whose session has expired are dropped on the way.
    pub async fn list(&self, user: &UserId) -> Result<Vec<Session>> {
        let index = self.index_key(user)?;
        let tag = user.slot_tag();
        let reply: Value = self
            .redis
            .script(
                &scripts::LIST,
                index.clone(),
                vec![self.session_head(&tag)?],
            )
            .await?;
        let items = reply.into_array();
        let now = items
            .first()
            .map(integer)
            .transpose()?
            .ok_or_else(|| unexpected("empty list reply"))?;
        let mut sessions = Vec::with_capacity(items.len() / 3);
        for entry in items[1..].chunks(3) {
            let [member, value, ttl] = entry else {
                return Err(unexpected("list reply is not in triples"));
            };
            let member = member
                .as_bytes_str()
                .ok_or_else(|| unexpected("index member is not text"))?;
            let id = SessionId::from_parts(&tag, &member)?;
            let key = self.session_key(&id)?;
            let bytes = value
                .as_bytes()
                .ok_or_else(|| unexpected("session value is not a string"))?;
            sessions.push(record::decode(
                id,
                key.as_str(),
                bytes,
                non_negative(now),
                non_negative(integer(ttl)?),
            )?);
        }
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
        Ok(sessions)
    }

    // ---- update ---------------------------------------------------------

    /// Pushes the idle expiry `by` further (capped by the absolute expiry).
    /// Sent without replay: after a dropped connection it fails with a
    /// connection error instead of possibly extending twice.
    pub async fn extend(&self, id: &SessionId, by: Duration) -> Result<Option<Session>> {
        let by = positive_ms("extension", by)?;
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

    // ---- revoke ---------------------------------------------------------

    /// Revokes one session (logout). Returns whether this call removed it;
    /// revoking is idempotent, so a replayed revoke answers `false`.
    pub async fn revoke(&self, id: &SessionId) -> Result<bool> {
        let key = self.session_key(id)?;
        let args = vec![
            Value::from(self.index_head(id.tag())?),
            Value::from(id.random_part()),
        ];
        let reply: Value = self.redis.script(&scripts::REVOKE, key, args).await?;
        if reply.is_null() {
            return Ok(false);
        }
        let age = integer(&reply)?;
        self.record(StatsDelta {
            active: -1,
            ended: 1,
            ended_ms: age,
            ..StatsDelta::default()
        });
        Ok(true)
    }

    /// Revokes every session of `user`; returns how many were live.
    pub async fn revoke_all(&self, user: &UserId) -> Result<u32> {
        self.revoke_many(user, None).await
    }

    /// Revokes every session of `user` except `current` ("log out my other
    /// devices"); returns how many were revoked. Fails with
    /// [`Error::UnknownSession`] (revoking nothing) when `current` is not a
    /// live session of `user`.
    pub async fn revoke_others(&self, user: &UserId, current: &SessionId) -> Result<u32> {
        self.revoke_many(user, Some(current)).await
    }

    async fn revoke_many(&self, user: &UserId, keep: Option<&SessionId>) -> Result<u32> {
        let index = self.index_key(user)?;
        let args = vec![
            Value::from(self.session_head(&user.slot_tag())?),
            Value::from(keep.map_or("", |k| k.random_part())),
        ];
        let reply: Value = self.redis.script(&scripts::REVOKE_ALL, index, args).await?;
        if let Value::Integer(-1) = reply {
            return Err(Error::UnknownSession {
                id: keep.map(ToString::to_string).unwrap_or_default(),
            });
        }
        let items = array(reply, 2)?;
        let n = integer(&items[0])?;
        if n > 0 {
            self.record(StatsDelta {
                active: -n,
                ended: n,
                ended_ms: integer(&items[1])?,
                ..StatsDelta::default()
            });
        }
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub(crate) async fn run_stats_script(
        &self,
        keys: Vec<RedisKey>,
        args: Vec<Value>,
    ) -> Result<Value> {
        let script: &LuaScript = &scripts::STATS;
        Ok(self.redis.script_no_replay(script, keys, args).await?)
    }
}

fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn unexpected(what: &str) -> Error {
    Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(what.to_owned()))
}

fn integer(v: &Value) -> Result<i64> {
    v.as_i64()
        .ok_or_else(|| unexpected(&format!("expected an integer, got {v:?}")))
}

fn array(reply: Value, len: usize) -> Result<Vec<Value>> {
    let items = reply.into_array();
    if items.len() < len {
        return Err(unexpected(&format!(
            "expected {len} items, got {}",
            items.len()
        )));
    }
    Ok(items)
}

fn session_from(id: SessionId, key: &RedisKey, items: &[Value]) -> Result<Session> {
    let bytes = items
        .first()
        .and_then(Value::as_bytes)
        .ok_or_else(|| unexpected("session value is not a string"))?;
    let now = non_negative(integer(&items[1])?);
    let ttl = non_negative(integer(&items[2])?);
    record::decode(id, key.as_str(), bytes, now, ttl)
}

fn optional_session(id: SessionId, key: &RedisKey, reply: Value) -> Result<Option<Session>> {
    if reply.is_null() {
        return Ok(None);
    }
    let items = array(reply, 3)?;
    session_from(id, key, &items).map(Some)
}
