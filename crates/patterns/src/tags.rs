//! [`TagIndex`]: group cache entries under tags and invalidate a tag at once.
//!
//! A tag is a sorted set of member keys scored by each member's expiry on
//! the server's clock (`aeturnis:tag:{name}` under the cache's prefix).
//! Every write to a tag prunes its expired members and extends the set's
//! own TTL to its longest-lived member, so the set is bounded by the live
//! members and disappears with the last of them. (Version-stamped tags,
//! the other common design, keep nothing per member but make every read
//! check every tag's version: a round trip per read, which this crate's
//! one-`GET` hit path rules out.)
//!
//! [`invalidate_tag`](TagIndex::invalidate_tag) reads the live members and
//! `UNLINK`s them, grouped by slot on a cluster and all sent together, then
//! removes the set. It removes exactly the keys tagged (and still live): a
//! key written with the tag while the invalidation runs may survive it.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use aeturnis_cache::Cache;
use aeturnis_redis_core::duration::checked_millis;
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::{ConfigError, LuaScript, RedisKey};
use serde::Serialize;

use crate::error::{Error, Result};

static TAG: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_tag", include_str!("lua/tag.lua")));
static TAG_MEMBERS: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_tag_members", include_str!("lua/tag_members.lua")));

/// Keys per `UNLINK` in an invalidation.
const UNLINK_BATCH: usize = 500;

/// Tags over a [`Cache`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct TagIndex {
    cache: Cache,
}

impl TagIndex {
    /// Tags over `cache`'s keys; registers the scripts.
    #[must_use]
    pub fn new(cache: &Cache) -> Self {
        cache.redis().register_scripts([&*TAG, &*TAG_MEMBERS]);
        TagIndex {
            cache: cache.clone(),
        }
    }

    /// The key of a tag's member set.
    ///
    /// # Errors
    /// [`Error::Key`] for a bad tag name.
    pub fn tag_key(&self, tag: &str) -> Result<RedisKey> {
        Ok(self.cache.key("tag").id(tag).build()?)
    }

    /// Writes `value` at `key` for `ttl` (through [`Cache::set`]) and
    /// indexes it under every tag; the writes are sent together.
    ///
    /// # Errors
    /// A bad key, tag or TTL; a Redis error.
    pub async fn set_tagged<T: Serialize + ?Sized + Sync>(
        &self,
        key: &RedisKey,
        value: &T,
        ttl: Duration,
        tags: &[&str],
    ) -> Result<()> {
        // check everything before writing anything
        checked_millis(ttl).map_err(|e| ConfigError::duration("ttl", e))?;
        for tag in tags {
            self.tag_key(tag)?;
        }
        let (set, tagged) =
            futures::future::join(self.cache.set(key, value, ttl), self.tag(key, ttl, tags)).await;
        set.map_err(cache_error)?;
        tagged
    }

    /// Indexes an existing key (written by other code, such as a
    /// [`CacheAside`](crate::CacheAside)) under `tags` for `ttl`.
    ///
    /// # Errors
    /// A bad tag or TTL; a Redis error.
    pub async fn tag(&self, key: &RedisKey, ttl: Duration, tags: &[&str]) -> Result<()> {
        let ms = checked_millis(ttl).map_err(|e| ConfigError::duration("ttl", e))?;
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        let redis = self.cache.redis();
        let calls = tags.iter().map(|tag| async move {
            let tag_key = self.tag_key(tag)?;
            redis
                .script_on::<i64, _>(&TAG, &tag_key, |args| {
                    args.push(Value::from(key.as_str()));
                    args.push(Value::Integer(ms));
                })
                .await?;
            Ok::<_, Error>(())
        });
        futures::future::try_join_all(calls).await?;
        Ok(())
    }

    /// The live members of `tag`.
    ///
    /// # Errors
    /// A bad tag; a Redis error.
    pub async fn members(&self, tag: &str) -> Result<Vec<String>> {
        let tag_key = self.tag_key(tag)?;
        Ok(self
            .cache
            .redis()
            .script_on::<Vec<String>, _>(&TAG_MEMBERS, &tag_key, |_| {})
            .await?)
    }

    /// Removes every live key tagged `tag`, then the tag; returns how many
    /// keys were removed.
    ///
    /// # Errors
    /// A bad tag; a Redis error (some keys may be removed already).
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let members = self.members(tag).await?;
        let client = self.cache.redis().client();
        let mut by_slot: HashMap<u16, Vec<String>> = HashMap::new();
        for m in members {
            let slot = if self.cache.redis().is_cluster() {
                aeturnis_redis_core::hash_slot(&m)
            } else {
                0
            };
            by_slot.entry(slot).or_default().push(m);
        }
        let batches: Vec<Vec<String>> = by_slot
            .into_values()
            .flat_map(|keys| {
                keys.chunks(UNLINK_BATCH)
                    .map(<[String]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        let counts = futures::future::try_join_all(
            batches
                .into_iter()
                .map(|batch| client.unlink::<u64, _>(batch)),
        )
        .await?;
        client.unlink::<u64, _>(self.tag_key(tag)?).await?;
        Ok(counts.into_iter().sum())
    }
}

fn cache_error(e: aeturnis_cache::Error) -> Error {
    match e {
        aeturnis_cache::Error::Redis(core) => Error::from(core),
        aeturnis_cache::Error::Key(k) => Error::Key(k),
        aeturnis_cache::Error::Config(c) => Error::Config(c),
        other => Error::Cache(std::sync::Arc::new(other)),
    }
}
