//! Reading script replies: integers, arrays and sessions, with a typed
//! error for anything unexpected.

use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::RedisKey;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::record::{self, Session};

pub(crate) fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

pub(crate) fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn unexpected(what: &str) -> Error {
    Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(what.to_owned()))
}

pub(crate) fn integer(v: &Value) -> Result<i64> {
    v.as_i64()
        .ok_or_else(|| unexpected(&format!("expected an integer, got {v:?}")))
}

pub(crate) fn array(reply: Value, len: usize) -> Result<Vec<Value>> {
    let items = reply.into_array();
    if items.len() < len {
        return Err(unexpected(&format!(
            "expected {len} items, got {}",
            items.len()
        )));
    }
    Ok(items)
}

pub(crate) fn session_from(id: SessionId, key: &RedisKey, items: &[Value]) -> Result<Session> {
    let bytes = items
        .first()
        .and_then(Value::as_bytes)
        .ok_or_else(|| unexpected("session value is not a string"))?;
    let now = non_negative(integer(&items[1])?);
    let ttl = non_negative(integer(&items[2])?);
    record::decode(id, key.as_str(), bytes, now, ttl)
}

pub(crate) fn optional_session(
    id: SessionId,
    key: &RedisKey,
    reply: Value,
) -> Result<Option<Session>> {
    if reply.is_null() {
        return Ok(None);
    }
    let items = array(reply, 3)?;
    session_from(id, key, &items).map(Some)
}
