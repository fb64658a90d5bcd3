//! Real-time play: `GET /ws`, a WebSocket of JSON text frames.
//!
//! The handshake goes through aeturnis-tower's session layer like every
//! route: no live session (cookie or bearer), no upgrade (401). The
//! session is read again on every message and once a second: once it is
//! revoked the server closes the socket (code 1008, `session revoked`).
//!
//! | client frame | effect |
//! |---|---|
//! | `{"type":"move","zone":"meadow","x":1,"y":2}` | movement preset (10/s): write-behind, `ack`, fan-out |
//! | `{"type":"chat","text":"hi"}` | chat preset (10/min): fan-out to the zone |
//! | `{"type":"attack","target":"bob"}` | combat preset (20/5 s) |
//!
//! An over-limit message is answered
//! `{"type":"error","error":"rate_limited","limiter":"movement","retry_after_ms":…}`
//! and the socket stays open. Chat and moves fan out across demo instances
//! through Redis sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, one channel per
//! zone, one subscriber client per process); each socket forwards the
//! events of its zone. Presence: a sorted set per zone scored by expiry,
//! refreshed every [`DemoConfig::heartbeat`](crate::DemoConfig::heartbeat);
//! a crashed instance's players drop out after
//! [`DemoConfig::presence_ttl`](crate::DemoConfig::presence_ttl).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aeturnis_ratelimit::LimitKey;
use aeturnis_redis_core::fred::clients::SubscriberClient;
use aeturnis_redis_core::fred::interfaces::{EventInterface, PubsubInterface, SortedSetsInterface};
use aeturnis_session::Session as SessionRecord;
use aeturnis_tower::ratelimit::RequestLimiter;
use aeturnis_tower::session::Session;
use aeturnis_tower::{KeyError, LayerError};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::db::Position;
use crate::players::ZONES;
use crate::response::ApiError;
use crate::state::AppState;
use crate::validate;

/// The process's fan-out: one subscriber client on every zone channel,
/// relaying each event to the local sockets.
pub(crate) struct Hub {
    events: broadcast::Sender<String>,
    _subscriber: SubscriberClient,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// The channel of a zone (under the key prefix, so tests do not mix).
fn channel(state: &AppState, zone: &str) -> Result<String, ApiError> {
    Ok(state
        .cache()
        .key("rt")
        .id(zone)
        .build()?
        .as_str()
        .to_owned())
}

/// The presence set of a zone.
fn presence_key(state: &AppState, zone: &str) -> Result<String, ApiError> {
    Ok(state
        .cache()
        .key("presence")
        .id(zone)
        .build()?
        .as_str()
        .to_owned())
}

impl Hub {
    /// Subscribes to every zone channel (done when this returns).
    pub(crate) async fn start(state: &AppState) -> Result<Hub, ApiError> {
        let subscriber = state.redis().subscriber().await?;
        let (events, _) = broadcast::channel(1024);
        let relay = events.clone();
        drop(subscriber.on_message(move |message| {
            if let Some(text) = message.value.as_string() {
                // no receiver: nobody connected here; not an error
                let _ = relay.send(text);
            }
            async { Ok(()) }
        }));
        for (zone, _) in ZONES {
            subscriber
                .ssubscribe(channel(state, zone)?)
                .await
                .map_err(aeturnis_redis_core::Error::from)?;
        }
        Ok(Hub {
            events,
            _subscriber: subscriber,
        })
    }
}

/// `GET /ws`: upgrades a request with a live session.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Session(session): Session,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let events = state.hub().await?.events.subscribe();
    Ok(ws.on_upgrade(move |socket| async move {
        Box::pin(play(state, session, socket, events)).await;
    }))
}

/// A client frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Frame {
    Move { zone: String, x: f64, y: f64 },
    Chat { text: String },
    Attack { target: String },
}

/// What a socket's messages are limited by: the player.
struct Player(String);

/// A limiter keyed by the player.
type UserLimiter = RequestLimiter<fn(&Player) -> Result<LimitKey, KeyError>>;

/// Per-user limiters of one socket.
struct Limits {
    movement: UserLimiter,
    chat: UserLimiter,
    combat: UserLimiter,
}

fn user_key(player: &Player) -> Result<LimitKey, KeyError> {
    LimitKey::user(&player.0).map_err(|e| KeyError::Layer(LayerError::new(e)))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

async fn live(state: &AppState, session: &SessionRecord) -> bool {
    // a Redis error is not a revocation: keep the socket
    !matches!(state.sessions().get(&session.id).await, Ok(None))
}

async fn heartbeat(state: &AppState, user: &str, zone: &str, leaving: Option<&str>) {
    let client = state.redis().client();
    if let Some(old) = leaving {
        if let Ok(key) = presence_key(state, old) {
            let _: Result<i64, _> = client.zrem(key, user).await;
        }
    }
    if let Ok(key) = presence_key(state, zone) {
        let expires = now_ms() + state.config().presence_ttl.as_millis() as f64;
        let added: Result<i64, _> = client
            .zadd(key, None, None, false, false, (expires, user))
            .await;
        if let Err(e) = added {
            tracing::debug!(error = %e, "presence heartbeat");
        }
    }
}

/// Players online per zone: members whose heartbeat has not expired (the
/// expired ones are removed on the way).
pub(crate) async fn online(state: &AppState) -> Vec<(String, u64)> {
    let client = state.redis().client();
    let now = now_ms();
    let mut zones = Vec::with_capacity(ZONES.len());
    for (zone, _) in ZONES {
        let Ok(key) = presence_key(state, zone) else {
            continue;
        };
        let _: Result<i64, _> = client.zremrangebyscore(&key, f64::NEG_INFINITY, now).await;
        let n: u64 = client.zcard(&key).await.unwrap_or(0);
        zones.push((zone.to_owned(), n));
    }
    zones
}

async fn play(
    state: AppState,
    session: SessionRecord,
    mut socket: WebSocket,
    mut events: broadcast::Receiver<String>,
) {
    let player = Player(session.user.as_str().to_owned());
    let user = player.0.as_str();
    let mut zone = match state.store().db().position(user).await {
        Ok(Some(p)) => p.zone,
        _ => ZONES[0].0.to_owned(),
    };
    let l = state.limits();
    let per_user = |r: &aeturnis_ratelimit::RateLimiter| {
        RequestLimiter::new(
            r.clone(),
            user_key as fn(&Player) -> Result<LimitKey, KeyError>,
        )
    };
    let limits = Limits {
        movement: per_user(&l.movement),
        chat: per_user(&l.chat),
        combat: per_user(&l.combat),
    };
    heartbeat(&state, user, &zone, None).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let every = state.config().heartbeat();
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                if !live(&state, &session).await {
                    close_revoked(&mut socket).await;
                    break;
                }
                let reply = handle(&state, &limits, &player, &mut zone, text.as_str()).await;
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                    break;
                }
            }
            event = events.recv() => {
                let Ok(event) = event else { continue };
                let ours = serde_json::from_str::<Value>(&event)
                    .is_ok_and(|v| v["zone"] == zone.as_str());
                if ours && socket.send(Message::Text(event.into())).await.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                if !live(&state, &session).await {
                    close_revoked(&mut socket).await;
                    break;
                }
            }
            _ = beat.tick() => heartbeat(&state, user, &zone, None).await,
        }
    }
    if let Ok(key) = presence_key(&state, &zone) {
        let _: Result<i64, _> = state.redis().client().zrem(key, user).await;
    }
}

async fn close_revoked(socket: &mut WebSocket) {
    let frame = CloseFrame {
        code: 1008,
        reason: "session revoked".into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn error_frame(error: &str, detail: impl Into<String>) -> Value {
    json!({ "type": "error", "error": error, "detail": detail.into() })
}

/// Checks `limiter` for `user`; `Some(error frame)` when over the limit.
async fn over_limit(limiter: &UserLimiter, user: &Player) -> Option<Value> {
    match limiter.check(user).await {
        Ok(v) if v.allowed => None,
        Ok(v) => Some(json!({
            "type": "error",
            "error": "rate_limited",
            "limiter": v.limiter,
            "retry_after_ms": v.retry_after().map_or(0, |d| d.as_millis()),
        })),
        Err(e) => Some(error_frame("unavailable", e.to_string())),
    }
}

async fn publish(state: &AppState, zone: &str, event: &Value) -> Result<(), ApiError> {
    let sent: Result<i64, _> = state
        .redis()
        .client()
        .spublish(channel(state, zone)?, event.to_string())
        .await;
    sent.map(|_| ())
        .map_err(|e| ApiError::from(aeturnis_redis_core::Error::from(e)))
}

async fn handle(
    state: &AppState,
    limits: &Limits,
    user: &Player,
    zone: &mut String,
    text: &str,
) -> Value {
    let frame = match serde_json::from_str::<Frame>(text) {
        Ok(f) => f,
        Err(e) => return error_frame("bad_request", e.to_string()),
    };
    let done = match frame {
        Frame::Move { zone: to, x, y } => {
            if let Some(denied) = over_limit(&limits.movement, user).await {
                return denied;
            }
            moved(state, &user.0, zone, &to, x, y).await
        }
        Frame::Chat { text } => {
            if let Some(denied) = over_limit(&limits.chat, user).await {
                return denied;
            }
            match validate::text("text", &text, validate::MAX_MESSAGE_CHARS) {
                Ok(text) => {
                    let event = json!({ "type": "chat", "zone": zone.as_str(), "from": user.0, "text": text });
                    publish(state, zone, &event)
                        .await
                        .map(|()| json!({ "type": "sent" }))
                }
                Err(e) => Err(e),
            }
        }
        Frame::Attack { target } => {
            if let Some(denied) = over_limit(&limits.combat, user).await {
                return denied;
            }
            validate::player_name("target", &target)
                .map(|t| json!({ "type": "attacked", "target": t }))
        }
    };
    done.unwrap_or_else(|e| error_frame("refused", e.to_string()))
}

async fn moved(
    state: &AppState,
    user: &str,
    zone: &mut String,
    to: &str,
    x: f64,
    y: f64,
) -> Result<Value, ApiError> {
    let position = crate::routes::movement::checked(user, to, x, y)?;
    let ack = state.store().record_move(&position).await?;
    if zone != to {
        heartbeat(state, user, to, Some(zone)).await;
        *zone = to.to_owned();
    }
    let Position { zone: z, x, y, .. } = position;
    let event = json!({ "type": "move", "zone": z, "player": user, "x": x, "y": y });
    publish(state, &z, &event).await?;
    Ok(json!({ "type": "ack", "ack": ack.to_string() }))
}
