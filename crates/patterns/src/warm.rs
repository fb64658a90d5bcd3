//! [`CacheAside::warm`]: load many keys ahead of demand, a bounded number
//! at a time, with progress.
//!
//! Each key that holds nothing is loaded through the same path as a miss
//! (lease, loader, conditional store), so warming never writes over a
//! newer value or a concurrent invalidation; a key that holds an entry or
//! a lease is skipped. Progress goes out on a `watch` channel after every
//! key; the call returns the final tally.

use std::error::Error as StdError;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::RedisKey;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::cache_aside::{CacheAside, Cacheable};
use crate::policy::Policy;

/// How far a warm-up has come. Serialises for a dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WarmProgress {
    /// Keys asked for.
    pub total: u64,
    /// Keys loaded and stored (or loaded and refused by a newer value).
    pub loaded: u64,
    /// Keys that already held an entry or a lease.
    pub skipped: u64,
    /// Keys whose loader or Redis call failed.
    pub failed: u64,
    /// Every key has been handled.
    pub done: bool,
}

impl<T: Cacheable> CacheAside<T> {
    /// Warms `keys` with `loader(key)`, at most `concurrency` at a time,
    /// reporting on `progress` after each key. Never fails as a whole: a
    /// key's failure is counted in [`WarmProgress::failed`] (and logged).
    pub async fn warm<F, Fut, E>(
        &self,
        keys: Vec<RedisKey>,
        policy: &Policy,
        loader: F,
        concurrency: NonZeroUsize,
        progress: Option<&watch::Sender<WarmProgress>>,
    ) -> WarmProgress
    where
        F: Fn(RedisKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        let mut tally = WarmProgress {
            total: keys.len() as u64,
            ..WarmProgress::default()
        };
        if let Some(tx) = progress {
            tx.send_replace(tally);
        }
        let loader = Arc::new(loader);
        let mut outcomes = futures::stream::iter(keys)
            .map(|key| {
                let loader = Arc::clone(&loader);
                async move { self.warm_one(key, policy, loader).await }
            })
            .buffer_unordered(concurrency.get());
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Outcome::Loaded => tally.loaded += 1,
                Outcome::Skipped => tally.skipped += 1,
                Outcome::Failed => tally.failed += 1,
            }
            if let Some(tx) = progress {
                tx.send_replace(tally);
            }
        }
        tally.done = true;
        if let Some(tx) = progress {
            tx.send_replace(tally);
        }
        tally
    }

    async fn warm_one<F, Fut, E>(&self, key: RedisKey, policy: &Policy, loader: Arc<F>) -> Outcome
    where
        F: Fn(RedisKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Option<T>, E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        match self.redis().client().exists::<u64, _>(&key).await {
            Ok(n) if n > 0 => return Outcome::Skipped,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "warming: cannot check the key");
                return Outcome::Failed;
            }
        }
        let for_loader = key.clone();
        let load = move || loader(for_loader.clone());
        match self.lead(&key, policy, Arc::new(load)).await {
            Ok(_) => Outcome::Loaded,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "warming: the load failed");
                Outcome::Failed
            }
        }
    }
}

enum Outcome {
    Loaded,
    Skipped,
    Failed,
}
