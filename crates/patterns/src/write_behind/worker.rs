//! One worker: claim, read, coalesce, write, acknowledge (see the
//! [module docs](super#the-workers)).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::clients::Client;
use aeturnis_redis_core::fred::error::ErrorKind;
use aeturnis_redis_core::fred::interfaces::{ClientLike, StreamsInterface};
use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::{Redis, RedisKey};

use crate::scripts::ACK;

use super::entry::{parse_entries, Pending, Raw, KEY_FIELD, VALUE_FIELD};
use super::stats::add;
use super::{Inner, Writer};

/// Creates the group at the stream's start (and the stream), unless it
/// exists.
pub(super) async fn ensure_group(
    redis: &Redis,
    stream: &RedisKey,
    group: &str,
) -> crate::Result<()> {
    match redis
        .client()
        .xgroup_create::<Value, _, _, _>(stream, group, "0", true)
        .await
    {
        Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
        other => other.map(drop).map_err(Into::into),
    }
}

/// Runs worker `i` on `client` until shutdown, then drains its stream.
pub(super) async fn run<W: Writer>(inner: Arc<Inner<W>>, i: usize, client: Client) {
    let stream = inner.streams[i].clone();
    let consumer = format!("{}-{i}", inner.consumer);
    let group = inner.config.name.clone();
    let mut stop = inner.stop.subscribe();
    let claim_every = inner.config.claim_idle / 2;
    let mut last_claim: Option<Instant> = None;
    let block_ms = ceil_millis(inner.config.block);
    let count = Some(inner.config.batch as u64);
    let mut failures = 0u32;
    let mut drained_own = false;
    loop {
        let stopping = *stop.borrow();
        if last_claim.map_or(true, |t| t.elapsed() >= claim_every) {
            last_claim = Some(Instant::now());
            claim(&inner, &client, i, &group, &consumer).await;
        }
        if stopping && !drained_own {
            // entries this consumer was handed by a read that shutdown
            // cancelled: its own pending list (id `0`)
            drained_own = true;
            let own = client
                .xreadgroup::<Value, _, _, _, _>(
                    group.as_str(),
                    consumer.as_str(),
                    None,
                    None,
                    false,
                    &stream,
                    "0",
                )
                .await;
            if let Ok(value) = own {
                let entries = read_entries(value);
                if !entries.is_empty() {
                    handle(&inner, &client, i, &group, entries, &HashMap::new()).await;
                }
            }
        }
        let read = client.xreadgroup::<Value, _, _, _, _>(
            group.as_str(),
            consumer.as_str(),
            count,
            if stopping { None } else { Some(block_ms) },
            false,
            &stream,
            ">",
        );
        let answer = tokio::select! {
            r = read => r,
            _ = stop.changed(), if !stopping => continue,
        };
        match answer {
            Ok(value) => {
                failures = 0;
                let entries = read_entries(value);
                if entries.is_empty() {
                    if stopping {
                        break;
                    }
                    continue;
                }
                handle(&inner, &client, i, &group, entries, &HashMap::new()).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(stream = %stream, error = %e, "write-behind read failed");
                if *e.kind() == ErrorKind::Timeout {
                    // the reply is still owed on this connection (a black
                    // hole, a dropped middlebox state): it will never serve
                    // another read. The shared client has the core's PING
                    // watchdog; this dedicated one is replaced here
                    let _ = client.force_reconnection().await;
                }
                if e.details().starts_with("NOGROUP") {
                    // the stream and its group are gone (a restarted server
                    // without persistence, a failover to an empty replica, a
                    // deleted key): make the group again, at the stream's
                    // start, so writes made since are read
                    let _ = ensure_group(&inner.redis, &stream, &group).await;
                }
                if stopping && failures > inner.config.max_attempts {
                    break;
                }
                tokio::time::sleep(backoff(&inner.config, failures)).await;
            }
        }
    }
    let _ = client.quit().await;
}

/// Takes over entries idle longer than `claim_idle` with any consumer,
/// page by page, and handles them.
async fn claim<W: Writer>(
    inner: &Inner<W>,
    client: &Client,
    i: usize,
    group: &str,
    consumer: &str,
) {
    let mut cursor = "0-0".to_owned();
    loop {
        let claimed: Result<Value, _> = client
            .xautoclaim(
                &inner.streams[i],
                group,
                consumer,
                ceil_millis(inner.config.claim_idle),
                cursor.as_str(),
                Some(inner.config.batch as u64),
                false,
            )
            .await;
        let Ok(Value::Array(mut parts)) = claimed else {
            return;
        };
        if parts.len() < 2 {
            return;
        }
        let entries = parse_entries(parts.swap_remove(1));
        let next = parts.swap_remove(0).as_string().unwrap_or_default();
        if !entries.is_empty() {
            add(&inner.counters.claimed, entries.len() as u64);
            let exhausted = exhausted(inner, client, i, group, &entries).await;
            handle(inner, client, i, group, entries, &exhausted).await;
        }
        if next.is_empty() || next == "0-0" {
            return;
        }
        cursor = next;
    }
}

/// The claimed entries delivered more than `max_deliveries` times (by
/// their `XPENDING` delivery counts, which `XAUTOCLAIM` just raised):
/// id → deliveries. An entry whose handling kills its worker comes back
/// after every claim; this is what stops it. Empty when `XPENDING` fails
/// (the entries are handled as usual).
async fn exhausted<W: Writer>(
    inner: &Inner<W>,
    client: &Client,
    i: usize,
    group: &str,
    entries: &[Result<Raw, String>],
) -> HashMap<String, u64> {
    let ids: Vec<String> = entries
        .iter()
        .filter_map(|e| e.as_ref().ok().map(|r| r.id.to_string()))
        .collect();
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        return HashMap::new();
    };
    let details: Result<Value, _> = client
        .xpending(
            &inner.streams[i],
            group,
            (first.as_str(), last.as_str(), ids.len() as u64),
        )
        .await;
    let Ok(Value::Array(rows)) = details else {
        return HashMap::new();
    };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(fields) = row else {
                return None;
            };
            let id = fields.first()?.as_string()?;
            let deliveries = fields.get(3)?.as_u64()?;
            (deliveries > u64::from(inner.config.max_deliveries)).then_some((id, deliveries))
        })
        .collect()
}

/// The entries of an `XREADGROUP` answer (RESP2 array or RESP3 map).
fn read_entries(value: Value) -> Vec<Result<Raw, String>> {
    match value {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => parse_entries(pair.swap_remove(1)),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(m) => m.inner().into_values().flat_map(parse_entries).collect(),
        _ => Vec::new(),
    }
}

fn backoff(config: &super::WriteBehindConfig, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    (config.first_backoff * factor).min(config.max_backoff)
}

/// Writes each entry of a batch that kept failing on its own, once: the
/// good ones are written, the failing ones returned for the dead-letter
/// stream with their own error text.
async fn split<W: Writer>(
    inner: &Inner<W>,
    batch: &[Pending<W::Value>],
    raws: Vec<Raw>,
) -> Vec<(String, Option<Raw>, String)> {
    let mut dead = Vec::new();
    for (pending, raw) in batch.iter().zip(raws) {
        match inner
            .writer
            .write_batch(std::slice::from_ref(pending))
            .await
        {
            Ok(()) => add(&inner.counters.written, 1),
            Err(e) => dead.push((raw.id.to_string(), Some(raw), e.to_string())),
        }
    }
    dead
}

/// Coalesces, writes (with retries), dead-letters, acknowledges.
async fn handle<W: Writer>(
    inner: &Inner<W>,
    client: &Client,
    i: usize,
    group: &str,
    entries: Vec<Result<Raw, String>>,
    exhausted: &HashMap<String, u64>,
) {
    let stream = &inner.streams[i];
    let codec = inner.redis.codec();
    let mut ids: Vec<String> = Vec::with_capacity(entries.len());
    let mut dead: Vec<(String, Option<Raw>, String)> = Vec::new();
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut batch: Vec<Pending<W::Value>> = Vec::new();
    let mut raws: Vec<Raw> = Vec::new();
    for entry in entries {
        match entry {
            Err(id) => dead.push((id.clone(), None, "malformed entry".to_owned())),
            Ok(raw) if exhausted.contains_key(&raw.id.to_string()) => {
                let n = exhausted.get(&raw.id.to_string()).copied().unwrap_or(0);
                let text = format!(
                    "delivered {n} times without being written (a worker died or stalled handling it)"
                );
                dead.push((raw.id.to_string(), Some(raw), text));
            }
            Ok(raw) => match codec.decode::<W::Value>(&raw.key, &raw.value) {
                Err(e) => dead.push((raw.id.to_string(), Some(raw), e.to_string())),
                Ok(value) => {
                    ids.push(raw.id.to_string());
                    let pending = Pending {
                        id: raw.id,
                        key: raw.key.clone(),
                        value,
                    };
                    if let Some(&at) = latest.get(&raw.key) {
                        add(&inner.counters.coalesced, 1);
                        batch[at] = pending;
                        raws[at] = raw;
                    } else {
                        latest.insert(raw.key.clone(), batch.len());
                        batch.push(pending);
                        raws.push(raw);
                    }
                }
            },
        }
    }
    // the batch keeps stream order of each key's last write
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&j| batch[j].id);
    let (batch, raws): (Vec<_>, Vec<_>) = order
        .into_iter()
        .map(|j| (batch[j].clone(), raws[j].clone()))
        .unzip();
    if !batch.is_empty() {
        let mut attempt = 1;
        loop {
            match inner.writer.write_batch(&batch).await {
                Ok(()) => {
                    add(&inner.counters.batches, 1);
                    add(&inner.counters.written, batch.len() as u64);
                    break;
                }
                Err(e) if attempt >= inner.config.max_attempts => {
                    // the superseded writes of the same keys are acknowledged
                    // with their winners
                    if batch.len() == 1 {
                        tracing::warn!(stream = %stream, error = %e, "write-behind entry failed; dead-lettering it");
                        dead.extend(
                            raws.into_iter()
                                .map(|r| (r.id.to_string(), Some(r), e.to_string())),
                        );
                    } else {
                        tracing::warn!(stream = %stream, error = %e, "write-behind batch failed; writing it entry by entry");
                        add(&inner.counters.split_batches, 1);
                        dead.extend(split(inner, &batch, raws).await);
                    }
                    break;
                }
                Err(e) => {
                    tracing::debug!(stream = %stream, error = %e, attempt, "write-behind batch failed; retrying");
                    add(&inner.counters.retries, 1);
                    tokio::time::sleep(backoff(&inner.config, attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
    for (id, raw, error) in &dead {
        let mut fields: Vec<(&str, Value)> = vec![
            ("id", Value::from(id.as_str())),
            ("error", Value::from(error.as_str())),
        ];
        if let Some(raw) = raw {
            fields.push((KEY_FIELD, Value::from(raw.key.as_str())));
            fields.push((VALUE_FIELD, Value::Bytes(raw.value.clone())));
        }
        if let Err(e) = client
            .xadd::<Value, _, _, _, _>(&inner.dead[i], false, None, "*", fields)
            .await
        {
            // left pending: claimed and tried again later
            tracing::warn!(stream = %stream, error = %e, "could not dead-letter an entry");
            return;
        }
        add(&inner.counters.dead_letters, 1);
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    if ids.is_empty() {
        return;
    }
    // XDEL and XACK in one script: a worker that dies leaves its entries
    // either pending and in the stream (claimed again) or gone; never
    // acknowledged but left in the stream, where nobody reads them again
    let acked: Result<i64, _> = inner
        .redis
        .script_on(&ACK, stream, |args| {
            args.push(Value::from(group));
            args.extend(ids.iter().map(|id| Value::from(id.as_str())));
        })
        .await;
    if let Err(e) = acked {
        tracing::warn!(stream = %stream, error = %e, "write-behind XDEL+XACK failed; the batch will be claimed again");
    }
    inner.progress.notify_waiters();
}
