//! [`DemoConfig`]: every layer's configuration plus the demo's own settings.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_cache::CacheConfig;
use aeturnis_lock::LockConfig;
use aeturnis_ratelimit::{Preset, RateLimitConfig};
use aeturnis_session::SessionConfig;

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
    /// How long the PvP leaderboard lives after its last score. Default: 1 day.
    pub leaderboard_ttl: Duration,
    /// The lease of a trade lock. Default: 5 s.
    pub trade_lock_ttl: Duration,
}

impl DemoConfig {
    /// Every layer's defaults, ignoring the environment.
    ///
    /// # Errors
    /// Never with the built-in presets; typed as fallible because the
    /// presets are parsed like the environment.
    pub fn defaults() -> Result<Self> {
        Self::build(
            CacheConfig::default(),
            SessionConfig::default(),
            |_: &str| None,
        )
    }

    /// The defaults overridden by each layer's variables: `CACHE_*`,
    /// `SESSION_*` and `RATE_LIMIT_<PRESET>_WINDOW` / `_MAX`.
    ///
    /// # Errors
    /// A variable that does not parse, naming it.
    pub fn from_env() -> Result<Self> {
        Self::build(
            CacheConfig::from_env()?,
            SessionConfig::from_env()?,
            |name: &str| std::env::var(name).ok(),
        )
    }

    fn build(
        cache: CacheConfig,
        sessions: SessionConfig,
        lookup: impl Fn(&str) -> Option<String> + Copy,
    ) -> Result<Self> {
        Ok(DemoConfig {
            cache,
            sessions,
            locks: LockConfig::default().with_wait_timeout(Duration::from_secs(2)),
            auth_limit: Preset::Auth.config_from_lookup(lookup)?,
            chat_limit: Preset::Chat.config_from_lookup(lookup)?,
            combat_limit: Preset::Combat.config_from_lookup(lookup)?,
            movement_limit: Preset::Movement.config_from_lookup(lookup)?,
            api_limit: Preset::Api.config_from_lookup(lookup)?,
            chat_capacity: NonZeroU32::MIN.saturating_add(99),
            chat_page: NonZeroU32::MIN.saturating_add(19),
            chat_ttl: Duration::from_secs(3600),
            profile_ttl: Duration::from_secs(60),
            leaderboard_ttl: Duration::from_secs(86_400),
            trade_lock_ttl: Duration::from_secs(5),
        })
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
