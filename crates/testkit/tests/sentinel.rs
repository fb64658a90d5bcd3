//! The sentinel set: settled on start, failover changes the primary.

use aeturnis_testkit::Sentinel;
use fred::prelude::*;

#[test]
fn should_start_a_sentinel_set_and_fail_over() -> anyhow::Result<()> {
    let set = Sentinel::start()?;
    assert_eq!(set.service_name(), "mymaster");
    assert_eq!(set.sentinel_nodes().len(), 3);
    assert_eq!(set.current_primary_port()?, set.primary().port());

    set.failover()?;

    assert_eq!(set.current_primary_port()?, set.replica().port());
    let info = set.replica().cli(&["INFO", "replication"])?;
    assert!(info.contains("role:master"), "{info}");
    let info = set.primary().cli(&["INFO", "replication"])?;
    assert!(info.contains("role:slave"), "{info}");
    Ok(())
}

#[tokio::test]
async fn should_serve_fred_through_the_sentinel_url() -> anyhow::Result<()> {
    let set = tokio::task::spawn_blocking(Sentinel::start).await??;
    let client = Client::new(Config::from_url(&set.url())?, None, None, None);
    client.init().await?;
    let () = client.set("k", "v", None, None, false).await?;
    let value: String = client.get("k").await?;
    assert_eq!(value, "v");
    client.quit().await?;
    Ok(())
}
