//! [`SessionManager`]: the handle, its settings in milliseconds, and the
//! key layout. The operations are in `read.rs`, `write.rs`, `revoke.rs`
//! and `stats.rs`, one round trip each.

use std::sync::Arc;

use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, Value};
use aeturnis_redis_core::{Redis, RedisKey, ServerClock};

use crate::config::SessionConfig;
use crate::error::Result;
use crate::id::{SessionId, UserId};
use crate::scripts;
use crate::stats::StatsBuffer;

/// Creates, reads, slides, updates and revokes sessions. Cheap to clone.
///
/// See the crate docs for the key layout and the guarantees.
#[derive(Debug, Clone)]
pub struct SessionManager {
    pub(crate) redis: Redis,
    pub(crate) config: SessionConfig,
    /// The settings in whole milliseconds (rounded up, bounded by
    /// [`SessionConfig::validate`]).
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: u64,
    pub(crate) touch_ms: u64,
    pub(crate) stats: Arc<StatsBuffer>,
    /// The server clock estimate the fast read decides with.
    pub(crate) clock: ServerClock,
    /// `GETEX`, routed by its first argument (the key); fred 10.1 has no
    /// typed method for it.
    pub(crate) getex: CustomCommand,
    /// The idle TTL in ms, as `GETEX`'s `PX` argument.
    pub(crate) idle_arg: Value,
    /// Added to every clock estimate (the `test-hooks` feature sets it).
    pub(crate) clock_skew_ms: i64,
}

impl SessionManager {
    /// The index TTL that outlives a session whose TTL is the idle one:
    /// idle + touch interval + 1 s (sent to the scripts, which then need
    /// not format it).
    pub(crate) fn index_keep_ms(&self) -> u64 {
        self.idle_ms
            .saturating_add(self.touch_ms)
            .saturating_add(1000)
    }

    /// A manager over `redis` (keys go under the connection's key prefix).
    /// Fails when `config` does not [`validate`](SessionConfig::validate).
    pub fn new(redis: Redis, config: SessionConfig) -> Result<Self> {
        config.validate()?;
        let idle_ms = ceil_millis(config.idle_ttl);
        let manager = SessionManager {
            idle_ms,
            absolute_ms: ceil_millis(config.absolute_ttl),
            touch_ms: ceil_millis(config.touch_interval),
            stats: Arc::default(),
            clock: ServerClock::new(redis.clone()),
            getex: CustomCommand::new_static("GETEX", ClusterHash::FirstKey, false),
            idle_arg: Value::from(idle_ms.to_string()),
            clock_skew_ms: 0,
            redis,
            config,
        };
        manager.redis.register_scripts(scripts::all());
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

    /// Tests only (cargo feature `test-hooks`): makes every clock estimate
    /// of this manager wrong by `skew_ms` (negative: behind the server),
    /// beyond its uncertainty, to show what a wrong estimate can and cannot
    /// do.
    #[cfg(feature = "test-hooks")]
    #[must_use]
    pub fn with_clock_skew_ms_for_tests(mut self, skew_ms: i64) -> Self {
        self.clock_skew_ms = skew_ms;
        self
    }

    /// Tests and benches only (cargo feature `test-hooks`): the create
    /// script and the arguments after the fields that this manager sends
    /// it (idle ms, absolute ms, max, touch interval ms), then the index TTL
    /// it sends last; for a raw baseline that sends the same script with
    /// the same arguments.
    #[cfg(feature = "test-hooks")]
    #[must_use]
    pub fn create_script_for_tests(&self) -> (&'static aeturnis_redis_core::LuaScript, [u64; 5]) {
        (
            &crate::scripts::CREATE,
            [
                self.idle_ms,
                self.absolute_ms,
                u64::from(self.config.max_per_user.get()),
                self.touch_ms,
                self.index_keep_ms(),
            ],
        )
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
    pub(crate) fn session_head(&self, tag: &str) -> Result<String> {
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
    pub(crate) fn index_head(&self, tag: &str) -> Result<String> {
        let mut head = self.redis.keys().key("su").tag(tag).build()?.into_string();
        head.push(':');
        Ok(head)
    }
}
