//! Reads: [`SessionManager::get`] (the fast path and the get-and-slide
//! script), [`get_by_token`](SessionManager::get_by_token) and
//! [`list`](SessionManager::list).

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::bytes_utils::Str;
use aeturnis_redis_core::fred::interfaces::ClientLike;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::RedisKey;

use crate::error::Result;
use crate::id::{SessionId, UserId};
use crate::manager::SessionManager;
use crate::record::{self, Session};
use crate::reply::{int, integer, non_negative, optional_session, unexpected};
use crate::scripts;

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
    /// Get and slide: returns the session and pushes its idle expiry to
    /// `now + idle_ttl` (never past the absolute expiry). `last_seen` and
    /// the user's LRU order are recorded when the previous record is at
    /// least the touch interval old. `None` when the session does not exist
    /// (never created, revoked, evicted or expired).
    ///
    /// With a non-zero [`touch_interval`](crate::SessionConfig::touch_interval)
    /// this is, nearly always, one native command: `GETEX key PX idle`.
    /// The decisions that need the time use the manager's
    /// [`ServerClock`](aeturnis_redis_core::ServerClock) (an estimate of the Redis server's clock, no round
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
        let (key, args) = self.get_slide_args(id)?;
        let reply: Value = self
            .redis
            .script(&scripts::GET_SLIDE, key.clone(), args)
            .await?;
        optional_session(id.clone(), &key, reply)
    }

    /// The get-and-slide script's key and arguments for `id`.
    fn get_slide_args(&self, id: &SessionId) -> Result<(RedisKey, Vec<Value>)> {
        let key = self.session_key(id)?;
        let args = vec![
            int(self.idle_ms),
            int(self.touch_ms),
            Value::from(self.index_head(id.tag())?),
            Value::from(id.random_part()),
            int(self.index_keep_ms()),
        ];
        Ok((key, args))
    }

    /// Tests and benches only (cargo feature `test-hooks`): the
    /// get-and-slide script and the key and arguments this manager sends it
    /// for `id`; for a raw baseline that sends the same script with the
    /// same arguments.
    ///
    /// # Errors
    /// As [`get`](Self::get) for a key that cannot be built.
    #[cfg(feature = "test-hooks")]
    pub fn get_slide_script_for_tests(
        &self,
        id: &SessionId,
    ) -> Result<(
        &'static aeturnis_redis_core::LuaScript,
        RedisKey,
        Vec<Value>,
    )> {
        let (key, args) = self.get_slide_args(id)?;
        Ok((&scripts::GET_SLIDE, key, args))
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
}
