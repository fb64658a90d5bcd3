//! `GET /ws` over real TCP: the handshake needs a live session, a revoked
//! session closes the socket, over-limit messages get error frames, and
//! chat fans out between two instances through sharded pub/sub.

use std::net::SocketAddr;
use std::time::Duration;

use aeturnis_demo::{app, DemoConfig};
use aeturnis_testkit::{eventually, topology_tests, TestCtx};
use axum::http::{Method, StatusCode};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::Api;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Serves `api`'s state on a free port.
async fn serve(api: &Api) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(api.state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn connect(addr: SocketAddr, token: &str) -> Socket {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next text frame whose `type` is one of `types` (others are skipped).
async fn next_of(socket: &mut Socket, types: &[&str]) -> Value {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if types.iter().any(|ty| v["type"] == *ty) {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a frame within 5 s")
}

#[tokio::test]
async fn should_refuse_the_handshake_without_a_live_session() -> anyhow::Result<()> {
    let api = Api::standalone("demo_ws_no_session", DemoConfig::defaults()?).await?;
    let addr = serve(&api).await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await;
    match refused {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected a 401, got {other:?}"),
    }
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", "Bearer not-a-session".parse()?);
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected a 401, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn should_close_the_socket_once_the_session_is_revoked() -> anyhow::Result<()> {
    let api = Api::standalone("demo_ws_revoked", DemoConfig::defaults()?).await?;
    let addr = serve(&api).await;
    let token = api.login("dave").await;
    let mut socket = connect(addr, &token).await;
    send(&mut socket, json!({ "type": "attack", "target": "bob" })).await;
    assert_eq!(next_of(&mut socket, &["attacked"]).await["target"], "bob");
    let out = api
        .call(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.body["revoked"], true);
    // the server checks once a second (and on every message)
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await?
    .expect("a close frame with a code");
    assert_eq!(closed.code, CloseCode::Policy);
    assert_eq!(closed.reason.as_str(), "session revoked");
    Ok(())
}

#[tokio::test]
async fn should_answer_moves_over_ten_a_second_with_error_frames_and_stay_open(
) -> anyhow::Result<()> {
    let api = Api::standalone("demo_ws_move_limit", DemoConfig::defaults()?).await?;
    let addr = serve(&api).await;
    let token = api.login("bob").await;
    let mut socket = connect(addr, &token).await;
    // 30 moves sent at once: the preset is GCRA, a burst of 10 then one
    // every 100 ms
    let started = std::time::Instant::now();
    for x in 0..30 {
        send(
            &mut socket,
            json!({ "type": "move", "zone": "marsh", "x": x, "y": 1 }),
        )
        .await;
    }
    let mut replies = Vec::new();
    for _ in 0..30 {
        replies.push(next_of(&mut socket, &["ack", "error"]).await);
    }
    let elapsed_ms = u64::try_from(started.elapsed().as_millis())?;
    assert!(
        replies[..10].iter().all(|r| r["type"] == "ack"),
        "{replies:?}"
    );
    let acks = replies.iter().filter(|r| r["type"] == "ack").count() as u64;
    assert!(
        acks <= 11 + elapsed_ms / 100,
        "{acks} acks in {elapsed_ms} ms"
    );
    let denied: Vec<_> = replies.iter().filter(|r| r["type"] == "error").collect();
    assert!(!denied.is_empty(), "no denial in {elapsed_ms} ms");
    for d in &denied {
        assert_eq!(d["error"], "rate_limited", "{d}");
        assert_eq!(d["limiter"], "movement", "{d}");
        let wait = d["retry_after_ms"].as_u64().unwrap();
        assert!((1..=100).contains(&wait), "{d}");
    }
    // the socket is still open: chat has its own limit
    send(&mut socket, json!({ "type": "chat", "text": "still here" })).await;
    assert_eq!(
        next_of(&mut socket, &["sent", "error"]).await["type"],
        "sent"
    );
    // a malformed frame is an error frame too
    send(&mut socket, json!({ "type": "dance" })).await;
    assert_eq!(
        next_of(&mut socket, &["error"]).await["error"],
        "bad_request"
    );
    Ok(())
}

async fn should_fan_chat_and_moves_out_between_two_instances(ctx: TestCtx) -> anyhow::Result<()> {
    let one = Api::new(&ctx, DemoConfig::defaults()?).await?;
    let two = Api::new(&ctx, DemoConfig::defaults()?).await?;
    let (addr_one, addr_two) = (serve(&one).await, serve(&two).await);
    // alice and carol both start in the meadow, each on her own instance
    let mut alice = connect(addr_one, &one.login("alice").await).await;
    let mut carol = connect(addr_two, &two.login("carol").await).await;
    send(
        &mut alice,
        json!({ "type": "chat", "text": "hello from one" }),
    )
    .await;
    let heard = next_of(&mut carol, &["chat"]).await;
    assert_eq!(heard["from"], "alice");
    assert_eq!(heard["text"], "hello from one");
    send(
        &mut carol,
        json!({ "type": "move", "zone": "meadow", "x": 3, "y": 4 }),
    )
    .await;
    let seen = next_of(&mut alice, &["move"]).await;
    assert_eq!(
        (seen["player"].clone(), seen["x"].clone()),
        (json!("carol"), json!(3.0))
    );
    // both are online in the meadow, whichever instance is asked
    let meadow = one
        .state
        .snapshot()
        .await
        .zones
        .into_iter()
        .find(|z| z.zone == "meadow")
        .unwrap();
    assert_eq!(meadow.online, 2);
    Ok(())
}

topology_tests!(should_fan_chat_and_moves_out_between_two_instances);

/// Players online in every zone, as the dashboard counts them.
async fn online(api: &Api) -> u64 {
    api.state
        .snapshot()
        .await
        .zones
        .iter()
        .map(|z| z.online)
        .sum()
}

#[tokio::test]
async fn should_drop_a_crashed_instances_players_from_presence_within_the_ttl() -> anyhow::Result<()>
{
    let ctx = TestCtx::standalone("demo_presence_crash").await;
    // 3 s: the checks that dave is still online run well inside it, even on
    // a stalled CI host
    let ttl = Duration::from_secs(3);
    let config = DemoConfig::defaults()?.with_presence_ttl(ttl);
    let watcher = Api::new(&ctx, config.clone()).await?;
    // The instance that crashes runs on a runtime of its own: shutting that
    // runtime down drops its tasks (sockets, Redis connections) where they
    // stand, without the clean-up a closing socket does.
    let crashing = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (addr, token) = crashing
        .spawn({
            let ctx = ctx.clone();
            async move {
                let api = Api::new(&ctx, config).await.unwrap();
                (serve(&api).await, api.login("dave").await)
            }
        })
        .await?;
    let mut dave = connect(addr, &token).await;
    send(
        &mut dave,
        json!({ "type": "move", "zone": "keep", "x": 1, "y": 1 }),
    )
    .await;
    assert_eq!(next_of(&mut dave, &["ack"]).await["type"], "ack");
    assert_eq!(online(&watcher).await, 1, "dave is online");

    crashing.shutdown_background();
    assert_eq!(
        online(&watcher).await,
        1,
        "a crash leaves the presence behind (no clean-up ran)"
    );
    // gone within the TTL (plus room for a probe on a stalled CI host)
    eventually(
        "dave drops out of presence",
        ttl + Duration::from_secs(2),
        || {
            let watcher = &watcher;
            async move {
                match online(watcher).await {
                    0 => Ok(()),
                    n => Err(format!("{n} online")),
                }
            }
        },
    )
    .await?;
    drop(dave);
    Ok(())
}
