//! [`DemoConfig`]: every layer's configuration plus the demo's own settings.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use aeturnis_cache::CacheConfig;
use aeturnis_lock::LockConfig;
use aeturnis_ratelimit::{Preset, RateLimitConfig};
use aeturnis_session::SessionConfig;

use aeturnis_redis_core::Env;

use crate::error::Result;

/// The server's settings: the configuration of each Aeturnis layer it uses
/// and a few of its own. Build it with [`from_env`](Self::from_env) (what
/// the binary does) or [`defaults`](Self::defaults) (tests), then adjust
/// with the `with_*` methods.
///
/// ```
/// use aeturnis_demo::DemoConfig;
/// use std::time::Duration;
/// let config = DemoConfig::defaults()?.with_profile_ttl(Duration::from_secs(5));
/// assert_eq!(config.chat_limit.quota.limit().get(), 10);
/// # Ok::<(), aeturnis_demo::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoConfig {
    /// The cache. Default: [`CacheConfig::default`] (`CACHE_*` variables).
    pub cache: CacheConfig,
    /// Sessions. Default: [`SessionConfig::default`] (`SESSION_*` variables).
    pub sessions: SessionConfig,
    /// Locks. Default: [`LockConfig::default`] with a 2 s wait timeout.
    pub locks: LockConfig,
    /// `POST /auth/login`, per client IP. Default: the `auth` preset (5 per 15 min).
    pub auth_limit: RateLimitConfig,
    /// `POST /chat`, per user. Default: the `chat` preset (10 per min).
    pub chat_limit: RateLimitConfig,
    /// `POST /combat/action`, per user. Default: the `combat` preset (20 per 5 s).
    pub combat_limit: RateLimitConfig,
    /// Not used by an endpoint yet; built so its stats show in `/health`.
    /// Default: the `movement` preset (10 per s).
    pub movement_limit: RateLimitConfig,
    /// Every request, per client IP. Default: the `api` preset (100 per min).
    pub api_limit: RateLimitConfig,
    /// How many chat messages are kept. Default: 100.
    pub chat_capacity: NonZeroU32,
    /// How many chat messages `GET /chat` returns. Default: 20.
    pub chat_page: NonZeroU32,
    /// The chat log expires this long after the last message. Default: 1 h.
    pub chat_ttl: Duration,
    /// How long a cached player profile lives. Default: 60 s.
    pub profile_ttl: Duration,
    /// Age after which a cached profile or guild is served stale while one
    /// refresh reloads it (stale-while-revalidate). Default: 10 s.
    pub profile_soft_ttl: Duration,
    /// Whether [`AppState::start`](crate::AppState::start) runs the movement
    /// workers (`DEMO_MOVES_WORKERS`, `1`/`0`, default `1`). An instance
    /// without them still acknowledges moves; instances with them write
    /// every instance's moves.
    pub moves_workers: bool,
    /// How long a move delivered to a worker that died stays unacknowledged
    /// before another process's worker takes it over. Default: 5 s.
    pub moves_claim_idle: Duration,
    /// Where the SQLite database lives (`DEMO_DATA_DIR`); `None`: in
    /// memory, a fresh database per state (tests).
    pub data_dir: Option<PathBuf>,
    /// How long the PvP leaderboard lives after its last score. Default: 1 day.
    pub leaderboard_ttl: Duration,
    /// The lease of a trade lock. Default: 5 s.
    pub trade_lock_ttl: Duration,
    /// How long a player stays in a zone's presence without a heartbeat
    /// (`DEMO_PRESENCE_TTL_MS`): a crashed instance's players drop out
    /// within it. Sockets send a heartbeat every third of it
    /// ([`heartbeat`](Self::heartbeat)). Default: 15 s.
    pub presence_ttl: Duration,
}

impl DemoConfig {
    /// Every layer's defaults, ignoring the environment.
    ///
    /// # Errors
    /// Never with the built-in presets; typed as fallible because the
    /// presets are parsed like the environment.
    pub fn defaults() -> Result<Self> {
        Self::from_lookup(|_: &str| None)
    }

    /// The defaults overridden by each layer's variables (`CACHE_*`,
    /// `SESSION_*`, `LOCK_*`, `RATE_LIMIT_<PRESET>_WINDOW` / `_MAX`; see
    /// `deploy/.env.example`), read from the process environment.
    ///
    /// # Errors
    /// A variable that does not parse, naming it.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name: &str| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through
    /// `lookup`: each layer's own `from_lookup` reads its variables with the
    /// workspace's one reader (`aeturnis_redis_core::Env`).
    ///
    /// # Errors
    /// A variable that does not parse, naming it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Copy) -> Result<Self> {
        let env = Env::new(lookup);
        let mut locks = LockConfig::from_lookup(lookup)?;
        // the demo answers a busy trade within 2 s unless told otherwise
        if env.millis("LOCK_WAIT_TIMEOUT_MS")?.is_none() {
            locks = locks.with_wait_timeout(Duration::from_secs(2));
        }
        Ok(DemoConfig {
            cache: CacheConfig::from_lookup(lookup)?,
            sessions: SessionConfig::from_lookup(lookup)?,
            locks,
            auth_limit: RateLimitConfig::from_lookup(Preset::Auth, lookup)?,
            chat_limit: RateLimitConfig::from_lookup(Preset::Chat, lookup)?,
            combat_limit: RateLimitConfig::from_lookup(Preset::Combat, lookup)?,
            movement_limit: RateLimitConfig::from_lookup(Preset::Movement, lookup)?,
            api_limit: RateLimitConfig::from_lookup(Preset::Api, lookup)?,
            chat_capacity: NonZeroU32::MIN.saturating_add(99),
            chat_page: NonZeroU32::MIN.saturating_add(19),
            chat_ttl: Duration::from_secs(3600),
            profile_ttl: Duration::from_secs(60),
            profile_soft_ttl: Duration::from_secs(10),
            moves_claim_idle: Duration::from_secs(5),
            moves_workers: env.bool("DEMO_MOVES_WORKERS")?.unwrap_or(true),
            data_dir: env.string("DEMO_DATA_DIR").map(PathBuf::from),
            leaderboard_ttl: Duration::from_secs(86_400),
            trade_lock_ttl: Duration::from_secs(5),
            presence_ttl: env
                .millis("DEMO_PRESENCE_TTL_MS")?
                .unwrap_or(Duration::from_secs(15)),
        })
    }

    /// How often a socket refreshes its player's presence: a third of
    /// [`presence_ttl`](Self::presence_ttl) (at least 1 ms), so two
    /// heartbeats can be late before the player drops out.
    #[must_use]
    pub fn heartbeat(&self) -> Duration {
        (self.presence_ttl / 3).max(Duration::from_millis(1))
    }

    /// Sets [`presence_ttl`](Self::presence_ttl).
    #[must_use]
    pub fn with_presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl;
        self
    }

    /// Sets [`api_limit`](Self::api_limit).
    #[must_use]
    pub fn with_api_limit(mut self, limit: RateLimitConfig) -> Self {
        self.api_limit = limit;
        self
    }

    /// Sets [`auth_limit`](Self::auth_limit).
    #[must_use]
    pub fn with_auth_limit(mut self, limit: RateLimitConfig) -> Self {
        self.auth_limit = limit;
        self
    }

    /// Sets [`chat_limit`](Self::chat_limit).
    #[must_use]
    pub fn with_chat_limit(mut self, limit: RateLimitConfig) -> Self {
        self.chat_limit = limit;
        self
    }

    /// Sets [`combat_limit`](Self::combat_limit).
    #[must_use]
    pub fn with_combat_limit(mut self, limit: RateLimitConfig) -> Self {
        self.combat_limit = limit;
        self
    }

    /// Sets [`chat_capacity`](Self::chat_capacity) and
    /// [`chat_page`](Self::chat_page).
    #[must_use]
    pub fn with_chat_history(mut self, capacity: NonZeroU32, page: NonZeroU32) -> Self {
        self.chat_capacity = capacity;
        self.chat_page = page;
        self
    }

    /// Sets [`chat_ttl`](Self::chat_ttl).
    #[must_use]
    pub fn with_chat_ttl(mut self, ttl: Duration) -> Self {
        self.chat_ttl = ttl;
        self
    }

    /// Sets [`profile_ttl`](Self::profile_ttl).
    #[must_use]
    pub fn with_profile_ttl(mut self, ttl: Duration) -> Self {
        self.profile_ttl = ttl;
        self
    }

    /// Sets [`profile_soft_ttl`](Self::profile_soft_ttl).
    #[must_use]
    pub fn with_profile_soft_ttl(mut self, ttl: Duration) -> Self {
        self.profile_soft_ttl = ttl;
        self
    }

    /// Sets [`moves_claim_idle`](Self::moves_claim_idle).
    #[must_use]
    pub fn with_moves_claim_idle(mut self, idle: Duration) -> Self {
        self.moves_claim_idle = idle;
        self
    }

    /// Sets [`data_dir`](Self::data_dir).
    #[must_use]
    pub fn with_data_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.data_dir = dir;
        self
    }

    /// Sets [`leaderboard_ttl`](Self::leaderboard_ttl).
    #[must_use]
    pub fn with_leaderboard_ttl(mut self, ttl: Duration) -> Self {
        self.leaderboard_ttl = ttl;
        self
    }

    /// Sets [`trade_lock_ttl`](Self::trade_lock_ttl).
    #[must_use]
    pub fn with_trade_lock_ttl(mut self, ttl: Duration) -> Self {
        self.trade_lock_ttl = ttl;
        self
    }

    /// Sets [`locks`](Self::locks).
    #[must_use]
    pub fn with_locks(mut self, locks: LockConfig) -> Self {
        self.locks = locks;
        self
    }

    /// Sets [`sessions`](Self::sessions).
    #[must_use]
    pub fn with_sessions(mut self, sessions: SessionConfig) -> Self {
        self.sessions = sessions;
        self
    }
}
