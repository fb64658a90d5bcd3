//! The tracking connection: a RESP3 fred client with `CLIENT TRACKING` on
//! every node, and the task that applies invalidations and connection
//! events to the tier.
//!
//! fred does not turn tracking back on after a reconnect, so this task
//! does: any connection error stops the tier serving (and flushes it); a
//! reconnect or a cluster change flushes, turns tracking on again on every
//! node, and only then lets the tier serve.

use std::sync::Arc;
use std::time::Duration;

use aeturnis_redis_core::fred::clients::Client;
use aeturnis_redis_core::fred::interfaces::{ClientInterface, TrackingInterface};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::client::Invalidation;
use aeturnis_redis_core::fred::types::{ClusterStateChange, RespVersion};
use aeturnis_redis_core::Redis;
use broadcast::error::RecvError;
use tokio::task::JoinHandle;

use aeturnis_redis_core::fred::error::Error as FredError;
use tokio::sync::{broadcast, mpsc};

use super::config::TrackingMode;
use super::flushes::{self, builder_like, fred, init_within, FlushWatch, WatchEvent};
use super::tier::{FlushCause, Tier};
use crate::error::{Error, Result};

/// Invalidation messages fred may hold for the task before it lags (a lag
/// flushes the tier).
const CHANNEL_CAPACITY: usize = 8192;
/// Pause between attempts to turn tracking back on.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// A new RESP3 client with the connection settings of `redis`.
pub(crate) async fn connect(redis: &Redis) -> Result<Client> {
    let base = redis.client();
    let mut config = base.client_config();
    config.version = RespVersion::RESP3;
    let mut perf = base.perf_config();
    perf.broadcast_channel_capacity = CHANNEL_CAPACITY;
    let client = builder_like(base, config, perf).build().map_err(fred)?;
    init_within(client, redis.config().connect_timeout).await
}

/// What the task needs to turn tracking on.
pub(crate) struct Tracking {
    pub(crate) client: Client,
    /// Bounds each connection of the flush watch.
    pub(crate) connect_timeout: Duration,
    pub(crate) mode: TrackingMode,
    /// Full key prefixes of the opted-in namespaces (broadcast mode).
    pub(crate) prefixes: Vec<String>,
}

impl Tracking {
    /// Turns tracking on on every node.
    pub(crate) async fn enable(&self) -> Result<()> {
        match self.mode {
            TrackingMode::Default => {
                self.client
                    .start_tracking(Vec::<String>::new(), false, false, false, false)
                    .await
                    .map_err(fred)?;
            }
            TrackingMode::Broadcast if self.client.is_clustered() => {
                // fred's start_tracking sends BCAST to one node only; every
                // primary must broadcast its own keys' changes
                let nodes = self
                    .client
                    .cached_cluster_state()
                    .map(|s| s.unique_primary_nodes())
                    .unwrap_or_default();
                for node in nodes {
                    self.client
                        .with_cluster_node(node)
                        .client_tracking::<(), _, _>(
                            "ON",
                            None,
                            self.prefixes.clone(),
                            true,
                            false,
                            false,
                            false,
                        )
                        .await
                        .map_err(fred)?;
                }
            }
            TrackingMode::Broadcast => {
                self.client
                    .start_tracking(self.prefixes.clone(), true, false, false, false)
                    .await
                    .map_err(fred)?;
            }
        }
        Ok(())
    }
}

/// Starts the task; tracking is turned on (and the tier serves) before it
/// returns, or the error is returned.
pub(crate) async fn start(tracking: Tracking, tier: Arc<Tier>) -> Result<JoinHandle<()>> {
    // subscribe before turning tracking on: nothing is missed
    let client = &tracking.client;
    let (events, watch_rx) = mpsc::unbounded_channel();
    let mut rx = Receivers {
        invalidations: client.invalidation_rx(),
        reconnects: client.reconnect_rx(),
        changes: client.cluster_change_rx(),
        errors: client.error_rx(),
        watch: watch_rx,
    };
    let watch = flushes::watch(client, tracking.connect_timeout, &events).await?;
    tracking.enable().await?;
    tier.start_serving();
    Ok(tokio::spawn(async move {
        let mut state = State {
            tracking,
            events,
            watch: Some(watch),
        };
        run(&mut state, &tier, &mut rx).await;
    }))
}

/// The task's own state: the flush watch is rebuilt on every re-enable.
struct State {
    tracking: Tracking,
    events: mpsc::UnboundedSender<WatchEvent>,
    watch: Option<FlushWatch>,
}

struct Receivers {
    invalidations: broadcast::Receiver<Invalidation>,
    reconnects: broadcast::Receiver<Server>,
    changes: broadcast::Receiver<Vec<ClusterStateChange>>,
    errors: broadcast::Receiver<(FredError, Option<Server>)>,
    watch: mpsc::UnboundedReceiver<WatchEvent>,
}

async fn run(state: &mut State, tier: &Tier, rx: &mut Receivers) {
    loop {
        tokio::select! {
            biased;
            error = rx.errors.recv() => match error {
                Err(RecvError::Closed) => break,
                // invalidations may be lost: stop serving at once, then
                // turn tracking on again (it waits for the reconnect)
                _ => reenable(state, tier, rx).await,
            },
            server = rx.reconnects.recv() => match server {
                Err(RecvError::Closed) => break,
                _ => reenable(state, tier, rx).await,
            },
            change = rx.changes.recv() => match change {
                Err(RecvError::Closed) => break,
                _ => reenable(state, tier, rx).await,
            },
            event = rx.watch.recv() => match event {
                Some(WatchEvent::Flushed) => tier.flush(FlushCause::ServerFlush),
                Some(WatchEvent::Broken) => reenable(state, tier, rx).await,
                None => break,
            },
            message = rx.invalidations.recv() => match message {
                Ok(inv) => apply(tier, &inv),
                Err(RecvError::Lagged(_)) => tier.flush(FlushCause::Lagged),
                Err(RecvError::Closed) => break,
            },
        }
    }
    tier.stop_serving(FlushCause::Connection);
}

fn apply(tier: &Tier, inv: &Invalidation) {
    if inv.keys.is_empty() {
        // FLUSHDB / FLUSHALL: a null invalidation
        tier.flush(FlushCause::ServerFlush);
        return;
    }
    for key in &inv.keys {
        if let Some(key) = key.as_str() {
            tier.invalidate(key);
        }
    }
}

/// Stops serving, rebuilds the flush watch and turns tracking on again
/// (retrying until both succeed; the task is aborted on shutdown), then
/// serves from an empty tier.
async fn reenable(state: &mut State, tier: &Tier, rx: &mut Receivers) {
    tier.stop_serving(FlushCause::Connection);
    loop {
        // the old watch's tasks end here: its queued events are moot
        state.watch = None;
        // events that came before this attempt are covered by it
        drain(&mut rx.reconnects);
        drain(&mut rx.changes);
        drain(&mut rx.errors);
        while rx.watch.try_recv().is_ok() {}
        let tracking = &state.tracking;
        let attempt = async {
            let watch =
                flushes::watch(&tracking.client, tracking.connect_timeout, &state.events).await?;
            tracking.enable().await?;
            Ok::<_, Error>(watch)
        };
        match attempt.await {
            Ok(watch) => {
                state.watch = Some(watch);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "near cache: could not turn tracking back on");
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
    // invalidations queued while tracking was off are moot: the tier is empty
    tier.start_serving();
    tracing::info!("near cache: tracking on again, serving");
}

fn drain<T: Clone>(rx: &mut broadcast::Receiver<T>) {
    while !matches!(
        rx.try_recv(),
        Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
    ) {}
}
