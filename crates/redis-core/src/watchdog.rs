//! The unresponsive-connection check under steady traffic.
//!
//! fred's own check (`UnresponsiveConfig`) measures from the *last* write on
//! a connection (`Connection::last_write`, reset by every write, in
//! `router/types.rs::poll_connection`), so while callers keep sending
//! commands a connection that never answers again (a middlebox that dropped
//! its state, a black hole) is never found out: every command times out and
//! none reconnects. The watchdog sends a `PING` per client every
//! `unresponsive_timeout`, bounded by that timeout and never replayed, and
//! forces a reconnection when it times out on a connected client.

use std::time::Duration;

use fred::clients::Client;
use fred::error::ErrorKind;
use fred::interfaces::ClientLike;
use fred::prelude::FredResult;
use fred::types::config::Options;
use fred::types::ClientState;
use tokio::task::JoinHandle;

/// One watchdog task per client; none when `limit` is `None`.
pub(crate) fn start(
    clients: &[Client],
    limit: Option<Duration>,
) -> Vec<JoinHandle<FredResult<()>>> {
    let Some(limit) = limit else {
        return Vec::new();
    };
    clients
        .iter()
        .map(|client| tokio::spawn(watch(client.clone(), limit)))
        .collect()
}

async fn watch(client: Client, limit: Duration) -> FredResult<()> {
    let probe = Options {
        timeout: Some(limit),
        max_attempts: Some(1),
        ..Options::default()
    };
    let mut every = tokio::time::interval(limit);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if client.state() != ClientState::Connected {
            continue;
        }
        if let Err(e) = client.with_options(&probe).ping::<()>(None).await {
            if *e.kind() == ErrorKind::Timeout && client.state() == ClientState::Connected {
                tracing::warn!(
                    after = ?limit,
                    "Redis connection unresponsive (PING unanswered); reconnecting"
                );
                let _ = client.force_reconnection().await;
            }
        }
    }
}
