//! `mget` / `mset`: one round trip on a standalone server; on a cluster one
//! command (or pipeline) per hash slot, all slots at once, results in the
//! caller's order.

use std::collections::HashMap;
use std::time::Instant;

use aeturnis_redis_core::fred::bytes::Bytes;
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{Expiration, Key};
use aeturnis_redis_core::RedisKey;
use futures::future::{try_join_all, Either};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::stats::OpKind;
use crate::ttl::Ttl;

/// Indices of `keys` grouped by cluster hash slot, in first-seen order.
pub(crate) fn group_by_slot<'a>(keys: impl Iterator<Item = &'a RedisKey>) -> Vec<Vec<usize>> {
    let mut slots: HashMap<u16, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, key) in keys.enumerate() {
        let g = *slots.entry(key.slot()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

fn first_key(keys: &[RedisKey]) -> &str {
    keys.first().map_or("", RedisKey::as_str)
}

impl Cache {
    /// Reads many keys; the result has one entry per key, in `keys` order
    /// (`None` for a missing key). One `MGET` on a standalone server; on a
    /// cluster one `MGET` per hash slot, sent concurrently. Counts a hit or
    /// miss per key.
    pub async fn mget<T: DeserializeOwned>(&self, keys: &[RedisKey]) -> Result<Vec<Option<T>>> {
        let started = Instant::now();
        let result = async {
            let raw = self.mget_inner(keys).await?;
            raw.into_iter()
                .zip(keys)
                .map(|(bytes, key)| bytes.map(|b| self.decode(key, &b)).transpose())
                .collect()
        }
        .await;
        self.finish(OpKind::GetMany, started, result)
    }

    /// Like [`mget`](Self::mget), returning the stored bytes undecoded.
    pub async fn mget_bytes(&self, keys: &[RedisKey]) -> Result<Vec<Option<Bytes>>> {
        let started = Instant::now();
        let result = self.mget_inner(keys).await;
        self.finish(OpKind::GetMany, started, result)
    }

    async fn mget_inner(&self, keys: &[RedisKey]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client();
        let values = if !self.redis().is_cluster() {
            let all: Vec<Key> = keys.iter().map(Key::from).collect();
            client
                .mget::<Vec<Option<Bytes>>, _>(all)
                .await
                .map_err(|e| Error::from_fred(first_key(keys), e))?
        } else {
            let groups = group_by_slot(keys.iter());
            let replies = try_join_all(groups.iter().map(|group| async move {
                let slot_keys: Vec<Key> = group.iter().map(|&i| Key::from(&keys[i])).collect();
                client
                    .mget::<Vec<Option<Bytes>>, _>(slot_keys)
                    .await
                    .map_err(|e| Error::from_fred(keys[group[0]].as_str(), e))
            }))
            .await?;
            let mut out: Vec<Option<Bytes>> = vec![None; keys.len()];
            for (group, reply) in groups.iter().zip(replies) {
                if reply.len() != group.len() {
                    return Err(Error::unexpected(format!(
                        "MGET of {} keys returned {} values",
                        group.len(),
                        reply.len()
                    )));
                }
                for (&i, value) in group.iter().zip(reply) {
                    out[i] = value;
                }
            }
            out
        };
        if values.len() != keys.len() {
            return Err(Error::unexpected(format!(
                "MGET of {} keys returned {} values",
                keys.len(),
                values.len()
            )));
        }
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        self.count_reads(hits, values.len() as u64 - hits);
        Ok(values)
    }

    /// Writes many entries, each with `ttl` (or the default; jitter is drawn
    /// per key). Every value is encoded and checked first, so bad input
    /// sends nothing. One pipeline of `SET key value PX ms` on a standalone
    /// server (one round trip); on a cluster one pipeline per hash slot,
    /// sent concurrently. Safe to replay (same values, same TTLs).
    pub async fn mset<T: Serialize>(
        &self,
        entries: &[(RedisKey, T)],
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let started = Instant::now();
        let ttl = ttl.into();
        let result = async {
            let mut encoded = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                encoded.push((self.encode(key, value)?, self.ttl_ms(key, ttl)?));
            }
            self.mset_encoded(entries, encoded).await
        }
        .await;
        self.finish(OpKind::SetMany, started, result)
    }

    async fn mset_encoded<T>(
        &self,
        entries: &[(RedisKey, T)],
        encoded: Vec<(Bytes, i64)>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let client = self.client();
        let groups = if self.redis().is_cluster() {
            group_by_slot(entries.iter().map(|(k, _)| k))
        } else {
            vec![(0..entries.len()).collect()]
        };
        let mut encoded: Vec<Option<(Bytes, i64)>> = encoded.into_iter().map(Some).collect();
        let mut sends = Vec::with_capacity(groups.len());
        for group in &groups {
            let first = &entries[group[0]].0;
            if let [i] = group[..] {
                // a slot with one key: a plain SET (fred pipelines concurrent
                // commands on the connection anyway)
                if let Some((bytes, px)) = encoded[i].take() {
                    sends.push(Either::Left(async move {
                        client
                            .set::<(), _, _>(first, bytes, Some(Expiration::PX(px)), None, false)
                            .await
                            .map_err(|e| Error::from_fred(first.as_str(), e))
                    }));
                }
                continue;
            }
            let pipeline = client.pipeline();
            for &i in group {
                if let Some((bytes, px)) = encoded[i].take() {
                    let key = &entries[i].0;
                    pipeline
                        .set::<(), _, _>(key, bytes, Some(Expiration::PX(px)), None, false)
                        .await
                        .map_err(|e| Error::from_fred(key.as_str(), e))?;
                }
            }
            sends.push(Either::Right(async move {
                pipeline
                    .all::<Vec<Value>>()
                    .await
                    .map(drop)
                    .map_err(|e| Error::from_fred(first.as_str(), e))
            }));
        }
        try_join_all(sends).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aeturnis_redis_core::KeySpace;

    #[test]
    fn should_group_indices_by_slot_keeping_order() {
        let ks = KeySpace::default();
        let keys: Vec<RedisKey> = ["a", "b", "a", "c"]
            .iter()
            .enumerate()
            .map(|(i, t)| ks.key("k").tag(t).id(i.to_string()).build().unwrap())
            .collect();
        let groups = group_by_slot(keys.iter());
        assert_eq!(groups, vec![vec![0, 2], vec![1], vec![3]]);
    }
}
