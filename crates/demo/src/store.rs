//! [`Store`]: the database behind the cache patterns of aeturnis-patterns.
//!
//! | data | pattern |
//! |---|---|
//! | profiles | `get_or_load` with stale-while-revalidate, tagged with the guild and zone |
//! | character updates | `write_through` (SQLite, then a fresh cache entry) |
//! | positions | `WriteBehind` (acknowledged once in a Redis stream, coalesced into SQLite) |
//! | guilds | `get_or_load`, tagged; a rename invalidates every entry of the tag |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aeturnis_cache::Cache;
use aeturnis_patterns::write_behind::{Pending, StreamId, WriteBehind, WriteBehindConfig, Writer};
use aeturnis_patterns::write_through::WriteMode;
use aeturnis_patterns::{CacheAside, LoadPolicy, Policy, TagIndex};
use aeturnis_redis_core::{Classify, ErrorClass, RedisKey};
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError, Guild, Position};
use crate::players::PlayerProfile;

/// A failure of the database or of a cache pattern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A cache pattern failed (Redis, or a load from SQLite).
    #[error(transparent)]
    Patterns(#[from] aeturnis_patterns::Error),
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Db(e) => e.class(),
            StoreError::Patterns(e) => e.class(),
        }
    }
}

/// Where a read was answered from (`X-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CacheOutcome {
    /// A fresh cache entry.
    Hit,
    /// Loaded from the database by this request.
    Miss,
    /// An entry past its soft TTL, served while one refresh runs.
    Stale,
}

impl CacheOutcome {
    /// `hit`, `miss` or `stale`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale => "stale",
        }
    }
}

/// A cached value with the time it was read from the database, so a
/// reader can tell a stale entry from a fresh one.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stamped<T> {
    at_ms: u64,
    value: T,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes batches of positions to SQLite (idempotent: older stream ids
/// never overwrite newer ones).
#[derive(Debug, Clone)]
pub struct MoveWriter {
    db: Db,
}

impl Writer for MoveWriter {
    type Value = Position;
    type Error = DbError;

    async fn write_batch(&self, batch: &[Pending<Position>]) -> Result<(), DbError> {
        let rows = batch
            .iter()
            .map(|p| (p.value.clone(), p.id.ms(), p.id.seq()))
            .collect();
        self.db.write_positions(rows).await
    }
}

/// The database and the cache patterns in front of it; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    cache: Cache,
    profiles: CacheAside<Stamped<PlayerProfile>>,
    guilds: CacheAside<Stamped<Guild>>,
    tags: TagIndex,
    moves: WriteBehind<MoveWriter>,
    policy: Policy,
    soft_ttl: Duration,
    ttl: Duration,
}

impl Store {
    /// The patterns on `cache` in front of `db`: entries live `ttl`, and are
    /// served stale (while one refresh runs) after `soft_ttl`; a move left
    /// unacknowledged by a dead worker is taken over after `claim_idle`. The movement
    /// workers start with [`start`](Self::start).
    ///
    /// # Errors
    /// A TTL the patterns refuse.
    pub fn new(
        db: Db,
        cache: &Cache,
        ttl: Duration,
        soft_ttl: Duration,
        claim_idle: Duration,
    ) -> Result<Store, aeturnis_patterns::Error> {
        let policy = LoadPolicy::new(ttl).with_soft_ttl(soft_ttl).build()?;
        let moves = WriteBehind::new(
            cache,
            WriteBehindConfig::new("moves")
                .with_streams(2)
                .with_batch(256)
                .with_block(Duration::from_millis(200))
                .with_claim_idle(claim_idle),
            MoveWriter { db: db.clone() },
        )?;
        Ok(Store {
            profiles: CacheAside::new(cache),
            guilds: CacheAside::new(cache),
            tags: TagIndex::new(cache),
            cache: cache.clone(),
            moves,
            policy,
            soft_ttl,
            ttl,
            db,
        })
    }

    /// Reads through the cache patterns (profiles and guilds) plus the
    /// plain cache's own reads: `(hits, stale, misses)`.
    #[must_use]
    pub fn read_counts(&self) -> (u64, u64, u64) {
        let plain = self.cache.stats();
        let (p, g) = (self.profiles.stats(), self.guilds.stats());
        (
            plain.hits + p.hits + p.negative_hits + g.hits + g.negative_hits,
            p.stale_served + g.stale_served,
            plain.misses + p.misses + g.misses,
        )
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The movement write-behind.
    #[must_use]
    pub fn moves(&self) -> &WriteBehind<MoveWriter> {
        &self.moves
    }

    /// Starts the movement workers: they first drain what the streams hold
    /// (moves acknowledged by a process that died before writing them).
    ///
    /// # Errors
    /// A Redis error.
    pub async fn start(&self) -> Result<(), StoreError> {
        Ok(self.moves.start().await?)
    }

    /// Writes every acknowledged move to SQLite, then stops the workers.
    ///
    /// # Errors
    /// A Redis error while flushing (the moves stay in the stream).
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let flushed = self.moves.flush().await;
        self.moves.shutdown().await;
        Ok(flushed?)
    }

    fn key(&self, kind: &str, id: &str) -> Result<RedisKey, StoreError> {
        let key = self.cache.key(kind).id(id).build();
        Ok(key.map_err(aeturnis_patterns::Error::from)?)
    }

    /// Reads through the cache: the value, and where it came from.
    async fn read<T, F, Fut>(
        &self,
        aside: &CacheAside<Stamped<T>>,
        key: &RedisKey,
        load: F,
    ) -> Result<(Option<T>, CacheOutcome), StoreError>
    where
        T: aeturnis_patterns::Cacheable,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Option<T>, DbError>> + Send + 'static,
    {
        let started = now_ms();
        let loaded = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&loaded);
        let found = aside
            .get_or_load(key, &self.policy, move || {
                flag.store(true, Ordering::Relaxed);
                let fut = load();
                async move {
                    let value = fut.await?;
                    Ok::<_, DbError>(value.map(|value| Stamped {
                        at_ms: now_ms(),
                        value,
                    }))
                }
            })
            .await?;
        let Some(found) = found else {
            return Ok((None, CacheOutcome::Miss));
        };
        let soft_ms = u64::try_from(self.soft_ttl.as_millis()).unwrap_or(u64::MAX);
        // the loader also runs for a stale entry's background refresh: a
        // miss is a value loaded during this request
        let outcome = if loaded.load(Ordering::Relaxed) && found.at_ms >= started {
            CacheOutcome::Miss
        } else if now_ms().saturating_sub(found.at_ms) >= soft_ms {
            CacheOutcome::Stale
        } else {
            CacheOutcome::Hit
        };
        Ok((Some(found.value), outcome))
    }

    /// Tags a cached profile with its guild and zone (`guild:<id>`,
    /// `zone:<id>`).
    async fn tag_profile(&self, key: &RedisKey, p: &PlayerProfile) -> Result<(), StoreError> {
        let zone = format!("zone:{}", p.zone);
        let guild = p.guild.as_ref().map(|g| format!("guild:{g}"));
        let mut tags = vec![zone.as_str()];
        tags.extend(guild.as_deref());
        Ok(self.tags.tag(key, self.ttl, &tags).await?)
    }

    /// A profile through cache-aside (stale-while-revalidate).
    ///
    /// # Errors
    /// A database or Redis error.
    pub async fn profile(
        &self,
        id: &str,
    ) -> Result<(Option<PlayerProfile>, CacheOutcome), StoreError> {
        let key = self.key("profile", id)?;
        let (db, owned) = (self.db.clone(), id.to_owned());
        let (found, outcome) = self
            .read(&self.profiles, &key, move || {
                let (db, id) = (db.clone(), owned.clone());
                async move { db.profile(&id).await }
            })
            .await?;
        if let (Some(p), CacheOutcome::Miss) = (&found, outcome) {
            self.tag_profile(&key, p).await?;
        }
        Ok((found, outcome))
    }

    /// Updates a character through write-through: SQLite first, then a
    /// fresh cache entry (the next read is a hit with the new row).
    /// `Ok(None)` when there is no such character.
    ///
    /// # Errors
    /// A database or Redis error.
    pub async fn update_character(
        &self,
        id: &str,
        class: &str,
        level: u32,
    ) -> Result<Option<PlayerProfile>, StoreError> {
        let key = self.key("profile", id)?;
        let Some(mut profile) = self.db.profile(id).await? else {
            return Ok(None);
        };
        profile.class = class.to_owned();
        profile.level = level;
        let stamped = Stamped {
            at_ms: now_ms(),
            value: profile.clone(),
        };
        self.profiles
            .write_through(&key, &stamped, &self.policy, WriteMode::Set, async {
                // the row was just read: `false` (no row) is not expected
                self.db.set_character(id, class, level).await.map(|_| ())
            })
            .await?;
        self.tag_profile(&key, &profile).await?;
        Ok(Some(profile))
    }

    /// A guild through cache-aside, tagged `guild:<id>`.
    ///
    /// # Errors
    /// A database or Redis error.
    pub async fn guild(&self, id: &str) -> Result<(Option<Guild>, CacheOutcome), StoreError> {
        let key = self.key("guild", id)?;
        let (db, owned) = (self.db.clone(), id.to_owned());
        let (found, outcome) = self
            .read(&self.guilds, &key, move || {
                let (db, id) = (db.clone(), owned.clone());
                async move { db.guild(&id).await }
            })
            .await?;
        if found.is_some() && outcome == CacheOutcome::Miss {
            self.tags
                .tag(&key, self.ttl, &[&format!("guild:{id}")])
                .await?;
        }
        Ok((found, outcome))
    }

    /// Renames a guild in SQLite, then invalidates every cached entry
    /// tagged with it (the guild and its members' profiles); returns how
    /// many entries were removed, `None` when there is no such guild.
    ///
    /// # Errors
    /// A database or Redis error.
    pub async fn rename_guild(&self, id: &str, name: &str) -> Result<Option<u64>, StoreError> {
        let renamed = self.db.rename_guild(id, name).await?;
        if !renamed {
            return Ok(None);
        }
        Ok(Some(
            self.tags.invalidate_tag(&format!("guild:{id}")).await?,
        ))
    }

    /// Records a move through write-behind; the returned stream id is the
    /// acknowledgement (the move survives a crash from then on).
    ///
    /// # Errors
    /// A Redis error (the move was not acknowledged).
    pub async fn record_move(&self, position: &Position) -> Result<StreamId, StoreError> {
        let key = self.key("position", &position.player)?;
        Ok(self.moves.write(&key, position).await?)
    }
}
