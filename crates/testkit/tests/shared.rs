//! Shared topologies and the `topology_tests!` macro.

use aeturnis_testkit::{TestCtx, Topology};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};

async fn should_give_each_test_its_own_prefix(ctx: TestCtx) -> anyhow::Result<()> {
    assert!(ctx
        .prefix
        .starts_with("t:should_give_each_test_its_own_prefix:"));
    assert!(ctx.prefix.ends_with(':'));
    let client = Client::new(Config::from_url(&ctx.url)?, None, None, None);
    client.init().await?;
    let key = format!("{}k", ctx.prefix);
    let () = client.set(&key, "v", None, None, false).await?;
    let value: String = client.get(&key).await?;
    assert_eq!(value, "v");
    client.quit().await?;
    Ok(())
}

/// The URL leads to a server of the named kind: a cluster answers
/// `CLUSTER INFO` with `cluster_state:ok`, a sentinel URL reaches a primary
/// (`ROLE` says `master`) through the sentinels.
async fn should_point_at_the_named_topology(ctx: TestCtx) -> anyhow::Result<()> {
    let client = Client::new(Config::from_url(&ctx.url)?, None, None, None);
    client.init().await?;
    let role: Vec<Value> = client
        .custom(
            CustomCommand::new_static("ROLE", ClusterHash::Random, false),
            Vec::<String>::new(),
        )
        .await?;
    let role = role.first().and_then(|v| v.as_str().map(|s| s.to_string()));
    assert_eq!(role.as_deref(), Some("master"), "{ctx:?}");
    let info: Result<String, _> = client
        .custom(
            CustomCommand::new_static("CLUSTER", ClusterHash::Random, false),
            vec!["INFO"],
        )
        .await;
    match ctx.topology {
        Topology::Cluster => {
            let info = info?;
            assert!(info.contains("cluster_state:ok"), "{info}");
        }
        // a standalone or sentinel-managed server has cluster support off
        _ => assert!(info.is_err(), "{ctx:?} answered CLUSTER INFO: {info:?}"),
    }
    client.quit().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(should_give_each_test_its_own_prefix);
aeturnis_testkit::topology_tests!(sentinel: should_point_at_the_named_topology);

/// Three masters, each a distinct, reachable, independent primary.
#[tokio::test]
async fn should_share_three_redlock_masters() -> anyhow::Result<()> {
    let urls = aeturnis_testkit::redlock_urls().await;
    assert_eq!(urls.len(), 3);
    let mut run_ids = Vec::new();
    for url in &urls {
        let client = Client::new(Config::from_url(url)?, None, None, None);
        client.init().await?;
        let info: String = client
            .custom(
                CustomCommand::new_static("INFO", ClusterHash::Random, false),
                vec!["server"],
            )
            .await?;
        let run_id = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| anyhow::anyhow!("no run_id in INFO from {url}"))?;
        run_ids.push(run_id);
        let role: Vec<Value> = client
            .custom(
                CustomCommand::new_static("ROLE", ClusterHash::Random, false),
                Vec::<String>::new(),
            )
            .await?;
        assert_eq!(
            role.first().and_then(Value::as_str).as_deref(),
            Some("master")
        );
        client.quit().await?;
    }
    run_ids.sort();
    run_ids.dedup();
    assert_eq!(
        run_ids.len(),
        3,
        "the three URLs must be three servers: {urls:?}"
    );
    Ok(())
}
