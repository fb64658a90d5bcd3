//! `SCAN` over every primary, each key reported once.
//!
//! [`Redis::scan_primaries`] gives one [`KeyScan`] per primary (one for a
//! standalone or sentinel server, one per primary of a cluster, from fred's
//! cached routing table). Each walks its server with `SCAN cursor MATCH
//! pattern COUNT batch`, never `KEYS`, so no call blocks the server for
//! long. The primaries can be walked concurrently; [`Redis::scan_keys`]
//! does that and collects the keys.
//!
//! `SCAN` may return a key more than once: while Redis resizes its table
//! (after many deletions, often the caller's own), a cursor can revisit
//! buckets. Each [`KeyScan`] remembers a 64-bit hash of every key it has
//! returned and drops repeats, so every key present for the whole scan is
//! reported exactly once (8 bytes per matching key; two names sharing a
//! hash, about 1 in 10^7 at a million keys, would count as one).
//! [`KeyScan::duplicates`] counts what was dropped. Keys written or deleted
//! during the scan may or may not be reported (the `SCAN` guarantee).
//!
//! A pattern built from user text must be escaped: build it with
//! [`KeySpace::pattern`](crate::KeySpace::pattern) or
//! [`escape_pattern`](crate::escape_pattern).

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;

use fred::clients::Client;
use fred::interfaces::{ClusterInterface, KeysInterface};
use fred::types::config::Server;
use fred::types::{Key, Value};

use crate::client::Redis;
use crate::error::{Error, Result};

/// A walk over one primary's keys; see the [module docs](self).
pub struct KeyScan {
    client: Client,
    node: Option<Server>,
    pattern: String,
    batch: u32,
    cursor: Option<String>,
    hasher: RandomState,
    seen: HashSet<u64>,
    duplicates: u64,
}

impl fmt::Debug for KeyScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyScan")
            .field("node", &self.node)
            .field("pattern", &self.pattern)
            .field("cursor", &self.cursor)
            .field("seen", &self.seen.len())
            .field("duplicates", &self.duplicates)
            .finish()
    }
}

impl KeyScan {
    /// The next page of keys not reported before, or `None` once the
    /// server's cursor is back at `0`. A page may be empty while the walk
    /// goes on.
    ///
    /// # Errors
    /// A Redis error, or [`Error::UnexpectedReply`] for a malformed reply.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Key>>> {
        let Some(cursor) = self.cursor.take() else {
            return Ok(None);
        };
        let page: Value = match &self.node {
            Some(server) => {
                self.client
                    .with_cluster_node(server.clone())
                    .scan_page(cursor, self.pattern.clone(), Some(self.batch), None)
                    .await?
            }
            None => {
                self.client
                    .scan_page(cursor, self.pattern.clone(), Some(self.batch), None)
                    .await?
            }
        };
        let (next, mut keys) = parse_scan_page(page)?;
        if next != "0" {
            self.cursor = Some(next);
        }
        let before = keys.len();
        let (hasher, seen) = (&self.hasher, &mut self.seen);
        keys.retain(|k| seen.insert(hasher.hash_one(k.as_bytes())));
        self.duplicates += (before - keys.len()) as u64;
        Ok(Some(keys))
    }

    /// Every remaining key, page after page.
    ///
    /// # Errors
    /// As [`next_page`](Self::next_page).
    pub async fn collect(&mut self) -> Result<Vec<Key>> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// The server's cursor for the next page (`None` once the walk is
    /// done): `SCAN`'s reverse-binary bucket position, for diagnostics and
    /// tests.
    #[must_use]
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Whether the walk has reached the end.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.cursor.is_none()
    }

    /// How many repeats `SCAN` returned and this walk dropped.
    #[must_use]
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The primary this walk scans (`None` for a standalone or sentinel
    /// server).
    #[must_use]
    pub fn node(&self) -> Option<&Server> {
        self.node.as_ref()
    }
}

impl Redis {
    /// One [`KeyScan`] per primary for `pattern`, asking for `batch` keys per
    /// `SCAN` call. See the [`scan`](crate::scan) module.
    ///
    /// # Errors
    /// [`Error::Shutdown`], or [`Error::UnexpectedReply`] when the cluster's
    /// routing table is not known yet.
    pub fn scan_primaries(&self, pattern: &str, batch: NonZeroU32) -> Result<Vec<KeyScan>> {
        self.ensure_open()?;
        let nodes: Vec<Option<Server>> = if self.is_cluster() {
            let state = self.client().cached_cluster_state().ok_or_else(|| {
                Error::UnexpectedReply("the cluster routing table is not known yet".to_owned())
            })?;
            state.unique_primary_nodes().into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        Ok(nodes
            .into_iter()
            .map(|node| KeyScan {
                client: self.client().clone(),
                node,
                pattern: pattern.to_owned(),
                batch: batch.get(),
                cursor: Some("0".to_owned()),
                hasher: RandomState::new(),
                seen: HashSet::new(),
                duplicates: 0,
            })
            .collect())
    }

    /// Every key matching `pattern` on every primary, each once; the
    /// primaries are scanned concurrently.
    ///
    /// # Errors
    /// As [`scan_primaries`](Self::scan_primaries) and
    /// [`KeyScan::next_page`].
    pub async fn scan_keys(&self, pattern: &str, batch: NonZeroU32) -> Result<Vec<Key>> {
        let scans = self.scan_primaries(pattern, batch)?;
        let pages = walk_all(scans).await?;
        Ok(pages.into_iter().flatten().collect())
    }
}

async fn walk_all(scans: Vec<KeyScan>) -> Result<Vec<Vec<Key>>> {
    let mut set = tokio::task::JoinSet::new();
    for mut scan in scans {
        set.spawn(async move { scan.collect().await });
    }
    let mut out = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        let keys =
            joined.map_err(|e| Error::UnexpectedReply(format!("scan task failed: {e}")))??;
        out.push(keys);
    }
    Ok(out)
}

/// `[cursor, [key, ...]]` into the next cursor and the keys.
fn parse_scan_page(page: Value) -> Result<(String, Vec<Key>)> {
    let unexpected = |what: &str| Error::UnexpectedReply(format!("SCAN reply: {what}"));
    let Value::Array(mut parts) = page else {
        return Err(unexpected("not an array"));
    };
    if parts.len() != 2 {
        return Err(unexpected("not [cursor, keys]"));
    }
    let keys = parts.pop().unwrap_or(Value::Null);
    let cursor = parts.pop().unwrap_or(Value::Null);
    let cursor = cursor
        .as_string()
        .ok_or_else(|| unexpected("cursor is not a string"))?;
    let Value::Array(keys) = keys else {
        return Err(unexpected("keys are not an array"));
    };
    let keys = keys
        .into_iter()
        .map(|k| match k {
            Value::String(s) => Ok(Key::from(s)),
            Value::Bytes(b) => Ok(Key::from(b)),
            _ => Err(unexpected("a key is not a string")),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((cursor, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_scan_pages() {
        let page = Value::Array(vec![
            Value::from("17"),
            Value::Array(vec![Value::from("a"), Value::Bytes(vec![0xff].into())]),
        ]);
        let (cursor, keys) = parse_scan_page(page).unwrap_or_default();
        assert_eq!(cursor, "17");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].as_bytes(), &[0xff]);
        assert!(matches!(
            parse_scan_page(Value::Null),
            Err(Error::UnexpectedReply(_))
        ));
        assert!(matches!(
            parse_scan_page(Value::Array(vec![Value::from("0")])),
            Err(Error::UnexpectedReply(_))
        ));
    }
}
