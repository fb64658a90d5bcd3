//! The flush watch: `FLUSHDB`/`FLUSHALL` reach the near cache through a
//! RESP2 connection per node.
//!
//! A flush makes Redis send every tracking client a *null* invalidation.
//! fred 10.1 drops a RESP3 `invalidate` push whose payload is null (it only
//! forwards arrays of keys), so the tracking connection never hears of a
//! flush. The RESP2 form does arrive: a connection that redirects its own
//! tracking to itself (`CLIENT TRACKING ON REDIRECT <own id>`, reading no
//! keys, so the server tracks nothing for it) and subscribes to
//! `__redis__:invalidate` receives the null as a pub/sub message, which fred
//! turns into an invalidation with no keys. One such connection per primary
//! (a flush is per node); any error or reconnect on one of them is reported
//! as broken, and the tracking task then flushes and rebuilds the watch.

use std::time::Duration;

use aeturnis_redis_core::fred::clients::{Client, SubscriberClient};
use aeturnis_redis_core::fred::interfaces::{ClientInterface, PubsubInterface, TrackingInterface};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::config::ServerConfig;
use aeturnis_redis_core::fred::types::RespVersion;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

const INVALIDATE: &str = "__redis__:invalidate";

/// What a watch connection reports to the tracking task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchEvent {
    /// A node was flushed (`FLUSHDB`/`FLUSHALL`).
    Flushed,
    /// A watch connection dropped or reconnected: flushes may be missed.
    Broken,
}

/// The watch connections and their forwarding tasks; dropping it aborts
/// the tasks and closes the connections.
pub(crate) struct FlushWatch {
    clients: Vec<SubscriberClient>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FlushWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // no runtime (it is shutting down): the connections go with it
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            for client in self.clients.drain(..) {
                runtime.spawn(async move {
                    let _ = client.quit().await;
                });
            }
        }
    }
}

/// Opens one watch connection per primary of `base` (one for a standalone
/// or sentinel setup) and forwards its events to `events`.
pub(crate) async fn watch(
    base: &Client,
    connect_timeout: Duration,
    events: &UnboundedSender<WatchEvent>,
) -> Result<FlushWatch> {
    let nodes: Vec<Option<Server>> = if base.is_clustered() {
        base.cached_cluster_state()
            .map(|s| s.unique_primary_nodes())
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None]
    };
    let mut watch = FlushWatch {
        clients: Vec::with_capacity(nodes.len()),
        tasks: Vec::with_capacity(nodes.len()),
    };
    for node in nodes {
        let client = connect(base, node, connect_timeout).await?;
        watch.clients.push(client.clone());
        let id: i64 = client.client_id().await.map_err(fred)?;
        client
            .client_tracking::<(), _, _>(
                "ON",
                Some(id),
                Vec::<String>::new(),
                false,
                false,
                false,
                false,
            )
            .await
            .map_err(fred)?;
        // subscribe after the receivers exist: nothing is missed
        let forward = forward(&client, events.clone());
        client.subscribe(INVALIDATE).await.map_err(fred)?;
        watch.tasks.push(forward);
    }
    Ok(watch)
}

async fn connect(
    base: &Client,
    node: Option<Server>,
    timeout: Duration,
) -> Result<SubscriberClient> {
    let mut config = base.client_config();
    config.version = RespVersion::RESP2;
    if let Some(server) = node {
        config.server = ServerConfig::Centralized { server };
    }
    let client = builder_like(base, config, base.perf_config())
        .build_subscriber_client()
        .map_err(fred)?;
    init_within(client, timeout).await
}

/// A builder for a client like `base` (its connection settings and
/// reconnect policy) with `config` and `perf`: the near cache's own
/// connections differ from the handle's only in RESP version, node or
/// channel capacity.
pub(super) fn builder_like(base: &Client, config: Config, perf: PerformanceConfig) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .set_performance_config(perf)
        .set_connection_config(base.connection_config().clone());
    if let Some(policy) = base.client_reconnect_policy() {
        builder.set_policy(policy);
    }
    builder
}

/// Connects `client` within `timeout` (the handle's connect timeout); a
/// client still connecting then is closed and the error is a timeout.
pub(super) async fn init_within<C: ClientLike>(client: C, timeout: Duration) -> Result<C> {
    match tokio::time::timeout(timeout, client.init()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(fred(e)),
        Err(_) => {
            let _ = client.quit().await;
            Err(Error::Redis(aeturnis_redis_core::Error::Timeout {
                operation: "connect",
                after: timeout,
            }))
        }
    }
}

fn forward(client: &SubscriberClient, events: UnboundedSender<WatchEvent>) -> JoinHandle<()> {
    let mut invalidations = client.invalidation_rx();
    let mut errors = client.error_rx();
    let mut reconnects = client.reconnect_rx();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                message = invalidations.recv() => match message {
                    Ok(inv) if inv.keys.is_empty() => WatchEvent::Flushed,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => WatchEvent::Flushed,
                    Err(RecvError::Closed) => WatchEvent::Broken,
                },
                _ = errors.recv() => WatchEvent::Broken,
                _ = reconnects.recv() => WatchEvent::Broken,
            };
            if events.send(event).is_err() || event == WatchEvent::Broken {
                return;
            }
        }
    })
}

pub(super) fn fred(e: aeturnis_redis_core::fred::error::Error) -> Error {
    Error::Redis(e.into())
}
