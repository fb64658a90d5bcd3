//! The servers under test, how the application connects to them, and the
//! faults injected into them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_redis_core::acl::acl_rules;
use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig, Secret};
use aeturnis_testkit::{eventually, Cluster, Fault, FaultProxy, RedisServer, Sentinel};
use anyhow::Context;
use rand::rngs::StdRng;
use rand::Rng;

use crate::lag::{replica_port, synced_then};
use crate::record::{FaultRun, LagWindow, Recorder, LOSING};
use crate::{CMD_TIMEOUT, PASSWORD, PREFIX, RECONNECT_MAX, USER};

/// Which servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server, behind the fault proxy.
    Standalone,
    /// A 6-node cluster (3 primaries, 3 replicas), the client straight on
    /// the nodes (fred follows the addresses the cluster announces, so the
    /// proxy cannot sit in between).
    Cluster,
    /// A sentinel set (1 primary, 1 replica, 3 sentinels), the client in
    /// sentinel mode straight on the servers.
    Sentinel,
}

impl Topology {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::Cluster => "cluster",
            Topology::Sentinel => "sentinel",
        }
    }

    /// The topologies of a `--topology` value: `all` is what CI's short
    /// mode runs (standalone and cluster), `every` adds the sentinel set.
    pub(crate) fn parse_list(value: &str) -> Option<Vec<Topology>> {
        Some(match value {
            "standalone" => vec![Topology::Standalone],
            "cluster" => vec![Topology::Cluster],
            "sentinel" => vec![Topology::Sentinel],
            "all" => vec![Topology::Standalone, Topology::Cluster],
            "every" => vec![Topology::Standalone, Topology::Cluster, Topology::Sentinel],
            _ => return None,
        })
    }

    /// The fault kinds injected on this topology.
    pub(crate) fn kinds(self) -> &'static [Kind] {
        match self {
            Topology::Standalone => &[
                Kind::Latency,
                Kind::BlackHole,
                Kind::Reset,
                Kind::CutReply,
                Kind::KillRestart,
                Kind::Stop,
                Kind::DebugSleep,
                Kind::ClientKill,
                Kind::PauseWrite,
                Kind::ScriptFlush,
                Kind::Oom,
            ],
            Topology::Cluster => &[
                Kind::Failover,
                Kind::KillPrimary,
                Kind::Stop,
                Kind::DebugSleep,
                Kind::ClientKill,
                Kind::PauseWrite,
                Kind::ScriptFlush,
                Kind::Oom,
            ],
            Topology::Sentinel => &[
                Kind::SentinelFailoverPaused,
                Kind::SentinelFailover,
                Kind::SentinelKillPrimary,
                Kind::ClientKill,
                Kind::ScriptFlush,
            ],
        }
    }
}

/// A fault kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Latency,
    BlackHole,
    Reset,
    CutReply,
    KillRestart,
    Stop,
    DebugSleep,
    ClientKill,
    PauseWrite,
    ScriptFlush,
    Oom,
    Failover,
    KillPrimary,
    SentinelFailoverPaused,
    SentinelFailover,
    SentinelKillPrimary,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Latency => "proxy: latency 300 ms",
            Kind::BlackHole => "proxy: black hole",
            Kind::Reset => "proxy: reset",
            Kind::CutReply => "proxy: cut reply",
            Kind::KillRestart => "SIGKILL + restart",
            Kind::Stop => "SIGSTOP/SIGCONT",
            Kind::DebugSleep => "DEBUG SLEEP",
            Kind::ClientKill => "CLIENT KILL",
            Kind::PauseWrite => "CLIENT PAUSE WRITE",
            Kind::ScriptFlush => "SCRIPT FLUSH",
            Kind::Oom => "OOM (maxmemory, noeviction)",
            Kind::Failover => "cluster failover",
            Kind::KillPrimary => "cluster: killed primary",
            Kind::SentinelFailoverPaused => "sentinel: failover (paused)",
            Kind::SentinelFailover => "sentinel: failover (plain)",
            Kind::SentinelKillPrimary => "sentinel: killed primary",
        }
    }

    /// Whether the fault may lose acknowledged writes: a killed server
    /// without persistence, a killed primary's replication lag, a plain
    /// `SENTINEL FAILOVER` (the writes on the replication link when the
    /// replica is promoted; the paused one waits for them).
    fn loses_data(self) -> bool {
        matches!(
            self,
            Kind::KillRestart
                | Kind::KillPrimary
                | Kind::SentinelFailover
                | Kind::SentinelKillPrimary
        )
    }
}

enum Servers {
    Standalone {
        server: Arc<Mutex<RedisServer>>,
        proxy: FaultProxy,
    },
    Cluster(Arc<Mutex<Cluster>>),
    Sentinel(Arc<Mutex<Sentinel>>),
}

/// The running servers.
pub(crate) struct Env {
    servers: Servers,
}

impl Env {
    /// Starts the topology and creates the application's ACL user on every
    /// server.
    pub(crate) async fn start(topology: Topology) -> anyhow::Result<Env> {
        let servers = match topology {
            Topology::Standalone => {
                let server = tokio::task::spawn_blocking(RedisServer::start_standalone).await??;
                server.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))?;
                let proxy = FaultProxy::start(server.addr()).await?;
                Servers::Standalone {
                    server: Arc::new(Mutex::new(server)),
                    proxy,
                }
            }
            Topology::Cluster => {
                let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
                for node in cluster.nodes() {
                    node.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))?;
                }
                Servers::Cluster(Arc::new(Mutex::new(cluster)))
            }
            Topology::Sentinel => {
                let set = tokio::task::spawn_blocking(Sentinel::start).await??;
                for node in [set.primary(), set.replica()] {
                    node.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))?;
                }
                // fred authenticates to the sentinels with the same user;
                // a sentinel has its own, small command set
                for sentinel in set.sentinels() {
                    sentinel.acl_setuser(USER, PASSWORD, &["+@all".to_owned()])?;
                }
                Servers::Sentinel(Arc::new(Mutex::new(set)))
            }
        };
        Ok(Env { servers })
    }

    /// The application's configuration: the ACL user, a 1 s command
    /// timeout, reconnect backoff 50..500 ms.
    pub(crate) fn config(&self) -> anyhow::Result<RedisConfig> {
        let url = match &self.servers {
            Servers::Standalone { proxy, .. } => proxy.url(),
            Servers::Cluster(c) => c.lock().unwrap().url(),
            Servers::Sentinel(s) => s.lock().unwrap().url(),
        };
        Ok(RedisConfig::from_url(&url)?
            .with_credentials(Some(USER.into()), Some(Secret::new(PASSWORD)))
            .with_key_prefix(PREFIX)
            .with_command_timeout(CMD_TIMEOUT)
            .with_connect_timeout(CMD_TIMEOUT)
            .with_unresponsive_timeout(Some(CMD_TIMEOUT))
            .with_reconnect(
                ReconnectConfig::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(RECONNECT_MAX)
                    .with_jitter(Duration::from_millis(50)),
            ))
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Redis> {
        let config = self.config()?;
        tracing::trace!(?config, "chaos: connecting");
        Ok(Redis::connect(config).await?)
    }

    /// Injects `kind` (held for `hold`), lifts it, and records it with the
    /// time until `probe` succeeded again.
    pub(crate) async fn inject<P, Fut>(
        &self,
        rec: &Recorder,
        kind: Kind,
        hold: Duration,
        rng: &mut StdRng,
        probe: P,
    ) where
        P: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let start = rec.now();
        if kind.loses_data() {
            LOSING.store(true, Ordering::Relaxed);
        }
        let pick: usize = rng.gen_range(0..3);
        let injected = self.run_fault(rec, kind, hold, pick).await;
        let healed = rec.now();
        let recovery = if injected.is_ok() {
            eventually("recovery", Duration::from_secs(30), probe)
                .await
                .ok()
                .map(|()| rec.now() - healed)
        } else {
            None
        };
        let (lag, injection_error) = match injected {
            Ok(lag) => (lag, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        rec.fault(FaultRun {
            kind: kind.name(),
            start,
            healed,
            recovery,
            loses_data: kind.loses_data(),
            lag,
            injection_error,
        });
        LOSING.store(false, Ordering::Relaxed);
        println!(
            "  {:>7.1}s {:<28} held {hold:?}, recovered in {:?}",
            start.as_secs_f64(),
            kind.name(),
            recovery
        );
    }

    /// Runs the fault; a killed primary's replication-lag window, if any.
    async fn run_fault(
        &self,
        rec: &Recorder,
        kind: Kind,
        hold: Duration,
        pick: usize,
    ) -> anyhow::Result<Option<LagWindow>> {
        match &self.servers {
            Servers::Standalone { server, proxy } => {
                standalone_fault(server.clone(), proxy, kind, hold)
                    .await
                    .map(|()| None)
            }
            Servers::Cluster(cluster) => {
                cluster_fault(rec, cluster.clone(), kind, hold, pick).await
            }
            Servers::Sentinel(set) => crate::sentinel::fault(rec, set.clone(), kind).await,
        }
    }
}

/// Runs `f` on the server off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

async fn standalone_fault(
    server: Arc<Mutex<RedisServer>>,
    proxy: &FaultProxy,
    kind: Kind,
    hold: Duration,
) -> anyhow::Result<()> {
    let cli = |args: Vec<String>| {
        let server = server.clone();
        blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            server.lock().unwrap().cli(&args)
        })
    };
    let with_proxy = |fault: Fault| async move {
        proxy.set(fault);
        tokio::time::sleep(hold).await;
        proxy.set(Fault::Pass);
    };
    match kind {
        Kind::Latency => with_proxy(Fault::Latency(Duration::from_millis(300))).await,
        Kind::BlackHole => with_proxy(Fault::BlackHole).await,
        Kind::Reset => with_proxy(Fault::Reset).await,
        Kind::CutReply => with_proxy(Fault::CutReply).await,
        Kind::KillRestart => {
            let s = server.clone();
            blocking(move || s.lock().unwrap().kill()).await?;
            tokio::time::sleep(hold).await;
            // the fresh server has no ACL user until it is made again (a
            // deployment keeps users in an ACL file): hide it until then
            proxy.set(Fault::Reset);
            let s = server.clone();
            let restarted = blocking(move || {
                let mut s = s.lock().unwrap();
                s.restart()?;
                s.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))
            })
            .await;
            proxy.set(Fault::Pass);
            restarted?;
        }
        Kind::Stop => {
            let s = server.clone();
            blocking(move || s.lock().unwrap().pause()).await?;
            tokio::time::sleep(hold).await;
            let s = server.clone();
            blocking(move || s.lock().unwrap().resume()).await?;
        }
        Kind::DebugSleep => {
            cli(vec![
                "DEBUG".into(),
                "SLEEP".into(),
                format!("{:.3}", hold.as_secs_f64()),
            ])
            .await?;
        }
        Kind::ClientKill => {
            cli(vec![
                "CLIENT".into(),
                "KILL".into(),
                "USER".into(),
                USER.into(),
            ])
            .await?;
        }
        Kind::PauseWrite => {
            cli(vec![
                "CLIENT".into(),
                "PAUSE".into(),
                ms(hold),
                "WRITE".into(),
            ])
            .await?;
            tokio::time::sleep(hold).await;
        }
        Kind::ScriptFlush => {
            cli(vec!["SCRIPT".into(), "FLUSH".into()]).await?;
        }
        Kind::Oom => {
            oom(cli, hold).await?;
        }
        _ => anyhow::bail!("{kind:?} needs a cluster or a sentinel set"),
    }
    Ok(())
}

/// `maxmemory` at the memory in use with `noeviction` for `hold`, then
/// unlimited again.
async fn oom<F, Fut>(cli: F, hold: Duration) -> anyhow::Result<()>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let info = cli(vec!["INFO".into(), "memory".into()]).await?;
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .context("no used_memory in INFO")?
        .trim()
        .to_owned();
    cli(vec![
        "CONFIG".into(),
        "SET".into(),
        "maxmemory-policy".into(),
        "noeviction".into(),
    ])
    .await?;
    cli(vec![
        "CONFIG".into(),
        "SET".into(),
        "maxmemory".into(),
        used,
    ])
    .await?;
    tokio::time::sleep(hold).await;
    cli(vec![
        "CONFIG".into(),
        "SET".into(),
        "maxmemory".into(),
        "0".into(),
    ])
    .await?;
    Ok(())
}

async fn cluster_fault(
    rec: &Recorder,
    cluster: Arc<Mutex<Cluster>>,
    kind: Kind,
    hold: Duration,
    pick: usize,
) -> anyhow::Result<Option<LagWindow>> {
    // the index of one current primary, and of every node
    let c = cluster.clone();
    let (primary, all) = blocking(move || {
        let c = c.lock().unwrap();
        let ports = c.primary_ports()?;
        let port = ports[pick % ports.len()];
        let index = c
            .nodes()
            .iter()
            .position(|n| n.port() == port)
            .context("primary not among the nodes")?;
        Ok((index, c.nodes().len()))
    })
    .await?;
    let cli = |nodes: Vec<usize>, args: Vec<String>| {
        let c = cluster.clone();
        blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let c = c.lock().unwrap();
            let mut out = String::new();
            for i in nodes {
                out = c.nodes()[i].cli(&args)?;
            }
            Ok(out)
        })
    };
    match kind {
        Kind::Failover => {
            let c = cluster.clone();
            blocking(move || c.lock().unwrap().failover()).await?;
        }
        Kind::KillPrimary => {
            let c = cluster.clone();
            let (port, replica) = blocking(move || {
                let c = c.lock().unwrap();
                let node = &c.nodes()[primary];
                let replica = replica_port(&node.cli(&["INFO", "replication"])?)?;
                let replica = c
                    .nodes()
                    .iter()
                    .position(|n| n.port() == replica)
                    .context("replica not among the nodes")?;
                Ok((node.port(), replica))
            })
            .await?;
            let c = cluster.clone();
            let synced = synced_then(
                rec,
                move |args: &[&str]| c.lock().unwrap().nodes()[primary].cli(args),
                {
                    let c = cluster.clone();
                    move |args: &[&str]| c.lock().unwrap().nodes()[replica].cli(args)
                },
            )
            .await?;
            let c = cluster.clone();
            let killed = rec.now();
            blocking(move || c.lock().unwrap().node_mut(primary).kill()).await?;
            let c = cluster.clone();
            eventually(
                "a replica promoted in place of the killed primary",
                Duration::from_secs(30),
                || {
                    let c = c.clone();
                    async move {
                        let ports = blocking(move || c.lock().unwrap().primary_ports())
                            .await
                            .map_err(|e| e.to_string())?;
                        if ports.len() == 3 && !ports.contains(&port) {
                            Ok(())
                        } else {
                            Err(format!("primaries {ports:?}"))
                        }
                    }
                },
            )
            .await?;
            let promoted = rec.now();
            let c = cluster.clone();
            blocking(move || {
                let mut c = c.lock().unwrap();
                let node = c.node_mut(primary);
                node.restart()?;
                node.acl_setuser(USER, PASSWORD, &acl_rules(PREFIX))
            })
            .await?;
            return Ok(Some(LagWindow {
                synced,
                killed,
                promoted,
            }));
        }
        Kind::Stop => {
            let c = cluster.clone();
            blocking(move || c.lock().unwrap().nodes()[primary].pause()).await?;
            tokio::time::sleep(hold).await;
            let c = cluster.clone();
            blocking(move || c.lock().unwrap().nodes()[primary].resume()).await?;
        }
        Kind::DebugSleep => {
            let secs = format!("{:.3}", hold.as_secs_f64());
            cli(vec![primary], vec!["DEBUG".into(), "SLEEP".into(), secs]).await?;
        }
        Kind::ClientKill => {
            let args = vec!["CLIENT".into(), "KILL".into(), "USER".into(), USER.into()];
            // a node may have no client of the user: "No such client"
            for i in 0..all {
                let _ = cli(vec![i], args.clone()).await;
            }
        }
        Kind::PauseWrite => {
            let args = vec!["CLIENT".into(), "PAUSE".into(), ms(hold), "WRITE".into()];
            cli(vec![primary], args).await?;
            tokio::time::sleep(hold).await;
        }
        Kind::ScriptFlush => {
            cli((0..all).collect(), vec!["SCRIPT".into(), "FLUSH".into()]).await?;
        }
        Kind::Oom => {
            let cli = |args: Vec<String>| cli(vec![primary], args);
            oom(cli, hold).await?;
        }
        _ => anyhow::bail!("{kind:?} needs the standalone proxy"),
    }
    Ok(None)
}
