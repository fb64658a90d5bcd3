//! The faults of the sentinel set: `SENTINEL FAILOVER` (testkit's planned
//! `failover_paused` and a plain `failover`), a killed primary
//! (`kill_primary`, then `rejoin` with the ACL user made again), and
//! `CLIENT KILL` / `SCRIPT FLUSH` on the data nodes.

use std::sync::{Arc, Mutex};

use aeturnis_redis_core::acl::acl_rules;
use aeturnis_testkit::{RedisServer, Sentinel};
use anyhow::Context;

use crate::env::{blocking, Kind};
use crate::lag::synced_then;
use crate::record::{LagWindow, Recorder};
use crate::{PASSWORD, PREFIX, USER};

/// The data node (primary or replica) on `port`.
fn node(set: &Sentinel, port: u16) -> anyhow::Result<&RedisServer> {
    [set.primary(), set.replica()]
        .into_iter()
        .find(|s| s.port() == port)
        .with_context(|| format!("no data node on port {port}"))
}

/// Runs `args` with redis-cli on the data node on `port`.
fn cli(set: &Arc<Mutex<Sentinel>>, port: u16, args: &[&str]) -> anyhow::Result<String> {
    let set = set.lock().unwrap();
    node(&set, port)?.cli(args)
}

/// Injects `kind` into the set; a killed primary's replication-lag window.
pub(crate) async fn fault(
    rec: &Recorder,
    set: Arc<Mutex<Sentinel>>,
    kind: Kind,
) -> anyhow::Result<Option<LagWindow>> {
    let s = set.clone();
    let (primary, replica) = blocking(move || {
        let s = s.lock().unwrap();
        let primary = s.current_primary_port()?;
        let replica = [s.primary().port(), s.replica().port()]
            .into_iter()
            .find(|p| *p != primary)
            .context("no replica")?;
        Ok((primary, replica))
    })
    .await?;
    match kind {
        Kind::SentinelFailoverPaused => {
            blocking(move || set.lock().unwrap().failover_paused()).await?;
        }
        Kind::SentinelFailover => {
            blocking(move || set.lock().unwrap().failover()).await?;
        }
        Kind::SentinelKillPrimary => {
            let (p, r) = (set.clone(), set.clone());
            let synced = synced_then(
                rec,
                move |args: &[&str]| cli(&p, primary, args),
                move |args: &[&str]| cli(&r, replica, args),
            )
            .await?;
            // kill_primary SIGKILLs the primary after one sentinel query,
            // then waits for the promotion
            let killed = rec.now();
            let s = set.clone();
            blocking(move || s.lock().unwrap().kill_primary().map(drop)).await?;
            let promoted = rec.now();
            // the restarted server is a replica: the client, on the primary
            // the sentinels name, never reaches it before its user is made
            blocking(move || {
                let mut s = set.lock().unwrap();
                s.rejoin()?;
                node(&s, primary)?.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))
            })
            .await?;
            return Ok(Some(LagWindow {
                synced,
                killed,
                promoted,
            }));
        }
        Kind::ClientKill => {
            // a node may have no client of the user: "No such client"
            for port in [primary, replica] {
                let s = set.clone();
                let _ = blocking(move || cli(&s, port, &["CLIENT", "KILL", "USER", USER])).await;
            }
        }
        Kind::ScriptFlush => {
            for port in [primary, replica] {
                let s = set.clone();
                blocking(move || cli(&s, port, &["SCRIPT", "FLUSH"])).await?;
            }
        }
        _ => anyhow::bail!("{kind:?} is not injected into a sentinel set"),
    }
    Ok(None)
}
