//! Revocation: one session (logout), every session of a user, or every
//! session but the current one.

use aeturnis_redis_core::fred::types::Value;

use crate::error::{Error, Result};
use crate::id::{SessionId, UserId};
use crate::manager::SessionManager;
use crate::reply::{array, integer};
use crate::scripts;
use crate::stats::StatsDelta;

impl SessionManager {
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
}
