//! Session statistics without scanning on the hot path.
//!
//! Two keys in a slot of their own (`PREFIX session-stats:{all}:counters`,
//! a hash, and `PREFIX session-stats:{all}:users`, a HyperLogLog). A
//! per-user script cannot touch them (they live in another cluster slot),
//! so after a create, revoke or eviction the manager sends one small
//! script for them on its own, in a spawned task, without replay:
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
//! A lost connection can drop an update (it is never applied twice), so the
//! figures are estimates; both keys expire one absolute lifetime after the
//! last update, when no session counted in them can still be alive.

use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, Value};
use aeturnis_redis_core::RedisKey;

use crate::config::millis;
use crate::error::Result;
use crate::manager::SessionManager;

/// Session figures, read without scanning.
///
/// They live in two keys in a slot of their own, updated after each
/// create, revoke or eviction by a small script sent without replay (a
/// dropped update is lost, never doubled). Sessions that end by idle or
/// absolute expiry run no script, so between
/// [`recount`](SessionManager::recount)s `active` is an upper bound and
/// `average_duration` covers only revoked and evicted sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionCensus {
    /// Session keys found.
    pub sessions: u64,
    /// User index keys found (an index outlives its last session by at most
    /// the touch interval).
    pub users: u64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsDelta {
    pub(crate) active: i64,
    pub(crate) created: i64,
    pub(crate) ended: i64,
    pub(crate) ended_ms: i64,
    pub(crate) user: Option<String>,
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
        millis(self.config.absolute_ttl).max(1)
    }

    /// Applies a delta to the counters in a spawned task (fire and forget:
    /// the caller's operation already completed in one round trip).
    pub(crate) fn record(&self, delta: StatsDelta) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no tokio runtime: session stats update skipped");
            return;
        };
        let manager = self.clone();
        handle.spawn(async move {
            if let Err(e) = manager.apply(delta).await {
                tracing::debug!(error = %e, "session stats update failed");
            }
        });
    }

    async fn apply(&self, delta: StatsDelta) -> Result<()> {
        let mut args: Vec<Value> = [
            i64::try_from(self.stats_ttl_ms()).unwrap_or(i64::MAX),
            delta.active,
            delta.created,
            delta.ended,
            delta.ended_ms,
        ]
        .into_iter()
        .map(Value::Integer)
        .collect();
        args.extend(delta.user.map(Value::from));
        self.run_stats_script(self.stats_keys()?, args).await
    }

    /// The current figures: one pipelined read of two keys, no scanning.
    pub async fn stats(&self) -> Result<SessionStats> {
        let keys = self.stats_keys()?;
        let client = self.redis.client();
        let (counters, users) = tokio::join!(
            client.hmget::<Vec<Option<i64>>, _, _>(
                &keys[0],
                vec!["active", "created", "ended", "ended_ms"]
            ),
            client.custom::<i64, _>(
                CustomCommand::new_static("PFCOUNT", ClusterHash::FirstKey, false),
                vec![keys[1].as_str()],
            ),
        );
        let counters = counters?;
        let get = |i: usize| {
            counters
                .get(i)
                .copied()
                .flatten()
                .map_or(0, |v| u64::try_from(v).unwrap_or(0))
        };
        let ended = get(2);
        Ok(SessionStats {
            active: get(0),
            created: get(1),
            ended,
            unique_users: u64::try_from(users?).unwrap_or(0),
            average_duration: (ended > 0).then(|| Duration::from_millis(get(3) / ended)),
        })
    }

    /// **Admin call; scans the whole key space under the prefix** (`SCAN`
    /// on every primary). Counts live sessions and user indexes exactly,
    /// resets `active` to the count and rebuilds the unique-user estimate
    /// from the users found. Concurrent creates and revokes during the scan
    /// may be off by their own number.
    pub async fn recount(&self) -> Result<SessionCensus> {
        let keys = self.redis.keys();
        let sessions = self.scan_all(&keys.pattern("s").any().build()?).await?;
        let indexes = self.scan_all(&keys.pattern("su").any().build()?).await?;
        let users: Vec<String> = indexes
            .iter()
            .filter_map(|k| k.split_once("}:").map(|(_, enc)| decode_segment(enc)))
            .collect();
        let census = SessionCensus {
            sessions: sessions.len() as u64,
            users: users.len() as u64,
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

    async fn scan_all(&self, pattern: &str) -> Result<Vec<String>> {
        let client = self.redis.client();
        let mut found = Vec::new();
        if self.redis.is_cluster() {
            let nodes = client
                .cached_cluster_state()
                .map(|s| s.unique_primary_nodes())
                .unwrap_or_default();
            for node in nodes {
                scan_node(&client.with_cluster_node(node), pattern, &mut found).await?;
            }
        } else {
            scan_node(client, pattern, &mut found).await?;
        }
        Ok(found)
    }
}

async fn scan_node<C: KeysInterface + Sync>(
    client: &C,
    pattern: &str,
    found: &mut Vec<String>,
) -> Result<()> {
    let mut cursor = "0".to_owned();
    loop {
        let (next, keys): (String, Vec<String>) = client
            .scan_page(cursor, pattern.to_owned(), Some(1000), None)
            .await?;
        found.extend(keys);
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// Inverse of the key space's user-segment encoding (`%25 %3A %7B %7D`).
fn decode_segment(text: &str) -> String {
    text.replace("%3A", ":")
        .replace("%7B", "{")
        .replace("%7D", "}")
        .replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_decode_encoded_user_segments() {
        let raw = "a:b{c}%3A";
        let enc = aeturnis_redis_core::keys::encode_segment(raw);
        assert_eq!(decode_segment(&enc), raw);
    }
}
