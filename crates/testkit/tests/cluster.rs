//! The 6-node cluster: settled on start, failover promotes a replica.

use aeturnis_testkit::Cluster;
use fred::prelude::*;

#[test]
fn should_start_a_settled_cluster_and_fail_over() -> anyhow::Result<()> {
    let cluster = Cluster::start()?;
    assert_eq!(cluster.nodes().len(), 6);
    for node in cluster.nodes() {
        let info = node.cli(&["CLUSTER", "INFO"])?;
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_ok:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:6"), "{info}");
    }
    let before = cluster.primary_ports()?;
    assert_eq!(before.len(), 3);

    cluster.failover()?;

    let after = cluster.primary_ports()?;
    assert_eq!(after.len(), 3);
    assert_ne!(before, after, "a replica should have been promoted");
    for node in cluster.nodes() {
        let info = node.cli(&["CLUSTER", "INFO"])?;
        assert!(info.contains("cluster_state:ok"), "{info}");
    }
    Ok(())
}

#[tokio::test]
async fn should_serve_fred_through_the_cluster_url() -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    assert!(cluster.url().starts_with("redis-cluster://127.0.0.1:"));
    assert_eq!(cluster.url().matches("node=").count(), 5);
    let client = Client::new(Config::from_url(&cluster.url())?, None, None, None);
    client.init().await?;
    for i in 0..20 {
        let key = format!("key-{i}");
        let () = client.set(&key, i, None, None, false).await?;
        let value: i64 = client.get(&key).await?;
        assert_eq!(value, i);
    }
    client.quit().await?;
    Ok(())
}
