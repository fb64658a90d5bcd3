//! Session statistics without scanning on the hot path.
//!
//! Two keys in a slot of their own (`PREFIX session-stats:{all}:counters`,
//! a hash, and `PREFIX session-stats:{all}:users`, a HyperLogLog). A
//! per-user script cannot touch them (they live in another cluster slot),
//! so a create, revoke or eviction only adds its delta to in-process
//! counters ([`StatsBuffer`]: atomics and a set of user ids, no I/O), and a
//! background task writes the accumulated deltas with **one** script every
//! [`STATS_FLUSH_INTERVAL`] (sooner when many distinct users are waiting),
//! sent without replay. [`SessionManager::stats`] and
//! [`SessionManager::recount`] write the pending deltas first, and
//! [`SessionManager::flush_stats`] does it on demand (call it before shutting
//! down).
//!
//! * `active` = sessions created − sessions revoked or evicted. Sessions
//!   that end by idle or absolute expiry run no script, so **between
//!   recounts `active` is an upper bound**; [`SessionManager::recount`]
//!   scans and resets it to the exact figure.
//! * `unique_users` = distinct users that created a session since the last
//!   recount, plus those the recount found (HyperLogLog, ±0.81 %).
//! * `average_duration` = mean age of sessions at the moment they were
//!   revoked or evicted. Sessions that simply expire are not included (no
//!   script sees them end).
//!
//! Trade-off: a crash (or a flush whose connection drops) loses the deltas
//! of at most one interval from one process; they are never applied twice.
//! The figures are estimates either way, and `recount()` repairs `active`.
//! Both keys expire one absolute lifetime after the last update, when no
//! session counted in them can still be alive.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, Value};
use aeturnis_redis_core::keys::decode_segment;
use aeturnis_redis_core::RedisKey;

use crate::error::Result;
use crate::manager::SessionManager;
use crate::scripts;

/// Session figures, read without scanning.
///
/// They live in two keys in a slot of their own; creates, revokes and
/// evictions add to in-process counters that a background task writes
/// every [`STATS_FLUSH_INTERVAL`] in one script sent without replay (a
/// dropped write is lost, never doubled). Reading them writes the pending
/// deltas first. Sessions that end by idle or
/// absolute expiry run no script, so between
/// [`recount`](SessionManager::recount)s `active` is an upper bound and
/// `average_duration` covers only revoked and evicted sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct SessionStats {
    /// Live sessions: created − revoked − evicted (an upper bound between
    /// [`recount`](SessionManager::recount)s, which make it exact).
    pub active: u64,
    /// Distinct users (HyperLogLog estimate).
    pub unique_users: u64,
    /// Sessions created since the counters started.
    pub created: u64,
    /// Sessions revoked or evicted since the counters started.
    pub ended: u64,
    /// Mean age of revoked or evicted sessions when they ended.
    pub average_duration: Option<Duration>,
}

/// The exact figures found by a full scan ([`SessionManager::recount`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct SessionCensus {
    /// Session keys found.
    pub sessions: u64,
    /// User index keys found (an index outlives its last session by at most
    /// the touch interval).
    pub users: u64,
}

/// How often the background task writes the buffered stat deltas (sooner
/// when 1,000 distinct new users are waiting).
pub const STATS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Keys asked for per `SCAN` page by [`SessionManager::recount`].
const SCAN_BATCH: NonZeroU32 = NonZeroU32::MIN.saturating_add(999);

/// Distinct users buffered before the background task is woken early.
const FLUSH_AT_USERS: usize = 1000;

/// One operation's effect on the counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StatsDelta<'a> {
    pub(crate) active: i64,
    pub(crate) created: i64,
    pub(crate) ended: i64,
    pub(crate) ended_ms: i64,
    pub(crate) user: Option<&'a str>,
}

/// Stat deltas not yet written to Redis, shared by a manager's clones and
/// its flush task.
#[derive(Debug, Default)]
pub(crate) struct StatsBuffer {
    active: AtomicI64,
    created: AtomicI64,
    ended: AtomicI64,
    ended_ms: AtomicI64,
    users: Mutex<HashSet<String>>,
    /// One write at a time, so a reader that flushes also waits for a
    /// background write already under way.
    writing: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    task_started: AtomicBool,
}

impl StatsBuffer {
    fn add(&self, delta: &StatsDelta<'_>) {
        for (cell, d) in [
            (&self.active, delta.active),
            (&self.created, delta.created),
            (&self.ended, delta.ended),
            (&self.ended_ms, delta.ended_ms),
        ] {
            if d != 0 {
                cell.fetch_add(d, Ordering::Relaxed);
            }
        }
        if let Some(user) = delta.user {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            if !users.contains(user) {
                users.insert(user.to_owned());
                if users.len() >= FLUSH_AT_USERS {
                    self.wake.notify_one();
                }
            }
        }
    }

    /// Takes every pending delta (script arguments after the TTL), or
    /// `None` when there is nothing to write.
    fn take(&self) -> Option<Vec<Value>> {
        let deltas = [
            self.active.swap(0, Ordering::Relaxed),
            self.created.swap(0, Ordering::Relaxed),
            self.ended.swap(0, Ordering::Relaxed),
            self.ended_ms.swap(0, Ordering::Relaxed),
        ];
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(|e| e.into_inner()));
        if deltas == [0; 4] && users.is_empty() {
            return None;
        }
        let mut args: Vec<Value> = Vec::with_capacity(4 + users.len());
        args.extend(deltas.into_iter().map(Value::Integer));
        args.extend(users.into_iter().map(Value::from));
        Some(args)
    }
}

impl SessionManager {
    fn stats_keys(&self) -> Result<Vec<RedisKey>> {
        let keys = self.redis.keys();
        Ok(vec![
            keys.key("session-stats")
                .tag("all")
                .part("counters")
                .build()?,
            keys.key("session-stats").tag("all").part("users").build()?,
        ])
    }

    fn stats_ttl_ms(&self) -> u64 {
        self.absolute_ms
    }

    /// Adds a delta to the in-process counters (no I/O) and makes sure the
    /// background flush task runs.
    pub(crate) fn record(&self, delta: StatsDelta<'_>) {
        self.stats.add(&delta);
        if self.stats.task_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // no runtime: the deltas wait for an explicit flush
            self.stats.task_started.store(false, Ordering::Release);
            return;
        };
        let manager = self.clone();
        handle.spawn(async move { manager.flush_task().await });
    }

    /// Writes the buffer every interval; when every other clone of the
    /// manager is gone, writes what is left and ends.
    async fn flush_task(self) {
        loop {
            let _ = tokio::time::timeout(STATS_FLUSH_INTERVAL, self.stats.wake.notified()).await;
            let last = Arc::strong_count(&self.stats) == 1;
            if let Err(e) = self.write_stats(false).await {
                tracing::debug!(error = %e, "session stats flush failed; its deltas are lost");
            }
            if last {
                return;
            }
        }
    }

    /// Writes the pending deltas; with `read`, also reads the counters
    /// back (in the same script). `None` when there was nothing to do.
    async fn write_stats(&self, read: bool) -> Result<Option<Vec<Value>>> {
        let _writing = self.stats.writing.lock().await;
        let pending = self.stats.take();
        if pending.is_none() && !read {
            return Ok(None);
        }
        let ttl = i64::try_from(self.stats_ttl_ms()).unwrap_or(i64::MAX);
        let mut args = vec![Value::Integer(ttl)];
        match pending {
            Some(p) => args.extend(p),
            None => args.extend([0, 0, 0, 0].map(Value::Integer)),
        }
        let reply: Value = self
            .redis
            .script_no_replay(&scripts::STATS, self.stats_keys()?, args)
            .await?;
        Ok(Some(reply.into_array()))
    }

    /// Writes the buffered stat deltas to Redis now (one script, sent
    /// without replay). A background task does this every
    /// [`STATS_FLUSH_INTERVAL`]; call it before shutting the connection
    /// down so the last interval is not lost.
    pub async fn flush_stats(&self) -> Result<()> {
        self.write_stats(false).await.map(|_| ())
    }

    /// The current figures, after writing this process's pending deltas:
    /// one script on the stats slot, no scanning.
    pub async fn stats(&self) -> Result<SessionStats> {
        let items = self.write_stats(true).await?.unwrap_or_default();
        let get = |i: usize| {
            items
                .get(i)
                .and_then(Value::as_i64)
                .map_or(0, |v| u64::try_from(v).unwrap_or(0))
        };
        let ended = get(2);
        Ok(SessionStats {
            active: get(0),
            created: get(1),
            ended,
            unique_users: get(4),
            average_duration: (ended > 0).then(|| Duration::from_millis(get(3) / ended)),
        })
    }

    /// **Admin call; scans the whole key space under the prefix** (`SCAN`
    /// on every primary). Counts live sessions and user indexes exactly,
    /// resets `active` to the count and rebuilds the unique-user estimate
    /// from the users found. Concurrent creates and revokes during the scan
    /// may be off by their own number.
    pub async fn recount(&self) -> Result<SessionCensus> {
        // counted deltas first, so they are not applied on top of the count
        self.flush_stats().await?;
        let keys = self.redis.keys();
        let sessions = self
            .redis
            .scan_keys(&keys.pattern("s").any().build()?, SCAN_BATCH)
            .await?;
        let indexes = self
            .redis
            .scan_keys(&keys.pattern("su").any().build()?, SCAN_BATCH)
            .await?;
        // `PREFIX su:{TAG}:ENCODED-USER`: the user is the last segment
        let mut users = Vec::with_capacity(indexes.len());
        for key in &indexes {
            let Some((_, encoded)) = key.as_str().and_then(|k| k.split_once("}:")) else {
                continue;
            };
            match decode_segment(encoded) {
                Ok(user) => users.push(user),
                // not written by this crate: not a user index of ours
                Err(e) => tracing::warn!(key = ?key, error = %e, "recount skips a key"),
            }
        }
        let census = SessionCensus {
            sessions: u64::try_from(sessions.len()).unwrap_or(u64::MAX),
            users: u64::try_from(users.len()).unwrap_or(u64::MAX),
        };
        let stats = self.stats_keys()?;
        let client = self.redis.client();
        let ttl = i64::try_from(self.stats_ttl_ms()).unwrap_or(i64::MAX);
        let active = i64::try_from(census.sessions).unwrap_or(i64::MAX);
        let _: () = client.hset(&stats[0], ("active", active)).await?;
        let _: () = client.pexpire(&stats[0], ttl, None).await?;
        let _: () = client.del(&stats[1]).await?;
        for chunk in users.chunks(500) {
            let mut args = Vec::with_capacity(chunk.len() + 1);
            args.push(stats[1].as_str());
            args.extend(chunk.iter().map(String::as_str));
            let _: i64 = client
                .custom(
                    CustomCommand::new_static("PFADD", ClusterHash::FirstKey, false),
                    args,
                )
                .await?;
        }
        if !users.is_empty() {
            let _: () = client.pexpire(&stats[1], ttl, None).await?;
        }
        Ok(census)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_serialize_the_figures() {
        let stats = SessionStats {
            active: 3,
            unique_users: 2,
            created: 5,
            ended: 2,
            average_duration: Some(Duration::from_millis(1500)),
        };
        let json = serde_json::to_value(stats).unwrap();
        assert_eq!(json["active"], 3);
        assert_eq!(json["unique_users"], 2);
        assert_eq!(json["created"], 5);
        assert_eq!(json["ended"], 2);
        assert_eq!(json["average_duration"]["secs"], 1);
        assert_eq!(json["average_duration"]["nanos"], 500_000_000);
        let census = serde_json::to_value(SessionCensus {
            sessions: 7,
            users: 4,
        })
        .unwrap();
        assert_eq!(census, serde_json::json!({"sessions": 7, "users": 4}));
    }
}
