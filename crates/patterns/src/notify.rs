//! Waking the processes that wait on another process's lease.
//!
//! When a policy sets a lease wait, a reader that finds another process's
//! lease does not load: it subscribes to the key's fill channel (sharded
//! pub/sub: `SSUBSCRIBE`, served by the shard that owns the channel), looks
//! at the key once more (the value may have landed before the
//! subscription), and waits for the lease holder's `SPUBLISH` after its
//! store, at most the policy's lease wait. One subscriber connection per
//! [`CacheAside`](crate::CacheAside), opened on the first wait; a channel
//! is subscribed while it has waiters. A lost message costs the waiter its
//! bounded wait, after which it loads by itself (without storing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aeturnis_redis_core::fred::clients::SubscriberClient;
use aeturnis_redis_core::fred::interfaces::{EventInterface, PubsubInterface};
use aeturnis_redis_core::{Redis, RedisKey};
use tokio::sync::oneshot;

type Waiters = Arc<Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>>;

/// The fill channel of a key.
pub(crate) fn channel(key: &RedisKey) -> String {
    format!("{key}:filled")
}

/// One subscriber connection and the waiters per channel.
pub(crate) struct Notifier {
    client: SubscriberClient,
    waiters: Waiters,
}

impl Notifier {
    /// Connects the subscriber and starts dispatching its messages.
    pub(crate) async fn connect(redis: &Redis) -> aeturnis_redis_core::Result<Notifier> {
        let client = redis.subscriber().await?;
        let waiters: Waiters = Arc::default();
        let dispatch = Arc::clone(&waiters);
        // the task ends when the client is dropped (its channel closes)
        drop(client.on_message(move |message| {
            let woken = dispatch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&message.channel.to_string());
            for tx in woken.unwrap_or_default() {
                let _ = tx.send(());
            }
            async { Ok(()) }
        }));
        Ok(Notifier { client, waiters })
    }

    /// Registers a waiter on `channel` and makes sure it is subscribed.
    pub(crate) async fn wait_on(
        &self,
        channel: &str,
    ) -> aeturnis_redis_core::Result<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            let list = waiters.entry(channel.to_owned()).or_default();
            list.push(tx);
            list.len() == 1
        };
        if first {
            self.client.ssubscribe(channel).await?;
        }
        Ok(rx)
    }

    /// Drops the channel's subscription when no waiter is left on it.
    pub(crate) async fn release(&self, channel: &str) {
        let idle = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            match waiters.get_mut(channel) {
                Some(list) => {
                    list.retain(|tx| !tx.is_closed());
                    if list.is_empty() {
                        waiters.remove(channel);
                        true
                    } else {
                        false
                    }
                }
                None => true,
            }
        };
        if idle {
            if let Err(e) = self.client.sunsubscribe(channel).await {
                tracing::debug!(%channel, error = %e, "could not unsubscribe a fill channel");
            }
        }
    }
}

/// Publishes that `key` was filled (after a store, when the policy waits
/// on leases). A lost message only costs waiters their bounded wait.
pub(crate) async fn publish_fill(redis: &Redis, key: &RedisKey) {
    let sent: Result<i64, _> = redis.client().spublish(channel(key), "").await;
    if let Err(e) = sent {
        tracing::debug!(key = %key, error = %e, "could not announce a fill");
    }
}
