//! Following a sentinel failover: the `+switch-master` watcher.
//!
//! fred learns where the primary is only when it connects (it asks a
//! sentinel, then checks `ROLE`). After a switch the old primary still
//! answers as a master until the sentinels demote it, so without a nudge the
//! client would keep writing there. The watcher holds one subscriber
//! connection per sentinel, subscribed to `+switch-master`; when one announces
//! a new primary for our service it forces every client of the handle to
//! reconnect (fred's sentinel discovery then finds the new primary), and
//! repeats that until every client is connected to the announced address
//! (the sentinel fred asks first may learn of the switch a moment after the
//! one that told us). See the guide's "Failover" section for the bounds.

use std::fmt;
use std::time::{Duration, Instant};

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::prelude::{Builder, FredResult};
use fred::types::config::ServerConfig;
use fred::types::{ClientState, Message};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{RedisConfig, Topology};

/// The sentinels' channel announcing a new primary.
const CHANNEL: &str = "+switch-master";
/// Pause between checks while a client has not reached the announced primary.
const RECHECK: Duration = Duration::from_millis(50);
/// How long the watcher keeps moving clients after one announcement before it
/// gives up and waits for the next one (sentinels keep announcing as they
/// learn of the switch, and fred's own reconnects continue regardless).
const FOLLOW_FOR: Duration = Duration::from_secs(10);
/// How long a shutdown waits for each sentinel subscriber to close.
const QUIT_WAIT: Duration = Duration::from_secs(1);

type Task = JoinHandle<FredResult<()>>;

/// The subscriber connections to the sentinels; the tasks live in the
/// handle's task list.
pub(crate) struct Watcher {
    subscribers: Vec<SubscriberClient>,
}

/// A `+switch-master` announcement: `<name> <old-ip> <old-port> <new-ip> <new-port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Switch {
    service: String,
    old: (String, u16),
    new: (String, u16),
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.service, self.old.0, self.old.1, self.new.0, self.new.1
        )
    }
}

impl Switch {
    fn parse(text: &str) -> Option<Switch> {
        let mut words = text.split_whitespace();
        let service = words.next()?.to_owned();
        let mut addr = || -> Option<(String, u16)> {
            let host = words.next()?.to_owned();
            let port = words.next()?.parse().ok()?;
            Some((host, port))
        };
        let old = addr()?;
        let new = addr()?;
        Some(Switch { service, old, new })
    }
}

impl Watcher {
    /// For a sentinel topology, builds one subscriber per sentinel and spawns
    /// the listening tasks and the task that moves `clients`; `None` for the
    /// other topologies.
    pub(crate) fn start(
        config: &RedisConfig,
        clients: Vec<Client>,
    ) -> crate::Result<Option<(Watcher, Vec<Task>)>> {
        let Topology::Sentinel {
            service_name,
            nodes,
        } = &config.topology
        else {
            return Ok(None);
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subscribers = Vec::with_capacity(nodes.len());
        let mut tasks = Vec::with_capacity(nodes.len() + 1);
        let retry = config.reconnect.min_delay.max(RECHECK);
        for (host, port) in nodes {
            let subscriber = sentinel_builder(config, host, *port)?.build_subscriber_client()?;
            tasks.push(tokio::spawn(listen(subscriber.clone(), retry, tx.clone())));
            subscribers.push(subscriber);
        }
        tasks.push(tokio::spawn(follow(service_name.clone(), clients, rx)));
        Ok(Some((Watcher { subscribers }, tasks)))
    }

    /// Closes the subscriber connections, together and each bounded by
    /// [`QUIT_WAIT`] (a sentinel that is down must not hold up a shutdown);
    /// the caller aborts the tasks.
    pub(crate) async fn stop(&self) {
        let quits: Vec<_> = self
            .subscribers
            .iter()
            .cloned()
            .map(|s| tokio::spawn(async move { tokio::time::timeout(QUIT_WAIT, s.quit()).await }))
            .collect();
        for quit in quits {
            let _ = quit.await;
        }
    }
}

/// A builder for a plain connection to one sentinel, with the handle's
/// timeouts, reconnect policy and credentials (fred authenticates to the
/// sentinels with the same ones), no database, and retries on the first
/// connection too.
fn sentinel_builder(
    config: &RedisConfig,
    host: &str,
    port: u16,
) -> Result<Builder, crate::ConfigError> {
    let (mut fred, policy, connection, performance) = config.fred_parts()?;
    fred.server = ServerConfig::new_centralized(host, port);
    fred.database = None;
    fred.fail_fast = false;
    let mut builder = Builder::from_config(fred);
    builder
        .set_policy(policy)
        .set_connection_config(connection)
        .set_performance_config(performance);
    Ok(builder)
}

/// Subscribes to `+switch-master` on one sentinel (again after every
/// reconnect) and forwards each announcement.
async fn listen(
    subscriber: SubscriberClient,
    retry: Duration,
    tx: mpsc::UnboundedSender<Switch>,
) -> FredResult<()> {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    let sentinel = subscriber
        .client_config()
        .server
        .hosts()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    while let Err(error) = subscriber.init().await {
        tracing::warn!(%sentinel, %error, "cannot reach sentinel; retrying");
        tokio::time::sleep(retry).await;
    }
    let mut subscribed = false;
    loop {
        if !subscribed {
            if let Err(error) = subscriber.subscribe(CHANNEL).await {
                tracing::warn!(%sentinel, %error, "cannot subscribe to +switch-master; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
            subscribed = true;
        }
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => {
                    if let Some(switch) = announcement(&message) {
                        tracing::info!(%sentinel, %switch, "sentinel announced a new primary");
                        if tx.send(switch).is_err() {
                            return Ok(());
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) | Err(RecvError::Lagged(_)) => subscribed = false,
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}

fn announcement(message: &Message) -> Option<Switch> {
    if &*message.channel != CHANNEL {
        return None;
    }
    Switch::parse(message.value.as_str()?.as_ref())
}

/// Moves every client to each primary announced for `service`.
async fn follow(
    service: String,
    clients: Vec<Client>,
    mut rx: mpsc::UnboundedReceiver<Switch>,
) -> FredResult<()> {
    while let Some(first) = rx.recv().await {
        let mut switch = first;
        if switch.service != service {
            continue;
        }
        let started = Instant::now();
        let mut forced = 0_u32;
        loop {
            // several sentinels announce the same switch, and a later switch
            // replaces an earlier one: always aim at the latest
            while let Ok(next) = rx.try_recv() {
                if next.service == service {
                    switch = next;
                }
            }
            let elsewhere: Vec<&Client> = clients
                .iter()
                .filter(|c| !connected_to(c, &switch.new))
                .collect();
            if elsewhere.is_empty() {
                tracing::info!(
                    %switch,
                    clients = clients.len(),
                    reconnections = forced,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "every client follows the new primary"
                );
                break;
            }
            if started.elapsed() > FOLLOW_FOR {
                tracing::warn!(%switch, stale = elsewhere.len(), "clients have not reached the announced primary");
                break;
            }
            forced += force_reconnections(&switch, elsewhere).await;
            tokio::time::sleep(RECHECK).await;
        }
    }
    Ok(())
}

/// Forces a reconnection of every client in `clients` that is connected (a
/// client that is already reconnecting asks the sentinels anyway: forcing it
/// would only queue a second reconnection behind the first). Returns how
/// many were forced.
async fn force_reconnections(switch: &Switch, clients: Vec<&Client>) -> u32 {
    let handles: Vec<_> = clients
        .into_iter()
        .filter(|c| c.state() == ClientState::Connected)
        .cloned()
        .map(|c| tokio::spawn(async move { c.force_reconnection().await }))
        .collect();
    let mut forced = 0;
    for handle in handles {
        forced += 1;
        if let Ok(Err(error)) = handle.await {
            tracing::warn!(%switch, %error, "forced reconnection failed");
        }
    }
    forced
}

/// Whether every connection of `client` goes to `addr`.
fn connected_to(client: &Client, addr: &(String, u16)) -> bool {
    let servers = client.active_connections();
    !servers.is_empty()
        && servers
            .iter()
            .all(|s| s.port == addr.1 && &*s.host == addr.0.as_str())
}

#[cfg(test)]
mod tests {
    use super::Switch;

    #[test]
    fn should_parse_a_switch_announcement() {
        let switch = Switch::parse("mymaster 127.0.0.1 30001 127.0.0.2 30002");
        assert_eq!(
            switch,
            Some(Switch {
                service: "mymaster".into(),
                old: ("127.0.0.1".into(), 30001),
                new: ("127.0.0.2".into(), 30002),
            })
        );
        assert_eq!(Switch::parse("mymaster 127.0.0.1 30001 127.0.0.2"), None);
        assert_eq!(Switch::parse("mymaster 127.0.0.1 x 127.0.0.2 1"), None);
    }
}
