//! What a worker hands the [`Writer`](super::Writer): [`StreamId`] and
//! [`Pending`], and the parsing of stream entries.

use std::fmt;
use std::str::FromStr;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::types::Value;
use serde::Serialize;

/// The id Redis gave a write when it entered its stream (`<ms>-<seq>`).
/// Ids of one key only grow (a key always maps to the same stream), so a
/// writer that keeps the last id it stored per row can skip a redelivered
/// or older write: see the [module docs](super#idempotent-writers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    /// The milliseconds part (server time of the `XADD`).
    #[must_use]
    pub fn ms(&self) -> u64 {
        self.ms
    }

    /// The sequence part.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Both parts in one number that sorts as the id does
    /// (`ms << 64 | seq`), for a `NUMERIC(39)` or `DECIMAL` column.
    #[must_use]
    pub fn as_u128(&self) -> u128 {
        (u128::from(self.ms) << 64) | u128::from(self.seq)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The text is not a stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a stream id")]
pub struct ParseStreamIdError(String);

impl FromStr for StreamId {
    type Err = ParseStreamIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseStreamIdError(s.to_owned());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(StreamId {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One write for the [`Writer`](super::Writer): the last value written to
/// `key` among the entries of a batch.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Pending<T> {
    /// The stream id of the write (see [`StreamId`]).
    pub id: StreamId,
    /// The full Redis key the value was cached under (with the prefix).
    pub key: String,
    /// The value.
    pub value: T,
}

/// A raw stream entry as a worker reads it.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) id: StreamId,
    pub(crate) key: String,
    pub(crate) value: Bytes,
}

/// Field names of a write entry.
pub(crate) const KEY_FIELD: &str = "k";
/// Field holding the codec bytes of the value.
pub(crate) const VALUE_FIELD: &str = "v";

/// Parses `[id, [field, value, ...]]` entries (as `XREADGROUP`,
/// `XAUTOCLAIM` and `XRANGE` answer); skips nil and deleted entries and
/// entries that lack a field (`Err` with the id text, for a dead letter).
pub(crate) fn parse_entries(value: Value) -> Vec<Result<Raw, String>> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items.into_iter().filter_map(parse_entry).collect()
}

fn parse_entry(item: Value) -> Option<Result<Raw, String>> {
    let Value::Array(mut parts) = item else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let id_text = parts.pop()?.as_string()?;
    let Ok(id) = id_text.parse::<StreamId>() else {
        return Some(Err(id_text));
    };
    let pairs = match fields {
        // an entry deleted while pending (already written): nothing to do
        Value::Null => return None,
        Value::Array(v) => v,
        Value::Map(m) => m
            .inner()
            .into_iter()
            .flat_map(|(k, v)| [Value::String(k.as_str_lossy().into()), v])
            .collect(),
        _ => return Some(Err(id_text)),
    };
    let (mut key, mut val) = (None, None);
    let mut it = pairs.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        match f.as_string().as_deref() {
            Some(KEY_FIELD) => key = v.as_string(),
            Some(VALUE_FIELD) => val = v.as_bytes().map(Bytes::copy_from_slice),
            _ => {}
        }
    }
    Some(match (key, val) {
        (Some(key), Some(value)) => Ok(Raw { id, key, value }),
        _ => Err(id_text),
    })
}

/// The id of the first entry in an `XRANGE`/`XREVRANGE` answer.
pub(crate) fn first_id(value: Value) -> Option<String> {
    let Value::Array(items) = value else {
        return None;
    };
    let Value::Array(parts) = items.into_iter().next()? else {
        return None;
    };
    parts.into_iter().next()?.as_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_order_ids_as_redis_does() {
        let a: StreamId = "1700000000000-9"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let b: StreamId = "1700000000001-0"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(a < b);
        assert!(a.as_u128() < b.as_u128());
        assert_eq!(a.to_string(), "1700000000000-9");
        assert!("17-x".parse::<StreamId>().is_err());
        assert!("17".parse::<StreamId>().is_err());
    }
}
