//! A 6-node Redis Cluster: 3 primaries, 3 replicas.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};

use crate::process::{wait_until, Spec};
use crate::resp::{self, info_field};
use crate::server::RedisServer;

/// How long a new or failed-over cluster may take to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const NODES: usize = 6;

/// A 6-node Redis Cluster (3 primaries, 3 replicas) created with
/// `redis-cli --cluster create ... --cluster-replicas 1`, from
/// `deploy/redis/cluster-node.conf`. Dropping it kills every node.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts 6 nodes, joins them, and waits until the cluster is settled: every node
    /// reports `cluster_state:ok`, `cluster_slots_ok:16384` and `cluster_known_nodes:6`,
    /// every node's `CLUSTER NODES` shows the same 3 primaries (owning all slots) and 3
    /// replicas, and every replica's link to its primary is up.
    ///
    /// # Errors
    /// Fails when a node does not start, `redis-cli --cluster create` fails, or the
    /// cluster does not settle within 30 s (the error says what was missing).
    pub fn start() -> anyhow::Result<Cluster> {
        let nodes = (0..NODES)
            .map(|_| RedisServer::start(&Spec::cluster_node()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cluster = Cluster { nodes };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(node.addr().to_string());
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = create
            .output()
            .context("running redis-cli --cluster create")?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster create failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        cluster.wait_settled()?;
        Ok(cluster)
    }

    /// The 6 nodes, in start order (roles change with failovers).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, giving up the cluster (for [`RedisServer::detach`]).
    pub fn into_nodes(self) -> Vec<RedisServer> {
        self.nodes
    }

    /// One node, for fault injection (`kill`, `restart`, `pause`...).
    ///
    /// # Panics
    /// Panics when `i >= 6`, like slice indexing.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// fred's cluster URL naming all 6 nodes:
    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=...`.
    pub fn url(&self) -> String {
        let mut ports = self.nodes.iter().map(RedisServer::port);
        let first = ports.next().unwrap_or_default();
        let rest: Vec<String> = ports.map(|p| format!("node=127.0.0.1:{p}")).collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", rest.join("&"))
    }

    /// `("127.0.0.1", port)` of every node.
    pub fn seed_nodes(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| ("127.0.0.1".to_owned(), n.port()))
            .collect()
    }

    /// Ports of the current primaries that own slots and are not marked failed, as the
    /// first reachable node sees them in `CLUSTER NODES`.
    ///
    /// # Errors
    /// Fails when no node answers.
    pub fn primary_ports(&self) -> anyhow::Result<Vec<u16>> {
        let mut last = None;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            match cluster_nodes(node.port()) {
                Ok(view) => {
                    let mut ports: Vec<u16> = view
                        .iter()
                        .filter(|e| e.is_master() && !e.is_failed() && !e.slots.is_empty())
                        .map(|e| e.port)
                        .collect();
                    ports.sort_unstable();
                    return Ok(ports);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no cluster node is running")))
    }

    /// Promotes a replica with `CLUSTER FAILOVER` and waits until it reports itself a
    /// primary and the whole cluster has settled again (see [`Cluster::start`]).
    /// Every node must be running.
    ///
    /// # Errors
    /// Fails when no replica is found or the cluster does not settle within 30 s.
    pub fn failover(&self) -> anyhow::Result<()> {
        let first = self
            .nodes
            .first()
            .context("the cluster has no nodes")?
            .port();
        let view = cluster_nodes(first)?;
        let replica = view
            .iter()
            .find(|e| !e.is_master())
            .context("no replica in CLUSTER NODES")?;
        resp::text(replica.port, &["CLUSTER", "FAILOVER"])?;
        let port = replica.port;
        wait_until(
            &format!("replica on port {port} to become a primary"),
            SETTLE_TIMEOUT,
            || {
                let info = resp::text(port, &["INFO", "replication"])?;
                ensure!(
                    info_field(&info, "role") == Some("master"),
                    "role is not master yet"
                );
                Ok(())
            },
        )?;
        self.wait_settled()
    }

    /// Waits until every node agrees on a healthy 3 + 3 layout.
    pub(crate) fn wait_settled(&self) -> anyhow::Result<()> {
        let ports: Vec<u16> = self.nodes.iter().map(RedisServer::port).collect();
        wait_until("the cluster to settle", SETTLE_TIMEOUT, || {
            check_settled(&ports)
        })
        .map_err(|e| {
            let logs: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("--- node {} log (tail):\n{}", n.port(), tail(&n.log(), 15)))
                .collect();
            e.context(logs.join("\n"))
        })
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One line of `CLUSTER NODES`, without the per-observer fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) port: u16,
    flags: Vec<String>,
    master_id: String,
    pub(crate) slots: String,
}

impl Entry {
    pub(crate) fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    fn is_failed(&self) -> bool {
        self.flags
            .iter()
            .any(|f| matches!(f.as_str(), "fail" | "fail?" | "handshake" | "noaddr"))
    }
}

pub(crate) fn cluster_nodes(port: u16) -> anyhow::Result<Vec<Entry>> {
    let text = resp::text(port, &["CLUSTER", "NODES"])?;
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(fields.len() >= 8, "short CLUSTER NODES line {line:?}");
        // `127.0.0.1:30001@40001[,hostname]`
        let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
        let node_port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("bad address in CLUSTER NODES line {line:?}"))?;
        let flags = fields[2]
            .split(',')
            .filter(|f| *f != "myself")
            .map(str::to_owned)
            .collect();
        entries.push(Entry {
            id: fields[0].to_owned(),
            port: node_port,
            flags,
            master_id: fields[3].to_owned(),
            slots: fields[8..].join(" "),
        });
    }
    entries.sort();
    Ok(entries)
}

fn check_settled(ports: &[u16]) -> anyhow::Result<()> {
    let mut first_view: Option<Vec<Entry>> = None;
    for &port in ports {
        let info = resp::text(port, &["CLUSTER", "INFO"])?;
        for (field, want) in [
            ("cluster_state", "ok"),
            ("cluster_slots_ok", "16384"),
            ("cluster_known_nodes", "6"),
        ] {
            let got = info_field(&info, field);
            ensure!(
                got == Some(want),
                "node {port}: {field} is {got:?}, want {want}"
            );
        }
        let view = cluster_nodes(port)?;
        ensure!(view.len() == NODES, "node {port} sees {} nodes", view.len());
        if let Some(bad) = view.iter().find(|e| e.is_failed()) {
            bail!("node {port} flags node {} as {:?}", bad.port, bad.flags);
        }
        let masters: Vec<&Entry> = view.iter().filter(|e| e.is_master()).collect();
        ensure!(
            masters.len() == 3 && masters.iter().all(|m| !m.slots.is_empty()),
            "node {port} sees {} primaries with slots",
            masters.iter().filter(|m| !m.slots.is_empty()).count()
        );
        for replica in view.iter().filter(|e| !e.is_master()) {
            ensure!(
                masters.iter().any(|m| m.id == replica.master_id),
                "node {port}: replica {} has no known primary",
                replica.port
            );
        }
        match &first_view {
            None => first_view = Some(view),
            Some(first) => ensure!(
                *first == view,
                "node {port} disagrees with node {} about the layout",
                ports[0]
            ),
        }
    }
    for entry in first_view.iter().flatten().filter(|e| !e.is_master()) {
        let info = resp::text(entry.port, &["INFO", "replication"])?;
        let link = info_field(&info, "master_link_status");
        ensure!(
            link == Some("up"),
            "replica {}: master_link_status is {link:?}",
            entry.port
        );
    }
    Ok(())
}
