//! [`WriteBehindConfig`]: streams, batches, retries, claiming.

use std::time::Duration;

use aeturnis_redis_core::duration;
use aeturnis_redis_core::ConfigError;

/// The settings of a [`WriteBehind`](super::WriteBehind). Checked by
/// [`WriteBehind::new`](super::WriteBehind::new): a zero count or duration
/// is an [`Error::Config`](crate::Error::Config) naming the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindConfig {
    /// The name: part of the stream keys (`wb:<name>:{<name>-<i>}`) and the
    /// consumer group. Default: `"default"`.
    pub name: String,
    /// How many streams the writes are spread over (one worker each). All
    /// writers and workers of one name must agree. Default: 4.
    pub streams: u16,
    /// The most entries a worker reads (and hands the writer, before
    /// coalescing) at once. Default: 256.
    pub batch: usize,
    /// How long one `XREADGROUP ... BLOCK` waits. Default: 1 s.
    pub block: Duration,
    /// Calls of `write_batch` for one batch before its entries go to the
    /// dead-letter stream. Default: 5.
    pub max_attempts: u32,
    /// The first wait between attempts; it doubles up to `max_backoff`.
    /// Default: 50 ms.
    pub first_backoff: Duration,
    /// The longest wait between attempts. Default: 2 s.
    pub max_backoff: Duration,
    /// Deliveries of one entry (its first read, then one per
    /// `XAUTOCLAIM`) after which a claimed entry goes to the dead-letter
    /// stream unwritten: an entry whose handling kills its worker would
    /// otherwise come back forever. Default: 5.
    pub max_deliveries: u32,
    /// How long an entry stays pending with another consumer before a
    /// worker takes it over (`XAUTOCLAIM`): longer than a batch can take.
    /// Default: 30 s.
    pub claim_idle: Duration,
    /// TTL of the cache entry `write` stores. Default: 1 h.
    pub cache_ttl: Duration,
    /// This process's consumer name prefix (worker `i` is `<consumer>-<i>`).
    /// Default: random.
    pub consumer: Option<String>,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig {
            name: "default".to_owned(),
            streams: 4,
            batch: 256,
            block: Duration::from_secs(1),
            max_attempts: 5,
            max_deliveries: 5,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            claim_idle: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(3600),
            consumer: None,
        }
    }
}

macro_rules! with {
    ($(#[$doc:meta] $fn:ident $field:ident: $ty:ty),+ $(,)?) => {$(
        #[$doc]
        #[must_use]
        pub fn $fn(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    )+};
}

impl WriteBehindConfig {
    /// The defaults, under `name`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        WriteBehindConfig {
            name: name.to_owned(),
            ..WriteBehindConfig::default()
        }
    }

    with! {
        /// Sets [`streams`](Self::streams).
        with_streams streams: u16,
        /// Sets [`batch`](Self::batch).
        with_batch batch: usize,
        /// Sets [`block`](Self::block).
        with_block block: Duration,
        /// Sets [`max_attempts`](Self::max_attempts).
        with_max_attempts max_attempts: u32,
        /// Sets [`max_deliveries`](Self::max_deliveries).
        with_max_deliveries max_deliveries: u32,
        /// Sets [`first_backoff`](Self::first_backoff).
        with_first_backoff first_backoff: Duration,
        /// Sets [`max_backoff`](Self::max_backoff).
        with_max_backoff max_backoff: Duration,
        /// Sets [`claim_idle`](Self::claim_idle).
        with_claim_idle claim_idle: Duration,
        /// Sets [`cache_ttl`](Self::cache_ttl).
        with_cache_ttl cache_ttl: Duration,
    }

    /// Sets [`consumer`](Self::consumer).
    #[must_use]
    pub fn with_consumer(mut self, consumer: &str) -> Self {
        self.consumer = Some(consumer.to_owned());
        self
    }

    /// Checks every setting.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let zero = |name: &str| ConfigError::invalid(name, "must be at least 1");
        if self.streams == 0 {
            return Err(zero("streams"));
        }
        if self.batch == 0 {
            return Err(zero("batch"));
        }
        if self.max_attempts == 0 {
            return Err(zero("max_attempts"));
        }
        if self.max_deliveries == 0 {
            return Err(zero("max_deliveries"));
        }
        for (name, d) in [
            ("block", self.block),
            ("first_backoff", self.first_backoff),
            ("max_backoff", self.max_backoff),
            ("claim_idle", self.claim_idle),
            ("cache_ttl", self.cache_ttl),
        ] {
            duration::check(d).map_err(|e| ConfigError::duration(name, e))?;
        }
        if self.first_backoff > self.max_backoff {
            return Err(ConfigError::invalid(
                "first_backoff",
                "must not exceed max_backoff",
            ));
        }
        Ok(())
    }
}
