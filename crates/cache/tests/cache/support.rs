//! Shared helpers: connecting a cache on a test context, reading `PTTL`
//! straight from Redis, a typed value to store.

use std::time::Duration;

use aeturnis_cache::core::prelude::*;
use aeturnis_cache::core::CodecKind;
use aeturnis_cache::{Cache, CacheConfig, Redis, RedisConfig, RedisKey};
use aeturnis_testkit::TestCtx;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

pub(crate) const TTL: Duration = Duration::from_secs(600);

pub(crate) async fn connect(ctx: &TestCtx, codec: CodecKind, config: CacheConfig) -> Result<Cache> {
    let redis = Redis::connect(
        RedisConfig::from_url(&ctx.url)?
            .with_key_prefix(&ctx.prefix)
            .with_codec(codec),
    )
    .await?;
    Ok(Cache::new(redis, config)?)
}

pub(crate) async fn cache(ctx: &TestCtx) -> Result<Cache> {
    connect(
        ctx,
        CodecKind::MessagePack,
        CacheConfig::default().with_default_ttl(TTL),
    )
    .await
}

/// `PTTL` read straight from Redis.
pub(crate) async fn pttl(cache: &Cache, key: &RedisKey) -> Result<i64> {
    Ok(cache.redis().client().pttl::<i64, _>(key).await?)
}

pub(crate) async fn assert_has_ttl(cache: &Cache, key: &RedisKey, max: Duration) -> Result<()> {
    let ms = pttl(cache, key).await?;
    ensure!(
        ms > 0 && ms <= max.as_millis() as i64,
        "{key} has PTTL {ms}, expected 1..={}",
        max.as_millis()
    );
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
}

pub(crate) fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("player-{id}"),
        tags: vec!["pvp".into(), "guild".into()],
    }
}
