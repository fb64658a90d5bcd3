//! Property tests for the cache's decoding of stored bytes it did not
//! write (another client, a corrupt or truncated value, a value of another
//! type): every read gives a value or `Error::Redis(Error::Decode)` naming
//! the key, never a panic; and typed values of any shape round-trip
//! through Redis. The bytes are drawn by proptest and written raw with
//! `SET`/`RPUSH`, on the shared standalone server and cluster.

use std::collections::BTreeMap;

use aeturnis_cache::core::prelude::*;
use aeturnis_cache::core::{Codec, CodecKind};
use aeturnis_cache::{Cache, CacheConfig, Error, RedisKey, Ttl};
use aeturnis_testkit::TestCtx;
use anyhow::{ensure, Result};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::support::*;

/// Cases per property: a few hundred small round trips per topology, well
/// under a second.
const CASES: usize = 64;

/// `n` values drawn from `strategy` (a fresh random seed per run; a
/// failure prints the value, the bytes are small enough to read).
fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::default();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a value").current())
        .collect()
}

/// Stored bytes of every kind: random, text, and encodings of other
/// values cut short or run on.
fn stored_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        ".{0,24}".prop_map(String::into_bytes),
        (any::<(u64, String, Vec<i16>)>(), 0..40usize, any::<bool>()).prop_map(
            |(value, cut, json)| {
                let kind = if json {
                    CodecKind::Json
                } else {
                    CodecKind::MessagePack
                };
                let mut b = Codec::new(kind).encode("k", &value).unwrap();
                b.truncate(cut);
                b
            }
        ),
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: BTreeMap<String, i32>,
    owner: Option<(u8, bool)>,
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        ".{0,16}",
        prop::collection::vec(".{0,6}", 0..4),
        prop::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..3),
        any::<Option<(u8, bool)>>(),
    )
        .prop_map(|(id, name, tags, scores, owner)| Record {
            id,
            name,
            tags,
            scores,
            owner,
        })
}

/// A read's answer is a value, or a decode error naming `key`.
fn typed<T: std::fmt::Debug>(key: &RedisKey, bytes: &[u8], read: &Result<T, Error>) -> Result<()> {
    match read {
        Ok(_) => Ok(()),
        Err(Error::Redis(aeturnis_cache::core::Error::Decode { key: named, .. })) => {
            ensure!(named == key.as_str(), "the error names {named}, not {key}");
            Ok(())
        }
        Err(other) => anyhow::bail!("{bytes:?} at {key}: {other:?}, not a decode error"),
    }
}

async fn reads_of<T>(cache: &Cache, keys: &[RedisKey], stored: &[Vec<u8>]) -> Result<bool>
where
    T: DeserializeOwned + std::fmt::Debug,
{
    let mut all_decode = true;
    for (key, bytes) in keys.iter().zip(stored) {
        let read = cache.get::<T>(key).await;
        typed(key, bytes, &read)?;
        if let Ok(found) = &read {
            ensure!(found.is_some(), "{key} holds {bytes:?} but read as missing");
        }
        all_decode &= read.is_ok();
    }
    // the bulk read agrees with the single reads: it fails exactly when one
    // of them does, with a decode error naming one of the keys
    let many = cache.mget::<T>(keys).await;
    ensure!(
        many.is_ok() == all_decode,
        "mget {:?} vs single reads {all_decode}",
        many.as_ref().err()
    );
    if let Err(Error::Redis(aeturnis_cache::core::Error::Decode { key, .. })) = &many {
        ensure!(keys.iter().any(|k| k.as_str() == key), "mget names {key}");
    } else if let Err(other) = &many {
        anyhow::bail!("mget: {other:?}, not a decode error");
    }
    Ok(all_decode)
}

async fn should_read_arbitrary_stored_bytes_as_a_value_or_a_decode_error(
    ctx: TestCtx,
) -> Result<()> {
    let stored = draw(stored_bytes(), CASES);
    for codec in [CodecKind::MessagePack, CodecKind::Json] {
        let cache = connect(&ctx, codec, CacheConfig::default().with_default_ttl(TTL)).await?;
        let keys: Vec<RedisKey> = (0..stored.len())
            .map(|i| cache.key("raw").id(format!("{codec:?}-{i}")).build())
            .collect::<Result<_, _>>()?;
        for (key, bytes) in keys.iter().zip(&stored) {
            cache
                .redis()
                .client()
                .set::<(), _, _>(key, bytes.as_slice(), Some(Expiration::EX(60)), None, false)
                .await?;
        }
        reads_of::<Record>(&cache, &keys, &stored).await?;
        reads_of::<(u64, String, Vec<i16>)>(&cache, &keys, &stored).await?;
        reads_of::<u64>(&cache, &keys, &stored).await?;
        // every UTF-8 value reads as a string (the plain-text fallback)
        for (key, bytes) in keys.iter().zip(&stored) {
            let read = cache.get::<String>(key).await;
            typed(key, bytes, &read)?;
            if std::str::from_utf8(bytes).is_ok() {
                ensure!(read.is_ok(), "UTF-8 {bytes:?} at {key}: {read:?}");
            }
        }

        // a list of such elements: a decode error for the list's key, or
        // every element
        let list = cache.key("rawlist").id(format!("{codec:?}")).build()?;
        let elements: Vec<&[u8]> = stored
            .iter()
            .filter(|b| !b.is_empty())
            .map(Vec::as_slice)
            .collect();
        cache
            .redis()
            .client()
            .rpush::<(), _, _>(&list, elements.clone())
            .await?;
        let read = cache.list_range::<Record>(&list, 0, -1).await;
        typed(&list, b"(list)", &read)?;
        if let Ok(records) = read {
            ensure!(
                records.len() == elements.len(),
                "{} of {} elements",
                records.len(),
                elements.len()
            );
        }
        let read = cache.list_range::<String>(&list, 0, -1).await;
        typed(&list, b"(list)", &read)?;
    }
    Ok(())
}

async fn should_round_trip_typed_values_of_any_shape_through_redis(ctx: TestCtx) -> Result<()> {
    let values = draw(record(), CASES);
    for codec in [CodecKind::MessagePack, CodecKind::Json] {
        let cache = connect(&ctx, codec, CacheConfig::default().with_default_ttl(TTL)).await?;
        let keys: Vec<RedisKey> = (0..values.len())
            .map(|i| cache.key("typed").id(format!("{codec:?}-{i}")).build())
            .collect::<Result<_, _>>()?;
        for (key, value) in keys.iter().zip(&values) {
            cache.set(key, value, Ttl::Default).await?;
        }
        for (key, value) in keys.iter().zip(&values) {
            ensure!(
                cache.get::<Record>(key).await?.as_ref() == Some(value),
                "{value:?} at {key}"
            );
        }
        let many = cache.mget::<Record>(&keys).await?;
        ensure!(
            many.into_iter().flatten().eq(values.iter().cloned()),
            "mget differs"
        );
    }
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_read_arbitrary_stored_bytes_as_a_value_or_a_decode_error,
    should_round_trip_typed_values_of_any_shape_through_redis,
);
