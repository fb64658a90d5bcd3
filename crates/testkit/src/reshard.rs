//! Topology changes of a [`Cluster`] beyond failovers: moving one slot (and
//! its keys) to another primary, and restarting a node.

use std::time::Duration;

use anyhow::{bail, ensure, Context};

use crate::cluster::{cluster_nodes, Cluster, Entry};
use crate::process::wait_until;
use crate::resp::{self, Value};

/// How long every node may take to agree on a slot's new owner.
const AGREE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keys moved per `MIGRATE`.
const BATCH: &str = "100";
/// `MIGRATE`'s own timeout, in milliseconds.
const MIGRATE_TIMEOUT_MS: &str = "5000";

impl Cluster {
    /// The port of the primary that serves `slot`, as the first running node
    /// sees it in `CLUSTER NODES`.
    ///
    /// # Errors
    /// Fails when no node answers or no primary claims the slot.
    pub fn slot_owner(&self, slot: u16) -> anyhow::Result<u16> {
        let view = self.view()?;
        owner(&view, slot).map(|e| e.port)
    }

    /// Reshards one slot: moves `slot` and its keys from its primary to the
    /// primary on port `to`, the way `redis-cli --cluster reshard` does
    /// (`CLUSTER SETSLOT <slot> IMPORTING` on the target, `MIGRATING` on the
    /// source, `MIGRATE` of every key in the slot, then `SETSLOT <slot> NODE`
    /// on every primary), and waits until every node agrees on the new
    /// owner and the cluster has settled. A no-op when `to` already owns it.
    ///
    /// Blocking: call it through `tokio::task::spawn_blocking` from a test.
    ///
    /// # Errors
    /// Fails when `to` is not a primary, a step is refused, or the nodes do
    /// not agree within 30 s.
    pub fn migrate_slot(&self, slot: u16, to: u16) -> anyhow::Result<()> {
        let view = self.view()?;
        let source = owner(&view, slot)?;
        let target = view
            .iter()
            .find(|e| e.port == to && e.is_master())
            .with_context(|| format!("no primary on port {to}"))?;
        if source.port == target.port {
            return Ok(());
        }
        let s = slot.to_string();
        ok(resp::query(
            target.port,
            &["CLUSTER", "SETSLOT", &s, "IMPORTING", &source.id],
        )?)?;
        ok(resp::query(
            source.port,
            &["CLUSTER", "SETSLOT", &s, "MIGRATING", &target.id],
        )?)?;
        let target_port = target.port.to_string();
        loop {
            let keys = resp::query(source.port, &["CLUSTER", "GETKEYSINSLOT", &s, BATCH])?
                .array()?
                .into_iter()
                .map(Value::text)
                .collect::<anyhow::Result<Vec<String>>>()?;
            if keys.is_empty() {
                break;
            }
            let mut migrate = vec![
                "MIGRATE",
                "127.0.0.1",
                &target_port,
                "",
                "0",
                MIGRATE_TIMEOUT_MS,
                "KEYS",
            ];
            migrate.extend(keys.iter().map(String::as_str));
            ok(resp::query(source.port, &migrate)?)?;
        }
        // the target first (it bumps its epoch), then the source, then the
        // other primaries
        let (first, second) = (target.port, source.port);
        let mut order = vec![first, second];
        order.extend(
            view.iter()
                .filter(|e| e.is_master() && e.port != first && e.port != second)
                .map(|e| e.port),
        );
        for port in order {
            ok(resp::query(
                port,
                &["CLUSTER", "SETSLOT", &s, "NODE", &target.id],
            )?)?;
        }
        let ports: Vec<u16> = self
            .nodes()
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.port())
            .collect();
        wait_until(
            &format!("every node to see slot {slot} on port {to}"),
            AGREE_TIMEOUT,
            || {
                for &port in &ports {
                    let owner = owner(&cluster_nodes(port)?, slot)?.port;
                    ensure!(owner == to, "node {port} sees slot {slot} on {owner}");
                }
                Ok(())
            },
        )?;
        self.wait_settled()
    }

    /// Restarts node `i` (SIGKILL, then the same port, dir and `nodes.conf`:
    /// it comes back with its identity and without its data) and waits until
    /// the cluster has settled. A primary restarted within the node timeout
    /// (2 s) comes back as the primary of its slots, empty.
    ///
    /// Blocking: call it through `tokio::task::spawn_blocking` from a test.
    ///
    /// # Errors
    /// Fails when the node does not come up or the cluster does not settle
    /// within 30 s.
    ///
    /// # Panics
    /// Panics when `i >= 6`, like slice indexing.
    pub fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.node_mut(i).restart()?;
        self.wait_settled()
    }

    /// `CLUSTER NODES` as the first running node that answers sees it.
    fn view(&self) -> anyhow::Result<Vec<Entry>> {
        let mut last = None;
        for node in self.nodes().iter().filter(|n| n.is_running()) {
            match cluster_nodes(node.port()) {
                Ok(view) => return Ok(view),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no cluster node is running")))
    }
}

/// The primary whose slot ranges (`0-5460 5462 ...`; `[...]` migration
/// markers skipped) hold `slot`.
fn owner(view: &[Entry], slot: u16) -> anyhow::Result<&Entry> {
    view.iter()
        .filter(|e| e.is_master())
        .find(|e| {
            e.slots
                .split_whitespace()
                .filter(|r| !r.starts_with('['))
                .any(|r| in_range(r, slot))
        })
        .with_context(|| format!("no primary serves slot {slot}"))
}

fn in_range(range: &str, slot: u16) -> bool {
    let mut ends = range.splitn(2, '-').map(str::parse::<u16>);
    match (ends.next(), ends.next()) {
        (Some(Ok(only)), None) => only == slot,
        (Some(Ok(lo)), Some(Ok(hi))) => (lo..=hi).contains(&slot),
        _ => false,
    }
}

/// An `OK` (or `NOKEY`) reply; anything else is an error.
fn ok(reply: Value) -> anyhow::Result<()> {
    match reply.text()?.as_str() {
        "OK" | "NOKEY" => Ok(()),
        other => bail!("unexpected reply {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::in_range;

    #[test]
    fn should_read_single_slots_and_ranges() {
        assert!(in_range("0-5460", 0));
        assert!(in_range("0-5460", 5460));
        assert!(!in_range("0-5460", 5461));
        assert!(in_range("5462", 5462));
        assert!(!in_range("5462", 5461));
        assert!(!in_range("[5461->-abc]", 5461));
    }
}
