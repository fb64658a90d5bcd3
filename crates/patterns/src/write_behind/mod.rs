//! [`WriteBehind`]: cache a value now, write it to the source of truth
//! later, durably, through Redis Streams.
//!
//! # The write
//! [`WriteBehind::write`] stores the value in the cache (a cache-aside
//! entry, so [`CacheAside::get_or_load`](crate::CacheAside::get_or_load)
//! reads it, with a fresh token so no load in flight writes an older row
//! over it) and appends `k = <key>, v = <codec bytes>` to one of the
//! `streams` streams (`XADD`). It returns the entry's [`StreamId`] once
//! both are done: that return is the acknowledgement, and from then on the
//! write survives any worker crash.
//!
//! **Keys to streams.** The stream of a key is `slot(key) % streams`, so a
//! key always goes to the same stream and its writes keep their order.
//! Stream `i` is `<prefix>wb:<name>:{<name>-<i>}`: the hash tag puts each
//! stream in one slot, spread over the cluster's primaries. When the key
//! and its stream share a slot (always on a standalone server) the write
//! is one script, atomic, one round trip. On a cluster, when they do not,
//! the `SET` and the `XADD` go out together to their two nodes (one round
//! trip of latency, not atomic: an error means either may have landed;
//! write again).
//!
//! **Replay.** fred re-sends commands that were in flight when a
//! connection dropped. A re-sent `XADD` would give an older value a newer
//! id than a write made since, and the worker would store the old value
//! last. So both paths are sent with replay disabled
//! ([`Redis::no_replay`](aeturnis_redis_core::Redis::no_replay)): such a
//! write fails with a connection error instead, and the caller writes again.
//!
//! # The workers
//! [`WriteBehind::start`] runs one worker per stream, each on its own
//! connection ([`Redis::dedicated_client`](aeturnis_redis_core::Redis::dedicated_client);
//! the blocking read never holds the shared one), as consumer
//! `<consumer>-<i>` of the group `<name>`. A worker loops:
//! 1. every `claim_idle / 2`, `XAUTOCLAIM` entries pending longer than
//!    `claim_idle` with any consumer (a crashed worker's batch) and
//!    handles them as below, except those delivered more than
//!    `max_deliveries` times, which go to the dead-letter stream;
//! 2. `XREADGROUP ... COUNT batch BLOCK block ... >`;
//! 3. coalesces by key: the last entry of a key in the batch, in stream
//!    order, wins; the others are acknowledged with it;
//! 4. calls [`Writer::write_batch`], retrying a failure with backoff
//!    (`first_backoff` doubling up to `max_backoff`) up to `max_attempts`
//!    calls; then, to find the failing entries, calls it once more for
//!    each entry on its own (`split_batches`): the entries that succeed
//!    are written, and only those that fail move to the dead-letter stream
//!    `<prefix>wb:<name>:{<name>-<i>}:dead` (same slot; fields `k`, `v`,
//!    `id` (the original id), `error` (the writer's error text for that
//!    entry)). An entry whose value does not decode goes there at once;
//! 5. `XDEL`s and `XACK`s the batch in one script (atomic, one round
//!    trip; safe to run twice): a stream holds only what is not yet
//!    written, so its length is the lag.
//!
//! # Delivery: at least once
//! A worker that dies after `write_batch` and before `XACK` leaves its
//! entries pending; another worker claims them after `claim_idle` and
//! writes them again. A batch may therefore repeat, and (after a claim)
//! an older write of a key may reach the writer after a newer one.
//!
//! ## Idempotent writers
//! Every [`Pending`] carries its [`StreamId`]; the ids of one key only
//! grow. Store the id with the row and write only over an older one:
//!
//! ```sql
//! UPDATE players
//!    SET gold = $1, last_stream_ms = $2, last_stream_seq = $3
//!  WHERE id = $4
//!    AND (last_stream_ms, last_stream_seq) < ($2, $3);
//! ```
//!
//! (or one `NUMERIC(39)` column holding [`StreamId::as_u128`]:
//! `WHERE last_stream_id < $2`). A repeated or late write then changes
//! nothing. Keep `streams` fixed while entries are in flight: another
//! count maps keys to other streams, whose ids are not ordered with the
//! old ones (drain with [`flush`](WriteBehind::flush) first).
//!
//! # Limits
//! - The entry-by-entry pass tries each entry once, without backoff: when
//!   the whole source is down rather than one entry bad, the whole batch
//!   reaches the dead-letter stream after `max_attempts` batch calls and
//!   one call per entry (re-add the entries from there). A writer that
//!   stores part of a failing batch sees those entries again in the pass
//!   (at least once, as above).
//! - An entry whose write kills the worker process is claimed and tried
//!   again by the next worker; once its delivery count (the stream's own,
//!   raised by every claim) exceeds `max_deliveries`, it goes to the
//!   dead-letter stream unwritten, with that count as its error text.
//! - `write` on a cluster, when key and stream are on two slots, is not
//!   atomic (see above). It is replay-safe by the same no-replay option,
//!   tested on both paths: a held `EVALSHA` on a standalone server, and a
//!   held `XADD` on a 6-node cluster whose stream lives on another
//!   primary than the key (the dropped write fails; nothing is re-sent).
//!
//! # Flush and shutdown
//! [`WriteBehind::flush`] notes the last entry of every stream and waits
//! until each of them and everything before it has left its stream
//! (written or dead-lettered) and been acknowledged, by this process's
//! workers or any other
//! process's: with no worker running anywhere it waits forever (wrap it in
//! a timeout). [`WriteBehind::shutdown`] stops the workers after they have
//! drained what their streams hold, without blocking.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use aeturnis_cache::Cache;
use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::interfaces::{ClientLike, KeysInterface, StreamsInterface};
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand};
use aeturnis_redis_core::fred::types::{Expiration, Value};
use aeturnis_redis_core::{LuaScript, Redis, RedisKey, ServerClock};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::cache_aside::Cacheable;
use crate::envelope;
use crate::error::{Error, Result};

mod config;
mod entry;
mod stats;
mod worker;

pub use config::WriteBehindConfig;
pub use entry::{ParseStreamIdError, Pending, StreamId};
pub use stats::WriteBehindStats;

use entry::{first_id, KEY_FIELD, VALUE_FIELD};
use stats::{add, Counters};

static WRITE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("patterns_wb_write", include_str!("write.lua")));

/// The source of truth's side of a [`WriteBehind`]: stores batches.
pub trait Writer: Send + Sync + 'static {
    /// The values written.
    type Value: Cacheable;
    /// The writer's error; its text goes with a dead letter.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores `batch`: at most one entry per key, in stream order. May be
    /// called again with entries it already stored (see the
    /// [module docs](self#idempotent-writers)).
    fn write_batch(
        &self,
        batch: &[Pending<Self::Value>],
    ) -> impl Future<Output = std::result::Result<(), Self::Error>> + Send;
}

/// Write-behind through Redis Streams; cheap to clone. See the
/// [module docs](self).
pub struct WriteBehind<W: Writer> {
    inner: Arc<Inner<W>>,
}

impl<W: Writer> Clone for WriteBehind<W> {
    fn clone(&self) -> Self {
        WriteBehind {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<W: Writer> fmt::Debug for WriteBehind<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind")
            .field("name", &self.inner.config.name)
            .field("streams", &self.inner.streams)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<W> {
    pub(crate) redis: Redis,
    pub(crate) config: WriteBehindConfig,
    pub(crate) consumer: String,
    pub(crate) streams: Vec<RedisKey>,
    pub(crate) dead: Vec<RedisKey>,
    pub(crate) writer: W,
    pub(crate) counters: Counters,
    /// Woken after every batch a local worker finishes.
    pub(crate) progress: Notify,
    pub(crate) stop: watch::Sender<bool>,
    clock: ServerClock,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl<W: Writer> WriteBehind<W> {
    /// A write-behind through `cache`'s Redis handle. Starts no worker
    /// (see [`start`](Self::start)): a process may only write.
    ///
    /// # Errors
    /// [`Error::Config`] naming a zero or inconsistent setting;
    /// [`Error::Key`] when the name is not a valid key part.
    pub fn new(cache: &Cache, config: WriteBehindConfig, writer: W) -> Result<Self> {
        config.check()?;
        let redis = cache.redis().clone();
        redis.register_scripts([&*WRITE, &*crate::scripts::ACK]);
        let mut streams = Vec::with_capacity(usize::from(config.streams));
        let mut dead = Vec::with_capacity(usize::from(config.streams));
        for i in 0..config.streams {
            let base = redis.keys().key("wb").part(&config.name);
            let tag = format!("{}-{i}", config.name);
            streams.push(base.clone().tag(&tag).build()?);
            dead.push(base.tag(&tag).part("dead").build()?);
        }
        let consumer = config
            .consumer
            .clone()
            .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        Ok(WriteBehind {
            inner: Arc::new(Inner {
                clock: ServerClock::new(redis.clone()),
                redis,
                config,
                consumer,
                streams,
                dead,
                writer,
                counters: Counters::default(),
                progress: Notify::new(),
                stop: watch::channel(false).0,
                workers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The stream keys, index `i` for stream `i`.
    #[must_use]
    pub fn stream_keys(&self) -> &[RedisKey] {
        &self.inner.streams
    }

    /// The dead-letter stream of each stream.
    #[must_use]
    pub fn dead_letter_keys(&self) -> &[RedisKey] {
        &self.inner.dead
    }

    /// The stream `key`'s writes go to: `slot(key) % streams`.
    #[must_use]
    pub fn stream_of(&self, key: &RedisKey) -> &RedisKey {
        let i = usize::from(key.slot()) % self.inner.streams.len();
        &self.inner.streams[i]
    }

    /// The writer.
    #[must_use]
    pub fn writer(&self) -> &W {
        &self.inner.writer
    }

    /// Caches `value` at `key` and records the write; returns its stream
    /// id. See the [module docs](self#the-write).
    ///
    /// # Errors
    /// An encoding error; a Redis error (a dropped connection is not
    /// retried: the write may or may not have landed; write again).
    pub async fn write(&self, key: &RedisKey, value: &W::Value) -> Result<StreamId> {
        let inner = &self.inner;
        let redis = &inner.redis;
        let encoded = Bytes::from(redis.codec().encode(key.as_str(), value)?);
        let ttl_ms = ceil_millis(inner.config.cache_ttl);
        let now = inner.clock.now_ms().await?;
        let at = now.saturating_add(ttl_ms);
        let cached = Bytes::from(envelope::entry(
            envelope::new_token(),
            at,
            at,
            0,
            Some(&encoded),
        ));
        let stream = self.stream_of(key);
        let id: String = if !redis.is_cluster() || key.slot() == stream.slot() {
            let frame: Vec<Value> = vec![
                Value::from(WRITE.sha1()),
                Value::Integer(2),
                Value::from(key.as_str()),
                Value::from(stream.as_str()),
                Value::Bytes(cached.clone()),
                Value::Integer(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
                Value::from(key.as_str()),
                Value::Bytes(encoded.clone()),
            ];
            // EVALSHA as a custom command: fred applies the no-replay
            // option to it (not to `LuaInterface` calls), and the core's
            // script helper refuses two slots, which a standalone server
            // does not mind
            let client = redis.no_replay();
            let evalsha = || {
                client.custom::<String, Value>(
                    CustomCommand::new_static("EVALSHA", ClusterHash::FirstKey, false),
                    frame.clone(),
                )
            };
            match evalsha().await {
                // NOSCRIPT: the script did not run, sending it again is safe
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    WRITE.load(redis.client()).await?;
                    evalsha().await?
                }
                other => other?,
            }
        } else {
            let client = redis.no_replay();
            let set = client.set::<(), _, _>(
                key,
                cached,
                Some(Expiration::PX(i64::try_from(ttl_ms).unwrap_or(i64::MAX))),
                None,
                false,
            );
            let xadd = client.xadd::<String, _, _, _, _>(
                stream,
                false,
                None,
                "*",
                vec![
                    (KEY_FIELD, Value::from(key.as_str())),
                    (VALUE_FIELD, Value::Bytes(encoded)),
                ],
            );
            tokio::try_join!(set, xadd)?.1
        };
        add(&inner.counters.writes, 1);
        id.parse::<StreamId>().map_err(|e| {
            Error::from(aeturnis_redis_core::fred::error::Error::new(
                aeturnis_redis_core::fred::error::ErrorKind::Parse,
                e.to_string(),
            ))
        })
    }

    /// Starts one worker per stream (creating the consumer group where it
    /// is missing). Call it once per process that should write to the
    /// source.
    ///
    /// # Errors
    /// A Redis error creating a group or a worker's connection.
    pub async fn start(&self) -> Result<()> {
        let mut clients = Vec::with_capacity(self.inner.streams.len());
        for stream in &self.inner.streams {
            worker::ensure_group(&self.inner.redis, stream, &self.inner.config.name).await?;
            clients.push(self.inner.redis.dedicated_client().await?);
        }
        let mut workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (i, client) in clients.into_iter().enumerate() {
            let inner = Arc::clone(&self.inner);
            workers.push(tokio::spawn(worker::run(inner, i, client)));
        }
        Ok(())
    }

    /// Waits until every entry in the streams when it was called has been
    /// written or dead-lettered (by any process's workers; see the
    /// [module docs](self#flush-and-shutdown)).
    ///
    /// # Errors
    /// A Redis error.
    pub async fn flush(&self) -> Result<()> {
        let client = self.inner.redis.client();
        let group = self.inner.config.name.as_str();
        for stream in &self.inner.streams {
            let last: Value = client.xrevrange(stream, "+", "-", Some(1)).await?;
            let Some(last) = first_id(last) else {
                continue;
            };
            loop {
                let progress = self.inner.progress.notified();
                let left: Value = client.xrange(stream, "-", last.as_str(), Some(1)).await?;
                if first_id(left).is_none() {
                    // deleted, so acknowledged by the same script; look anyway:
                    // an id deleted by other means can stay pending
                    let unacked: Value = client
                        .xpending(stream, group, ("-", last.as_str(), 1))
                        .await?;
                    if matches!(&unacked, Value::Array(a) if a.is_empty()) {
                        break;
                    }
                }
                // woken by a local worker, or look again for remote ones
                let _ = tokio::time::timeout(Duration::from_millis(20), progress).await;
            }
        }
        Ok(())
    }

    /// The counters of this process and the streams' backlog.
    ///
    /// # Errors
    /// A Redis error.
    pub async fn stats(&self) -> Result<WriteBehindStats> {
        let client = self.inner.redis.client();
        let (mut lag, mut pending) = (0, 0);
        for stream in &self.inner.streams {
            lag += client.xlen::<u64, _>(stream).await?;
            let summary: Value = client
                .xpending(stream, self.inner.config.name.as_str(), ())
                .await
                .unwrap_or(Value::Null);
            if let Value::Array(parts) = summary {
                pending += parts.first().and_then(Value::as_u64).unwrap_or(0);
            }
        }
        Ok(self.inner.counters.snapshot(lag, pending))
    }

    /// Stops the workers once they have drained their streams, and waits
    /// for them.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let workers =
            std::mem::take(&mut *self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.await;
        }
    }
}
