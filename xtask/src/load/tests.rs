//! Tests of the load generator: options, quantiles, loopback addresses, and
//! a run against a stand-in demo (HTTP and `/ws`).

use super::*;

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn should_parse_options_with_defaults() {
    let o = Options::parse(&[], "http://127.0.0.1:8080/").unwrap();
    assert_eq!(
        (o.players, o.seconds, o.url.as_str()),
        (20, 10, "http://127.0.0.1:8080")
    );
    let o = Options::parse(
        &args(&[
            "--players",
            "5",
            "--seconds=3",
            "--url",
            "http://localhost:9000",
        ]),
        "http://x",
    )
    .unwrap();
    assert_eq!(
        (o.players, o.seconds, o.url.as_str()),
        (5, 3, "http://localhost:9000")
    );
}

#[test]
fn should_refuse_bad_options() {
    for bad in [
        &["--players", "0"][..],
        &["--players", "ten"],
        &["--seconds"],
        &["--url", "https://x"],
        &["--turbo"],
        &["--players", "10001"],
    ] {
        assert!(Options::parse(&args(bad), "http://x").is_err(), "{bad:?}");
    }
}

#[test]
fn should_take_nearest_rank_quantiles() {
    let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert!((quantile_ms(&ms, 0.5) - 50.0).abs() < 1e-9);
    assert!((quantile_ms(&ms, 0.99) - 99.0).abs() < 1e-9);
    assert!((quantile_ms(&ms[..1], 0.99) - 1.0).abs() < 1e-9);
    assert!(quantile_ms(&[], 0.5).abs() < 1e-9);
}

/// What the stand-in demo saw on its WebSockets.
#[derive(Debug, Default)]
struct StubSockets {
    opened: std::sync::atomic::AtomicU64,
    frames: std::sync::atomic::AtomicU64,
}

/// The stand-in's `/ws`: answers every text frame, every fourth with an
/// over-limit error frame, until the client closes.
async fn stub_socket(socket: tokio::net::TcpStream, seen: Arc<StubSockets>) {
    use futures::{SinkExt, StreamExt};
    use std::sync::atomic::Ordering::Relaxed;
    use tokio_tungstenite::tungstenite::Message;
    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    seen.opened.fetch_add(1, Relaxed);
    while let Some(Ok(Message::Text(_))) = ws.next().await {
        let n = seen.frames.fetch_add(1, Relaxed) + 1;
        let reply = if n % 4 == 0 {
            r#"{"type":"error","error":"rate_limited","retry_after_ms":50}"#
        } else {
            r#"{"type":"ack"}"#
        };
        if ws.send(Message::Text(reply.into())).await.is_err() {
            return;
        }
    }
}

/// A stand-in for the demo: answers every HTTP request `200 {"token":"t"}`
/// and closes the connection; counts the requests. `GET /ws` is a
/// WebSocket ([`stub_socket`]).
async fn stub_demo() -> (String, Arc<std::sync::atomic::AtomicU64>, Arc<StubSockets>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sockets = Arc::new(StubSockets::default());
    let count = served.clone();
    let seen = sockets.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                // the request line decides: a WebSocket or a plain request
                let mut head = [0u8; 8];
                let mut peeked = 0;
                while peeked < head.len() {
                    match socket.peek(&mut head).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => peeked = n,
                    }
                }
                if &head == b"GET /ws " {
                    return stub_socket(socket, seen).await;
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // the head, then as many body bytes as content-length says
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = r#"{"token":"t"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, served, sockets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_drive_every_player_for_the_given_time() {
    let (url, served, sockets) = stub_demo().await;
    let options = Options::parse(&args(&["--players", "4", "--seconds", "2"]), &url).unwrap();
    let started = Instant::now();
    let summary = drive(&options).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let routes = &summary.routes;
    assert_eq!(routes["POST /auth/login"].ok, 4, "one login per player");
    assert_eq!(routes["POST /auth/logout"].ok, 4, "one logout per player");
    let total: u64 = routes.values().map(|r| r.ok).sum();
    // the probe, then at least one action per player beyond login and logout
    assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), total + 1);
    assert!(total >= 4 * 3, "{total} requests");
    assert!(routes.values().all(|r| r.limited == 0 && r.failed == 0));
    // every player kept a socket open and sent moves (10 a second) and chat
    let ws = summary.ws;
    assert_eq!(sockets.opened.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert!(ws.sent >= 4 * 10, "{ws:?}");
    // the client closes after its last frame: the stand-in read them all
    aeturnis_testkit::eventually(
        "the stand-in reads every frame",
        Duration::from_secs(5),
        || {
            let frames = sockets.frames.load(std::sync::atomic::Ordering::Relaxed);
            async move {
                if frames == ws.sent {
                    Ok(())
                } else {
                    Err(format!("{frames} of {} frames", ws.sent))
                }
            }
        },
    )
    .await
    .unwrap();
    // an answer per frame, but those in flight at the end are not read
    assert!(ws.received > 0 && ws.received <= ws.sent, "{ws:?}");
    // every fourth answer is an over-limit error frame
    assert!(ws.over_limit > 0 && ws.over_limit <= ws.sent / 4, "{ws:?}");
    assert_eq!(ws.errors, 0, "{ws:?}");
    let text = table(routes, ws, summary.elapsed);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[lines.len() - 3].starts_with("all "), "{text}");
    assert!(
        lines[lines.len() - 2].starts_with("WS /ws messages sent "),
        "{text}"
    );
    assert!(
        lines[lines.len() - 1].starts_with("WS /ws messages received "),
        "{text}"
    );
}

#[tokio::test]
async fn should_refuse_to_run_without_a_demo() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = Options::parse(&[], &format!("http://127.0.0.1:{port}")).unwrap();
    let error = drive(&options).await.err().unwrap();
    assert!(error.to_string().contains("no demo answers"), "{error}");
}

#[test]
fn should_give_each_player_its_own_loopback_address() {
    assert!(is_loopback("http://127.0.0.1:8080"));
    assert!(is_loopback("http://localhost:8080/"));
    assert!(!is_loopback("http://10.0.0.1:8080"));
    assert_ne!(loopback_for(1), loopback_for(2));
    assert_ne!(loopback_for(0), loopback_for(256));
    assert!(matches!(loopback_for(7), IpAddr::V4(ip) if ip.is_loopback()));
}

#[test]
fn should_report_the_write_behind_lag_from_the_dashboard_sample() {
    let health = json!({ "checks": { "cache:stats": [{ "observedValue": { "hit_rate": 0.5 } }] } });
    let sample = json!({ "write_behind": { "lag": 3, "dead_letters": 0 } });
    assert_eq!(
        after_the_run(&health, &sample),
        "cache hit rate: 50.0 %\nwrite-behind at the end: 3 moves not yet in SQLite, 0 dead letters"
    );
    assert!(after_the_run(&health, &Value::Null).ends_with("n/a (the demo did not report it)"));
}
