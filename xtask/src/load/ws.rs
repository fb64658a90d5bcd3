//! The load generator's WebSocket side: each player opens `/ws` with its
//! session and sends moves and chat at their presets' rates (movement 10 a
//! second, chat 10 a minute), counting what it sent, every frame it
//! received, the over-limit error frames and the other failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The demo's zones.
const ZONES: [&str; 3] = ["meadow", "marsh", "keep"];
/// The movement preset: 10 a second.
const MOVE_EVERY: Duration = Duration::from_millis(100);
/// The chat preset: 10 a minute.
const CHAT_EVERY: Duration = Duration::from_secs(6);

/// WebSocket counters of a whole run (shared by the players).
#[derive(Debug, Default)]
pub(crate) struct WsCounters {
    sent: AtomicU64,
    received: AtomicU64,
    over_limit: AtomicU64,
    errors: AtomicU64,
}

/// A snapshot of [`WsCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WsFigures {
    /// Frames sent (moves and chat).
    pub(crate) sent: u64,
    /// Frames received (acks, fan-out from other players, errors).
    pub(crate) received: u64,
    /// Error frames `rate_limited` (over the preset).
    pub(crate) over_limit: u64,
    /// Other error frames, failed handshakes and sockets that broke.
    pub(crate) errors: u64,
}

impl WsCounters {
    pub(crate) fn figures(&self) -> WsFigures {
        WsFigures {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            over_limit: self.over_limit.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    fn count(&self, counter: fn(&WsCounters) -> &AtomicU64) {
        counter(self).fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one received text frame by its `type`.
    fn frame(&self, text: &str) {
        self.count(|c| &c.received);
        let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if frame["type"] == "error" {
            if frame["error"] == "rate_limited" {
                self.count(|c| &c.over_limit);
            } else {
                self.count(|c| &c.errors);
            }
        }
    }
}

/// Plays on `/ws` until `until`: opens the socket with `token` (from
/// `local`, when given), sends a move every 100 ms and a chat line every
/// 6 s (the first at a random offset: `phase` in 0..1), and reads whatever
/// arrives.
pub(crate) async fn play(
    base: &str,
    local: Option<std::net::IpAddr>,
    token: &str,
    name: &str,
    phase: f64,
    until: Instant,
    counters: Arc<WsCounters>,
) {
    let Some(socket) = connect(base, local, token).await else {
        counters.count(|c| &c.errors);
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let start = tokio::time::Instant::now();
    let mut moves = tokio::time::interval_at(start + MOVE_EVERY.mul_f64(phase), MOVE_EVERY);
    let mut chats = tokio::time::interval_at(start + CHAT_EVERY.mul_f64(phase), CHAT_EVERY);
    let end = tokio::time::sleep_until(until.into());
    tokio::pin!(end);
    let mut step: u64 = 0;
    loop {
        let frame = tokio::select! {
            () = &mut end => break,
            _ = moves.tick() => {
                step += 1;
                let zone = ZONES[usize::try_from(step / 50).unwrap_or(0) % ZONES.len()];
                json!({ "type": "move", "zone": zone, "x": step % 100, "y": phase * 100.0 })
            }
            _ = chats.tick() => json!({ "type": "chat", "text": format!("{name} waves") }),
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    counters.frame(text.as_str());
                    continue;
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue,
                Some(Err(_)) => {
                    counters.count(|c| &c.errors);
                    break;
                }
            },
        };
        if sink
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            counters.count(|c| &c.errors);
            break;
        }
        counters.count(|c| &c.sent);
    }
    let _ = sink.send(Message::Close(None)).await;
}

/// The WebSocket handshake with the bearer token; `None` when it fails.
async fn connect(
    base: &str,
    local: Option<std::net::IpAddr>,
    token: &str,
) -> Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let host = base.strip_prefix("http://")?;
    let mut request = format!("ws://{host}/ws").into_client_request().ok()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().ok()?);
    let addr = tokio::net::lookup_host(host.split('/').next()?)
        .await
        .ok()?
        .next()?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .ok()?;
    if let Some(ip) = local.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(std::net::SocketAddr::new(ip, 0)).ok()?;
    }
    let stream = socket.connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .ok()?;
    Some(socket)
}

/// The table's WebSocket rows, in its columns (route, count, per second,
/// p50, p99, ok, limited, other).
/// The over-limit error frames go in the 429 column, the other failures in
/// the last.
pub(crate) fn rows(ws: WsFigures, seconds: f64) -> String {
    format!(
        "{:<28} {:>9} {:>8.1} {:>9} {:>9} {:>7} {:>6} {:>7}\n\
         {:<28} {:>9} {:>8.1} {:>9} {:>9} {:>7} {:>6} {:>7}\n",
        "WS /ws messages sent",
        ws.sent,
        ws.sent as f64 / seconds,
        "-",
        "-",
        "-",
        ws.over_limit,
        ws.errors,
        "WS /ws messages received",
        ws.received,
        ws.received as f64 / seconds,
        "-",
        "-",
        "-",
        "-",
        "-",
    )
}
