//! Waking waiters when a lock is released.
//!
//! One registry per manager: a [`Notify`] per resource that has waiters,
//! woken by local releases at once and by release messages from other
//! processes through one shared pub/sub client (created on the first wait,
//! never per waiter). A channel is subscribed while it has waiters and
//! unsubscribed [`UNSUBSCRIBE_LINGER`] after the last one left, unless a
//! new waiter came meanwhile: under contention a process's waiters come
//! and go on every hand-off (with the in-process queue only one of them
//! waits in Redis at a time), and a SUBSCRIBE + UNSUBSCRIBE round per
//! hand-off would sit on the hand-off's path. A queued waiter (single
//! instance) also registers its token: a release that hands the lock over
//! names the new holder (the message payload is the lock's new value,
//! which starts with the holder's token), and only that waiter is woken,
//! with the value, so it holds the lock without another round trip.
//! Waiters without a token (Redlock) are woken all at once. The bounded
//! back-off poll covers a lost message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aeturnis_redis_core::fred::clients::SubscriberClient;
use aeturnis_redis_core::fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use aeturnis_redis_core::Redis;
use tokio::sync::{broadcast::error::RecvError, Notify, OnceCell};
use tokio::task::JoinHandle;

use crate::token::LockToken;

type Waiters = Mutex<HashMap<String, (Arc<Notify>, usize)>>;

/// How long a channel stays subscribed after its last waiter left.
pub(crate) const UNSUBSCRIBE_LINGER: Duration = Duration::from_secs(1);

/// What a waiter needs to unsubscribe its channel: the client, the set of
/// subscribed channels, and the channels with an unsubscribe pending.
type Unsubscribe = (
    SubscriberClient,
    Arc<tokio::sync::Mutex<HashSet<String>>>,
    Arc<Mutex<HashSet<String>>>,
);
type Tokens = Mutex<HashMap<String, Arc<Grant>>>;

/// A queued waiter's wake-up: the lock value a hand-off gave it, if any.
#[derive(Default)]
pub(crate) struct Grant {
    notify: Notify,
    value: Mutex<Option<String>>,
}

pub(crate) struct Wakers {
    redis: Option<Redis>,
    waiters: Arc<Waiters>,
    tokens: Arc<Tokens>,
    subscriber: OnceCell<Option<Subscriber>>,
    /// Channels subscribed on the server; the lock serialises SUBSCRIBE
    /// and UNSUBSCRIBE so a late unsubscribe cannot undo a new subscribe.
    subscribed: Arc<tokio::sync::Mutex<HashSet<String>>>,
    /// Channels whose unsubscribe waits out [`UNSUBSCRIBE_LINGER`].
    lingering: Arc<Mutex<HashSet<String>>>,
}

struct Subscriber {
    client: SubscriberClient,
    dispatch: JoinHandle<()>,
}

impl Wakers {
    /// `redis: None` gives local wake-ups only (Redlock).
    pub(crate) fn new(redis: Option<Redis>) -> Wakers {
        Wakers {
            redis,
            waiters: Arc::new(Mutex::new(HashMap::new())),
            tokens: Arc::new(Mutex::new(HashMap::new())),
            subscriber: OnceCell::new(),
            subscribed: Arc::new(tokio::sync::Mutex::new(HashSet::new())),
            lingering: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Registers a waiter on `channel` and subscribes the channel (see
    /// [`register_local`](Self::register_local) and
    /// [`subscribe`](Self::subscribe)).
    pub(crate) async fn register(&self, channel: &str, token: Option<&str>) -> Waiter {
        let mut waiter = self.register_local(channel, token);
        self.subscribe(&mut waiter).await;
        waiter
    }

    /// Registers a waiter on `channel`, in this process only (no round
    /// trip): from now on a local release wakes it. With `token`, it is
    /// woken only when a release names it, and a wake-up that comes while
    /// it is not waiting is kept for its next wait.
    pub(crate) fn register_local(&self, channel: &str, token: Option<&str>) -> Waiter {
        let notify = {
            let mut map = lock(&self.waiters);
            let entry = map
                .entry(channel.to_owned())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            Arc::clone(&entry.0)
        };
        let (notify, token) = match token {
            Some(token) => {
                let own = Arc::new(Grant::default());
                lock_tokens(&self.tokens).insert(token.to_owned(), Arc::clone(&own));
                (
                    Wake::Grant(own),
                    Some((token.to_owned(), Arc::downgrade(&self.tokens))),
                )
            }
            None => (Wake::Channel(notify), None),
        };
        Waiter {
            wake: notify,
            channel: channel.to_owned(),
            token,
            waiters: Arc::downgrade(&self.waiters),
            unsubscribe: None,
        }
    }

    /// Makes sure `waiter`'s channel is subscribed, so releases in other
    /// processes wake it. Returns whether it is (a subscriber failure is
    /// logged and leaves the waiter on polling and local wake-ups).
    pub(crate) async fn subscribe(&self, waiter: &mut Waiter) -> bool {
        let Some(sub) = self.subscriber().await else {
            return false;
        };
        waiter.unsubscribe = Some((
            sub.client.clone(),
            Arc::clone(&self.subscribed),
            Arc::clone(&self.lingering),
        ));
        let channel = waiter.channel.as_str();
        let mut subscribed = self.subscribed.lock().await;
        if subscribed.contains(channel) {
            return true;
        }
        match sub.client.ssubscribe(channel).await {
            Ok(()) => {
                subscribed.insert(channel.to_owned());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, channel, "lock: SUBSCRIBE failed; waiting by polling");
                false
            }
        }
    }

    /// Whether tasks of this process wait on `channel` right now.
    pub(crate) fn has_waiters(&self, channel: &str) -> bool {
        lock(&self.waiters).contains_key(channel)
    }

    /// Wakes the local waiters on `channel` that have no token (after a
    /// local release).
    pub(crate) fn wake(&self, channel: &str) {
        wake(&self.waiters, channel);
    }

    /// Tells the local waiter whose token starts `value` that a hand-off
    /// made it the holder (`value`: the lock's new value), if it is ours.
    pub(crate) fn grant(&self, value: &str) {
        grant(&self.tokens, value);
    }

    async fn subscriber(&self) -> Option<&Subscriber> {
        let redis = self.redis.as_ref()?;
        self.subscriber
            .get_or_init(|| async {
                match redis.subscriber().await {
                    Ok(client) => {
                        let mut rx = client.message_rx();
                        let waiters = Arc::downgrade(&self.waiters);
                        let tokens = Arc::downgrade(&self.tokens);
                        let dispatch = tokio::spawn(async move {
                            loop {
                                let received = rx.recv().await;
                                let Some(map) = waiters.upgrade() else { return };
                                let Some(tokens) = tokens.upgrade() else {
                                    return;
                                };
                                match received {
                                    Ok(msg) => {
                                        // the payload is the new holder's lock value
                                        if let Some(value) = msg.value.as_str() {
                                            grant(&tokens, &value);
                                        }
                                        wake(&map, &msg.channel);
                                    }
                                    Err(RecvError::Lagged(_)) => {
                                        for (notify, _) in lock(&map).values() {
                                            notify.notify_waiters();
                                        }
                                        // a lost hand-off is found by the
                                        // waiter's own re-try
                                        for g in lock_tokens(&tokens).values() {
                                            g.notify.notify_one();
                                        }
                                    }
                                    Err(RecvError::Closed) => return,
                                }
                            }
                        });
                        Some(Subscriber { client, dispatch })
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lock: no pub/sub client; waiters will poll");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

impl Drop for Wakers {
    fn drop(&mut self) {
        if let Some(Some(sub)) = self.subscriber.get() {
            sub.dispatch.abort();
            let client = sub.client.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = client.quit().await;
                });
            }
        }
    }
}

fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Notify>, usize)>> {
    waiters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_tokens(tokens: &Tokens) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Grant>>> {
    tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wake(waiters: &Waiters, channel: &str) {
    if let Some((notify, _)) = lock(waiters).get(channel) {
        // waiters without a token (Redlock: no queue) all re-try
        notify.notify_waiters();
    }
}

fn grant(tokens: &Tokens, value: &str) {
    let Some(token) = value.get(..LockToken::LEN) else {
        return;
    };
    let Some(g) = lock_tokens(tokens).get(token).cloned() else {
        return;
    };
    *g.value
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value.to_owned());
    // a permit is kept if the waiter is busy re-trying: no lost wake-up
    g.notify.notify_one();
}

/// What wakes a waiter: its channel's `Notify` (Redlock), or its own grant.
enum Wake {
    Channel(Arc<Notify>),
    Grant(Arc<Grant>),
}

/// One waiter's registration; leaving (drop) unsubscribes the channel when
/// it was the last waiter.
pub(crate) struct Waiter {
    wake: Wake,
    channel: String,
    token: Option<(String, Weak<Tokens>)>,
    waiters: Weak<Waiters>,
    unsubscribe: Option<Unsubscribe>,
}

impl Waiter {
    pub(crate) fn notify(&self) -> &Notify {
        match &self.wake {
            Wake::Channel(n) => n,
            Wake::Grant(g) => &g.notify,
        }
    }

    /// The lock value a hand-off gave this waiter (taken: once).
    pub(crate) fn granted(&self) -> Option<String> {
        match &self.wake {
            Wake::Channel(_) => None,
            Wake::Grant(g) => g
                .value
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some((token, tokens)) = self.token.take() {
            if let Some(tokens) = tokens.upgrade() {
                lock_tokens(&tokens).remove(&token);
            }
        }
        let Some(waiters) = self.waiters.upgrade() else {
            return;
        };
        let last = {
            let mut map = lock(&waiters);
            match map.get_mut(&self.channel) {
                Some(entry) => {
                    entry.1 = entry.1.saturating_sub(1);
                    if entry.1 == 0 {
                        map.remove(&self.channel);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            }
        };
        if !last {
            return;
        }
        let Some((client, subscribed, lingering)) = self.unsubscribe.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // one pending unsubscribe per channel: a later departure within the
        // linger is covered by the pending one's check
        if !lingering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(self.channel.clone())
        {
            return;
        }
        let channel = std::mem::take(&mut self.channel);
        let weak = Weak::clone(&self.waiters);
        handle.spawn(async move {
            tokio::time::sleep(UNSUBSCRIBE_LINGER).await;
            // out of the pending set before the check: a waiter that leaves
            // after the check schedules an unsubscribe of its own
            lingering
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&channel);
            let mut set = subscribed.lock().await;
            // a new waiter may have arrived meanwhile: keep the subscription
            let still_wanted = weak
                .upgrade()
                .is_some_and(|w| lock(&w).contains_key(&channel));
            if !still_wanted && set.remove(&channel) {
                if let Err(e) = client.sunsubscribe(channel.as_str()).await {
                    tracing::debug!(error = %e, channel, "lock: UNSUBSCRIBE failed");
                }
            }
        });
    }
}
