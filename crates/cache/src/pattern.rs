//! Pattern delete and key counts: `SCAN MATCH` on every primary, `UNLINK`
//! in batches, never `KEYS`.
//!
//! Each primary is scanned with its own cursor, all primaries at once; a
//! page of keys is deleted before the next page is asked for, so at most
//! one `SCAN` and one batch of `UNLINK`s per primary are in flight and each
//! command handles at most [`CacheConfig::scan_batch`](crate::CacheConfig::scan_batch)
//! keys: Redis is never blocked for long. On a cluster the keys of a page
//! are grouped by hash slot (an `UNLINK` may only name keys of one slot),
//! and the groups are sent together, pipelined.
//!
//! The count returned is the sum of `UNLINK` replies: keys actually
//! removed by this call, exact even if another process deletes some of the
//! same keys meanwhile. Keys written during the scan may or may not be
//! seen (the `SCAN` guarantee: keys present for the whole scan are seen).
//! `SCAN` may also return a key twice (while Redis resizes its table); the
//! walk is the core's [`Redis::scan_primaries`](aeturnis_redis_core::Redis::scan_primaries),
//! whose [`KeyScan`] reports each key once, so a count (and the progress's
//! `scanned`) counts each key once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, Key};
use aeturnis_redis_core::keys::PatternBuilder;
use aeturnis_redis_core::{escape_pattern, hash_slot, KeyScan};
use futures::future::try_join_all;
use tokio::sync::watch;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::stats::{OpKind, RedisStats};

/// Which keys a pattern operation touches. Always inside the cache's
/// namespace prefix.
///
/// * From a [`PatternBuilder`] ([`Cache::pattern`]): user text is escaped,
///   so `*`, `?` or `[` typed by a user match themselves only.
/// * [`MatchPattern::raw`]: a glob the caller wrote, used as is after the
///   (escaped) prefix. Only for code-chosen globs, never for user text.
#[derive(Debug, Clone)]
pub struct MatchPattern {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Built(PatternBuilder),
    Raw(String),
    All,
}

impl From<PatternBuilder> for MatchPattern {
    fn from(builder: PatternBuilder) -> Self {
        MatchPattern {
            kind: Kind::Built(builder),
        }
    }
}

impl MatchPattern {
    /// A raw glob, matched after the namespace prefix: `raw("user:*:profile")`.
    /// Glob characters in it are live; escape user text with
    /// [`escape_pattern`] or use [`Cache::pattern`] instead.
    #[must_use]
    pub fn raw(glob: impl Into<String>) -> MatchPattern {
        MatchPattern {
            kind: Kind::Raw(glob.into()),
        }
    }

    /// Every key under the namespace prefix.
    #[must_use]
    pub fn all() -> MatchPattern {
        MatchPattern { kind: Kind::All }
    }

    fn build(self, cache: &Cache) -> Result<String> {
        match self.kind {
            Kind::Built(b) => Ok(b.build()?),
            Kind::Raw(glob) => {
                if glob.is_empty() {
                    return Err(Error::InvalidArgument {
                        key: cache.redis().keys().prefix().to_owned(),
                        reason: "a raw pattern must not be empty",
                    });
                }
                Ok(format!(
                    "{}{glob}",
                    escape_pattern(cache.redis().keys().prefix())
                ))
            }
            Kind::All => Ok(cache.redis().keys().pattern_all()),
        }
    }
}

/// How far a [`Cache::delete_matching_with_progress`] call has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct DeleteProgress {
    /// Distinct matching keys seen by `SCAN` so far.
    pub scanned: u64,
    /// Keys removed so far.
    pub deleted: u64,
    /// Every primary has been scanned to the end.
    pub done: bool,
}

struct Tally<'a> {
    scanned: AtomicU64,
    deleted: AtomicU64,
    progress: Option<&'a watch::Sender<DeleteProgress>>,
}

impl Tally<'_> {
    fn add(&self, scanned: u64, deleted: u64) {
        let s = self.scanned.fetch_add(scanned, Ordering::Relaxed) + scanned;
        let d = self.deleted.fetch_add(deleted, Ordering::Relaxed) + deleted;
        if let Some(tx) = self.progress {
            tx.send_modify(|p| {
                p.scanned = p.scanned.max(s);
                p.deleted = p.deleted.max(d);
            });
        }
    }
}

/// What to do with each page of keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Count,
    Unlink,
}

impl Cache {
    /// Deletes every key matching `pattern` and returns how many were
    /// removed: `SCAN MATCH` on every primary, `UNLINK` in batches of at most
    /// [`CacheConfig::scan_batch`](crate::CacheConfig::scan_batch) keys grouped by slot, never `KEYS`.
    ///
    /// ```no_run
    /// # async fn demo(cache: aeturnis_cache::Cache, name: &str) -> aeturnis_cache::Result<()> {
    /// // user text is escaped: a name like `a*` deletes only `user:a*:...`
    /// let n = cache.delete_matching(cache.pattern("user").id(name).any()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_matching(&self, pattern: impl Into<MatchPattern>) -> Result<u64> {
        self.scan_run(pattern.into(), Action::Unlink, None).await
    }

    /// Like [`delete_matching`](Self::delete_matching), reporting progress
    /// through `progress` after every batch (and `done` at the end).
    pub async fn delete_matching_with_progress(
        &self,
        pattern: impl Into<MatchPattern>,
        progress: &watch::Sender<DeleteProgress>,
    ) -> Result<u64> {
        self.scan_run(pattern.into(), Action::Unlink, Some(progress))
            .await
    }

    /// Counts the keys matching `pattern` with `SCAN` on every primary, each
    /// key once even when `SCAN` returns it twice (see the module docs). This
    /// walks the whole key space of every primary (in batches), so its cost
    /// grows with the size of the database, not of the match.
    pub async fn count_matching(&self, pattern: impl Into<MatchPattern>) -> Result<u64> {
        self.scan_run(pattern.into(), Action::Count, None).await
    }

    /// Reads figures from Redis: the key count under the namespace (a full
    /// `SCAN` of every primary, see [`count_matching`](Self::count_matching))
    /// and `used_memory` from `INFO memory` summed over every primary.
    pub async fn redis_stats(&self) -> Result<RedisStats> {
        let keys = self.count_matching(MatchPattern::all()).await?;
        let started = Instant::now();
        let result = async {
            let mut used_memory = 0u64;
            for node in self.primaries()? {
                let command = CustomCommand::new_static("INFO", ClusterHash::Random, false);
                let info: String = match node {
                    Some(server) => {
                        self.client()
                            .with_cluster_node(server)
                            .custom(command, vec!["memory"])
                            .await
                    }
                    None => self.client().custom(command, vec!["memory"]).await,
                }
                .map_err(|e| Error::Redis(e.into()))?;
                used_memory += info
                    .lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
            Ok(RedisStats { keys, used_memory })
        }
        .await;
        self.finish(OpKind::Scan, started, result)
    }

    /// The servers to ask: every primary of a cluster, or the one server
    /// (the nodes the core's scan would walk).
    fn primaries(&self) -> Result<Vec<Option<Server>>> {
        let scans = self
            .redis()
            .scan_primaries("*", self.config().scan_batch)
            .map_err(Error::Redis)?;
        Ok(scans.iter().map(|s| s.node().cloned()).collect())
    }

    async fn scan_run(
        &self,
        pattern: MatchPattern,
        action: Action,
        progress: Option<&watch::Sender<DeleteProgress>>,
    ) -> Result<u64> {
        let started = Instant::now();
        let result = async {
            let pattern = pattern.build(self)?;
            let tally = Tally {
                scanned: AtomicU64::new(0),
                deleted: AtomicU64::new(0),
                progress,
            };
            let scans = self
                .redis()
                .scan_primaries(&pattern, self.config().scan_batch)
                .map_err(|e| Error::from_core(&pattern, e))?;
            try_join_all(
                scans
                    .into_iter()
                    .map(|scan| self.scan_node(scan, &pattern, action, &tally)),
            )
            .await?;
            let total = match action {
                Action::Count => tally.scanned.load(Ordering::Relaxed),
                Action::Unlink => tally.deleted.load(Ordering::Relaxed),
            };
            if let Some(tx) = progress {
                tx.send_modify(|p| p.done = true);
            }
            Ok(total)
        }
        .await;
        self.finish(OpKind::Scan, started, result)
    }

    /// Walks one primary: each page is counted, or unlinked while the
    /// next page is read (`SCAN` is not disturbed by deletions; a repeat
    /// the deletions cause is dropped by the [`KeyScan`]).
    async fn scan_node(
        &self,
        mut scan: KeyScan,
        pattern: &str,
        action: Action,
        tally: &Tally<'_>,
    ) -> Result<()> {
        let mut page = next_page(&mut scan, pattern).await?;
        while let Some(keys) = page {
            let seen = keys.len() as u64;
            let (deleted, next) = match action {
                Action::Count => (0, next_page(&mut scan, pattern).await?),
                Action::Unlink => {
                    let (next, deleted) = futures::future::try_join(
                        next_page(&mut scan, pattern),
                        self.unlink_batch(keys, pattern),
                    )
                    .await?;
                    (deleted, next)
                }
            };
            tally.add(seen, deleted);
            page = next;
        }
        Ok(())
    }

    /// `UNLINK`s `keys` in commands of at most `batch` keys of one slot
    /// (on a cluster), all sent together.
    async fn unlink_batch(&self, keys: Vec<Key>, pattern: &str) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let batch = self.config().scan_batch.get() as usize;
        let client = self.client();
        let groups: Vec<Vec<Key>> = if self.redis().is_cluster() {
            let mut by_slot: std::collections::HashMap<u16, Vec<Key>> =
                std::collections::HashMap::new();
            for key in keys {
                let slot = hash_slot_bytes(key.as_bytes());
                by_slot.entry(slot).or_default().push(key);
            }
            by_slot
                .into_values()
                .flat_map(|g| chunk(g, batch))
                .collect()
        } else {
            chunk(keys, batch)
        };
        let counts = try_join_all(groups.into_iter().map(|group| async move {
            client
                .unlink::<u64, _>(group)
                .await
                .map_err(|e| Error::from_fred(pattern, e))
        }))
        .await?;
        Ok(counts.into_iter().sum())
    }
}

async fn next_page(scan: &mut KeyScan, pattern: &str) -> Result<Option<Vec<Key>>> {
    scan.next_page()
        .await
        .map_err(|e| Error::from_core(pattern, e))
}

fn hash_slot_bytes(key: &[u8]) -> u16 {
    match std::str::from_utf8(key) {
        Ok(s) => hash_slot(s),
        Err(_) => aeturnis_redis_core::fred::util::redis_keyslot(key),
    }
}

fn chunk(mut keys: Vec<Key>, size: usize) -> Vec<Vec<Key>> {
    let size = size.max(1);
    let mut out = Vec::with_capacity(keys.len().div_ceil(size));
    while keys.len() > size {
        let rest = keys.split_off(size);
        out.push(std::mem::replace(&mut keys, rest));
    }
    if !keys.is_empty() {
        out.push(keys);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_chunk_without_losing_keys() {
        let keys: Vec<Key> = (0..2503).map(|i| Key::from(format!("k{i}"))).collect();
        let chunks = chunk(keys, 1000);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 1000, 503]
        );
        assert!(chunk(Vec::new(), 10).is_empty());
    }
}
