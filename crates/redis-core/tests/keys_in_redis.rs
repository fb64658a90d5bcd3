//! Property test against a real server: any user text, escaped into a
//! `SCAN MATCH` pattern, matches exactly its own key and none of its
//! neighbours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::BTreeSet;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::scan::Scanner;
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_testkit::RedisServer;
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

async fn scan(redis: &Redis, pattern: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut stream = redis.client().scan(pattern, Some(1000), None);
    while let Some(page) = stream.next().await {
        let mut page = page?;
        for key in page.take_results().unwrap_or_default() {
            found.insert(key.as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(found)
}

#[test]
fn should_match_exactly_the_escaped_text_in_scan() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let rt = tokio::runtime::Runtime::new()?;
    let redis = rt.block_on(Redis::connect(
        RedisConfig::from_url(&server.url())?.with_key_prefix("p:"),
    ))?;
    let mut runner = TestRunner::new(Config {
        cases: 128,
        ..Config::default()
    });
    let text = prop_oneof!["[*?\\[\\]\\\\^a-c:{}%-]{1,12}", "\\PC{1,24}",];
    runner
        .run(&text, |s| {
            rt.block_on(async {
                let mut neighbours = vec![format!("{s}x"), format!("x{s}"), format!("{s}{s}")];
                if s.chars().count() > 1 {
                    neighbours.push(s.chars().skip(1).collect());
                }
                neighbours.retain(|n| n != &s);
                let own = redis
                    .keys()
                    .key("u")
                    .id(&s)
                    .build()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut all = vec![own.clone()];
                for n in &neighbours {
                    all.push(
                        redis
                            .keys()
                            .key("u")
                            .id(n)
                            .build()
                            .map_err(|e| TestCaseError::fail(e.to_string()))?,
                    );
                }
                for k in &all {
                    redis
                        .client()
                        .set::<(), _, _>(k, 1, Some(Expiration::EX(60)), None, false)
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                let pattern = redis
                    .keys()
                    .pattern("u")
                    .id(&s)
                    .build()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let found = scan(&redis, &pattern)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let _: i64 = redis
                    .client()
                    .del(all.clone())
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(
                    found,
                    BTreeSet::from([own.into_string()]),
                    "pattern {}",
                    pattern
                );
                Ok(())
            })
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    rt.block_on(redis.shutdown())?;
    Ok(())
}
