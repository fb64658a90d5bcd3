//! Two handles on one Redis: A, a plain [`Cache`] (the other process), and
//! B, a [`NearCache`] in front of its own [`Cache`].

use std::time::Duration;

use aeturnis_cache::near::{NearCache, NearConfig, NearStats};
use aeturnis_cache::{Cache, CacheConfig, Redis, RedisConfig, RedisKey, Ttl};
use aeturnis_testkit::eventually;
use anyhow::Result;

/// The namespace B holds locally.
pub(crate) const NS: &str = "zone";
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn cache_at(url: &str, prefix: &str) -> Result<Cache> {
    let redis = Redis::connect(RedisConfig::from_url(url)?.with_key_prefix(prefix)).await?;
    Ok(Cache::new(
        redis,
        CacheConfig::default().with_default_ttl(Duration::from_secs(600)),
    )?)
}

/// A and B on `url` under `prefix`, B holding [`NS`] with `config`.
pub(crate) async fn pair_with(
    url: &str,
    prefix: &str,
    config: NearConfig,
) -> Result<(Cache, NearCache)> {
    let a = cache_at(url, prefix).await?;
    let b = NearCache::new(cache_at(url, prefix).await?, config).await?;
    Ok((a, b))
}

pub(crate) async fn pair(url: &str, prefix: &str) -> Result<(Cache, NearCache)> {
    pair_with(url, prefix, NearConfig::for_namespaces([NS])).await
}

/// Waits until `b`'s counters satisfy `done`.
pub(crate) async fn until(
    b: &NearCache,
    what: &str,
    done: impl Fn(&NearStats) -> bool,
) -> Result<NearStats> {
    eventually(what, WAIT, || async {
        let s = b.stats();
        if done(&s) {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await
}

/// Writes 8 KiB fillers through `a`, 64 a round, until Redis (under
/// `maxmemory` with an LRU policy) has evicted `key`. On a cluster the
/// fillers carry `tag`, so they land on the cold key's primary.
pub(crate) async fn fill_until_evicted(a: &Cache, key: &RedisKey, tag: Option<&str>) -> Result<()> {
    let filler = "x".repeat(8 * 1024);
    let mut batch = 0u32;
    eventually("Redis to evict the cold key", WAIT, || {
        batch += 1;
        let filler = &filler;
        async move {
            for i in 0..64 {
                let mut k = a.key("fill");
                if let Some(tag) = tag {
                    k = k.tag(tag);
                }
                let k = k.id(format!("{batch}-{i}")).build()?;
                a.set(&k, filler, Ttl::Default).await?;
            }
            if a.exists(key).await? {
                Err(anyhow::anyhow!("still there"))
            } else {
                Ok(())
            }
        }
    })
    .await
}
