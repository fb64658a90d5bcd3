//! A killed primary's replication-lag window: the moment its replica had
//! processed everything the primary had acknowledged, measured just before
//! the kill.

use std::time::Duration;

use aeturnis_testkit::eventually;
use anyhow::Context;

use crate::env::blocking;
use crate::record::Recorder;

/// The port of the first replica in a primary's `INFO replication`
/// (`slave0:ip=...,port=N,state=online,...`).
pub(crate) fn replica_port(info: &str) -> anyhow::Result<u16> {
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("slave0:"))
        .context("the primary has no replica")?;
    let port = line
        .split(',')
        .find_map(|f| f.strip_prefix("port="))
        .context("no port in slave0")?;
    Ok(port.trim().parse()?)
}

fn info_offset(info: &str, field: &str) -> anyhow::Result<u64> {
    let value = info
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in INFO"))?;
    Ok(value.trim().parse()?)
}

/// The start of a killed primary's replication-lag window: the time just
/// before reading the primary's `master_repl_offset`, once the replica has
/// processed that offset. Every write acknowledged before then is on the
/// replica; only those acknowledged between then and the kill may be lost.
pub(crate) async fn synced_then<P, R>(
    rec: &Recorder,
    primary: P,
    replica: R,
) -> anyhow::Result<Duration>
where
    P: Fn(&[&str]) -> anyhow::Result<String> + Send + Sync + Clone + 'static,
    R: Fn(&[&str]) -> anyhow::Result<String> + Send + Sync + Clone + 'static,
{
    let at = rec.now();
    let p = primary.clone();
    let sent =
        blocking(move || info_offset(&p(&["INFO", "replication"])?, "master_repl_offset")).await?;
    eventually(
        "the replica to process the primary's offset",
        Duration::from_secs(10),
        || {
            let r = replica.clone();
            async move {
                let got = blocking(move || {
                    info_offset(&r(&["INFO", "replication"])?, "slave_repl_offset")
                })
                .await
                .map_err(|e| e.to_string())?;
                if got >= sent {
                    Ok(())
                } else {
                    Err(format!("replica at {got}, primary sent {sent}"))
                }
            }
        },
    )
    .await?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY_INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
        slave0:ip=127.0.0.1,port=30004,state=online,offset=5127,lag=0\r\n\
        master_repl_offset:5127\r\n";

    #[test]
    fn should_read_the_replica_port_and_the_offsets_of_info_replication() {
        assert_eq!(replica_port(PRIMARY_INFO).unwrap(), 30004);
        assert_eq!(
            info_offset(PRIMARY_INFO, "master_repl_offset").unwrap(),
            5127
        );
        let replica = "role:slave\r\nslave_read_repl_offset:5200\r\nslave_repl_offset:5190\r\n";
        // the processed offset, not the one merely read from the link
        assert_eq!(info_offset(replica, "slave_repl_offset").unwrap(), 5190);
    }

    #[test]
    fn should_refuse_a_primary_without_replica() {
        let err = replica_port("role:master\r\nconnected_slaves:0\r\n").unwrap_err();
        assert!(err.to_string().contains("no replica"), "{err:#}");
    }
}
