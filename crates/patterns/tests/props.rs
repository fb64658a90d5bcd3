//! Property tests for `CacheAside` reading stored bytes it did not write
//! (another client's value under its key, a corrupt entry), on the shared
//! standalone server and cluster: a value of any other shape is
//! `Error::Foreign`, an entry whose payload does not decode is a decode
//! error naming the key, never a panic and never a load. The bytes are
//! drawn by proptest and written raw with `SET`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::time::Duration;

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::core::fred::interfaces::KeysInterface;
use aeturnis_patterns::core::{Codec, CodecKind};
use aeturnis_patterns::{CacheAside, Error, LoadPolicy, Policy, Redis, RedisConfig, RedisKey};
use aeturnis_testkit::TestCtx;
use anyhow::{bail, ensure, Result};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Cases per topology and codec: a few hundred small round trips.
const CASES: usize = 64;

/// The loader's error: a read that reaches it has loaded when it must not.
#[derive(Debug, thiserror::Error)]
#[error("the loader ran")]
struct LoaderRan;

/// `n` values drawn from `strategy` (a fresh random seed per run; a
/// failure prints the bytes).
fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::default();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a value").current())
        .collect()
}

/// What a test writes under a cache-aside key.
#[derive(Debug, Clone)]
enum Stored {
    /// Bytes that are not an envelope (first byte other than 0xC1).
    Foreign(Vec<u8>),
    /// An entry (format in the crate's `envelope` module), fresh for
    /// centuries, with the given flags and payload.
    Entry { flags: u8, payload: Vec<u8> },
}

impl Stored {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Stored::Foreign(b) => b.clone(),
            Stored::Entry { flags, payload } => {
                let far = u64::MAX / 2;
                let mut b = vec![0xC1, b'E'];
                b.extend_from_slice(&[7; 8]);
                b.extend_from_slice(&far.to_be_bytes());
                b.extend_from_slice(&far.to_be_bytes());
                b.extend_from_slice(&5u32.to_be_bytes());
                b.push(*flags);
                b.extend_from_slice(payload);
                b
            }
        }
    }
}

fn stored() -> impl Strategy<Value = Stored> {
    let payload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..32),
        ".{0,16}".prop_map(String::into_bytes),
        ".{0,16}".prop_map(|s| Codec::new(CodecKind::MessagePack).encode("k", &s).unwrap()),
        ".{0,16}".prop_map(|s| Codec::new(CodecKind::Json).encode("k", &s).unwrap()),
    ];
    prop_oneof![
        (
            any::<u8>().prop_filter("not the magic byte", |b| *b != 0xC1),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(first, rest)| Stored::Foreign([vec![first], rest].concat())),
        (any::<u8>(), payload).prop_map(|(flags, payload)| Stored::Entry { flags, payload }),
    ]
}

fn policy() -> Policy {
    LoadPolicy::new(Duration::from_secs(60)).build().unwrap()
}

async fn should_read_foreign_or_corrupt_bytes_as_a_typed_error_without_loading(
    ctx: TestCtx,
) -> Result<()> {
    let cases = draw(stored(), CASES);
    for kind in [CodecKind::MessagePack, CodecKind::Json] {
        let redis = Redis::connect(
            RedisConfig::from_url(&ctx.url)?
                .with_key_prefix(&ctx.prefix)
                .with_codec(kind),
        )
        .await?;
        let cache = Cache::new(redis.clone(), CacheConfig::default())?;
        let aside: CacheAside<String> = CacheAside::new(&cache);
        for (i, case) in cases.iter().enumerate() {
            let key: RedisKey = cache.key("props").id(format!("{kind:?}-{i}")).build()?;
            let bytes = case.bytes();
            redis
                .client()
                .set::<(), _, _>(&key, bytes.as_slice(), None, None, false)
                .await?;
            let read = aside
                .get_or_load(&key, &policy(), || async {
                    Err::<Option<String>, _>(LoaderRan)
                })
                .await;
            match (case, &read) {
                (Stored::Foreign(_), Err(Error::Foreign { key: named })) => {
                    ensure!(named == key.as_str(), "Foreign names {named}, not {key}");
                }
                (Stored::Entry { flags, .. }, Ok(None)) => {
                    ensure!(flags & 1 == 1, "{case:?}: a positive entry read as None");
                }
                (Stored::Entry { flags, payload }, Ok(Some(value))) => {
                    ensure!(
                        flags & 1 == 0,
                        "{case:?}: a negative entry read as {value:?}"
                    );
                    let expected: String = Codec::new(kind).decode("k", payload)?;
                    ensure!(*value == expected, "{case:?} read as {value:?}");
                }
                (Stored::Entry { flags, payload }, Err(Error::Redis(e))) => match &**e {
                    aeturnis_patterns::core::Error::Decode { key: named, .. } => {
                        ensure!(named == key.as_str(), "Decode names {named}, not {key}");
                        ensure!(flags & 1 == 0, "{case:?}: a negative entry was decoded");
                        ensure!(
                            Codec::new(kind).decode::<String>("k", payload).is_err(),
                            "{case:?}: a decodable payload refused"
                        );
                    }
                    other => bail!("{case:?} ({bytes:?}): {other:?}"),
                },
                _ => bail!("{case:?} ({bytes:?}) at {key}: {read:?}"),
            }
        }
        ensure!(
            aside.stats().loads == 0,
            "a read loaded: {:?}",
            aside.stats()
        );
    }
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_read_foreign_or_corrupt_bytes_as_a_typed_error_without_loading
);
