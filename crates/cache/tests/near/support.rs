//! Two handles on one Redis: A, a plain [`Cache`] (the other process), and
//! B, a [`NearCache`] in front of its own [`Cache`].

use std::time::Duration;

use aeturnis_cache::near::{NearCache, NearConfig, NearStats};
use aeturnis_cache::{Cache, CacheConfig, Redis, RedisConfig};
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
