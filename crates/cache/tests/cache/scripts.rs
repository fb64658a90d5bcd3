//! The cache registers all of its Lua scripts when it is built, so
//! `Redis::load_scripts` preloads them.

use aeturnis_cache::{Cache, CacheConfig, Redis, RedisConfig};
use aeturnis_testkit::TestCtx;
use anyhow::{ensure, Result};

const SCRIPTS: [&str; 4] = [
    "cache_incr",
    "cache_write_with_ttl",
    "cache_leaderboard_around",
    "cache_zset_incr",
];

async fn should_register_every_script_when_built(ctx: TestCtx) -> Result<()> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    ensure!(
        redis.registered_scripts().is_empty(),
        "{:?}",
        redis.registered_scripts()
    );
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    assert_eq!(redis.registered_scripts(), SCRIPTS);
    // building another cache on the same handle registers nothing twice
    let _again = Cache::from_redis(redis.clone());
    assert_eq!(cache.redis().registered_scripts(), SCRIPTS);
    assert_eq!(redis.load_scripts().await?, SCRIPTS.len());
    Ok(())
}

aeturnis_testkit::topology_tests!(should_register_every_script_when_built);
