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
