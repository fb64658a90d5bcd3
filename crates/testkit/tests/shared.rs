//! Shared topologies and the `topology_tests!` macro.

use aeturnis_testkit::{TestCtx, Topology};
use fred::prelude::*;

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

async fn should_point_at_the_named_topology(ctx: TestCtx) {
    let scheme = match ctx.topology {
        Topology::Standalone => "redis://",
        Topology::Cluster => "redis-cluster://",
        Topology::Sentinel => "redis-sentinel://",
        _ => "unknown",
    };
    assert!(ctx.url.starts_with(scheme), "{ctx:?}");
}

aeturnis_testkit::topology_tests!(should_give_each_test_its_own_prefix);
aeturnis_testkit::topology_tests!(sentinel: should_point_at_the_named_topology);

#[tokio::test]
async fn should_share_three_redlock_masters() {
    let urls = aeturnis_testkit::redlock_urls().await;
    assert_eq!(urls.len(), 3);
}
