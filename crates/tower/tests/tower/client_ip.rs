//! `ClientIp`: spoofed forwarding headers from an untrusted peer change
//! nothing, a trusted chain yields the client, malformed values are
//! ignored and never a 500.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use aeturnis_testkit::TestCtx;
use aeturnis_tower::ratelimit::{ClientIp, ForwardedHeader, RateLimitLayer};
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use rand::Rng;

use crate::support::{get_from, limiter, redis, send, sf_param};

const TRUSTED: [&str; 2] = ["10.0.0.0/8", "2001:db8:ffff::/48"];

fn request(peer: &str, header: &'static str, value: &str) -> Request<()> {
    let mut r = Request::new(());
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    r.headers_mut()
        .append(header, HeaderValue::from_str(value).unwrap());
    r
}

fn random_ip(rng: &mut impl Rng) -> String {
    if rng.gen_bool(0.5) {
        IpAddr::from(rng.gen::<[u8; 4]>()).to_string()
    } else {
        IpAddr::from(rng.gen::<[u8; 16]>()).to_string()
    }
}

/// A random forwarding header: a list of addresses, ports, obfuscated
/// names and junk, in either syntax.
fn spoof(rng: &mut impl Rng) -> (&'static str, String) {
    let hops: Vec<String> = (0..rng.gen_range(1..6))
        .map(|_| match rng.gen_range(0..5) {
            0 => random_ip(rng),
            1 => format!(
                "{}:{}",
                IpAddr::from(rng.gen::<[u8; 4]>()),
                rng.gen::<u16>()
            ),
            2 => format!("\"[{}]:443\"", IpAddr::from(rng.gen::<[u8; 16]>())),
            3 => "10.0.0.9".to_owned(), // names a trusted proxy
            _ => "unknown".to_owned(),
        })
        .collect();
    if rng.gen_bool(0.5) {
        ("x-forwarded-for", hops.join(", "))
    } else {
        let elements: Vec<String> = hops
            .iter()
            .map(|h| format!("for={h};proto=https"))
            .collect();
        ("forwarded", elements.join(", "))
    }
}

async fn should_keep_spoofed_requests_of_an_untrusted_peer_on_its_own_key(ctx: TestCtx) {
    const N: u32 = 10_000;
    let redis = redis(&ctx).await;
    let limit = limiter(&redis, "spoof", N + 5, Duration::from_secs(3600));
    let key = ClientIp::new(TRUSTED).unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(limit, key.clone()));
    let probe = app.clone();
    let peer = "198.51.100.77:5000";
    let mut rng = rand::thread_rng();
    let requests: Vec<Request<Body>> = (0..N)
        .map(|_| {
            let (name, value) = spoof(&mut rng);
            let mut r = get_from(peer, "/");
            r.headers_mut()
                .insert(name, HeaderValue::from_str(&value).unwrap());
            // the pure walk agrees: the untrusted peer is the client
            assert_eq!(
                key.client_ip(&r),
                Some("198.51.100.77".parse().unwrap()),
                "{name}: {value}"
            );
            r
        })
        .collect();
    let mut last = None;
    let mut pending = futures_unordered(requests.into_iter().map(move |r| {
        let app = app.clone();
        async move { send(&app, r).await }
    }));
    while let Some(reply) = pending.recv().await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        last = Some(reply);
    }
    drop(last);
    // every request counted against the one key: exactly 5 units are left
    let reply = send(&probe, get_from(peer, "/")).await;
    assert_eq!(sf_param(&reply, "ratelimit", "spoof", "r"), 4);
}

/// Runs the futures 50 at a time; their outputs arrive on the channel.
fn futures_unordered<F>(
    futures: impl Iterator<Item = F> + Send + 'static,
) -> tokio::sync::mpsc::Receiver<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let queue = std::sync::Arc::new(std::sync::Mutex::new(futures));
    for _ in 0..50 {
        let (tx, queue) = (tx.clone(), std::sync::Arc::clone(&queue));
        tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().next();
                let Some(f) = next else { break };
                if tx.send(f.await).await.is_err() {
                    break;
                }
            }
        });
    }
    rx
}

#[test]
fn should_walk_a_trusted_chain_from_the_right() {
    let xff = ClientIp::new(TRUSTED).unwrap();
    let fwd = ClientIp::new(TRUSTED)
        .unwrap()
        .with_header(ForwardedHeader::Forwarded);
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    // the first untrusted hop from the right, never the leftmost
    let r = request(
        "10.0.0.1:443",
        "x-forwarded-for",
        "6.6.6.6, 198.51.100.9, 10.0.0.2",
    );
    assert_eq!(xff.client_ip(&r), ip("198.51.100.9"));
    let r = request(
        "10.0.0.1:443",
        "forwarded",
        "for=6.6.6.6, for=\"198.51.100.9:1234\";proto=https, for=10.0.0.2",
    );
    assert_eq!(fwd.client_ip(&r), ip("198.51.100.9"));
    // IPv6 through an IPv6 proxy range
    let r = request(
        "[2001:db8:ffff::1]:443",
        "forwarded",
        "for=\"[2001:db8:1:2::7]:9\"",
    );
    assert_eq!(fwd.client_ip(&r), ip("2001:db8:1:2::7"));
    // every hop trusted: the leftmost is all there is
    let r = request("10.0.0.1:443", "x-forwarded-for", "10.1.1.1, 10.0.0.2");
    assert_eq!(xff.client_ip(&r), ip("10.1.1.1"));
    // two header lines are one list
    let mut r = request("10.0.0.1:443", "x-forwarded-for", "6.6.6.6");
    r.headers_mut()
        .append("x-forwarded-for", HeaderValue::from_static("203.0.113.5"));
    assert_eq!(xff.client_ip(&r), ip("203.0.113.5"));
    // the header the proxy does not write is not read
    let r = request("10.0.0.1:443", "forwarded", "for=6.6.6.6");
    assert_eq!(xff.client_ip(&r), ip("10.0.0.1"));
}

#[test]
fn should_stop_at_a_malformed_hop() {
    let xff = ClientIp::new(TRUSTED).unwrap();
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    for junk in ["garbage", "unknown", "_hidden", "[::1", "", "1.2.3.4.5"] {
        let value = format!("6.6.6.6, {junk}, 10.0.0.2");
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        let mut r = request("10.0.0.1:443", "x-forwarded-for", "");
        r.headers_mut().insert("x-forwarded-for", value);
        // the last address known good: the proxy that forwarded the junk
        assert_eq!(xff.client_ip(&r), ip("10.0.0.2"), "{junk:?}");
    }
    // a non-ASCII header line is unusable: the peer it is
    let mut r = request("10.0.0.1:443", "x-forwarded-for", "");
    r.headers_mut().insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"6.6.6.6, \xff").unwrap(),
    );
    assert_eq!(xff.client_ip(&r), ip("10.0.0.1"));
    // group IPv6 clients by /64
    let r = request("10.0.0.1:443", "x-forwarded-for", "2001:db8:5:6:7:8:9:a");
    assert_eq!(xff.client_ip(&r), ip("2001:db8:5:6:7:8:9:a"));
    assert!(ClientIp::new(["not-a-range"]).is_err());
    assert!(matches!(
        ClientIp::new(TRUSTED).unwrap().with_v6_prefix(129),
        Err(aeturnis_tower::Error::InvalidPrefix(129))
    ));
}

async fn should_answer_malformed_headers_without_a_500(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(
            limiter(&redis, "junk", 1000, Duration::from_secs(60)),
            ClientIp::new(TRUSTED).unwrap(),
        ));
    let mut rng = rand::thread_rng();
    for i in 0..200 {
        let bytes: Vec<u8> = (0..rng.gen_range(0..40))
            .map(|_| rng.gen_range(0x20..=0xff))
            .filter(|b| *b != 0x7f)
            .collect();
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            continue;
        };
        let name = if i % 2 == 0 {
            "x-forwarded-for"
        } else {
            "forwarded"
        };
        let mut r = get_from("10.0.0.1:443", "/");
        r.headers_mut().insert(name, value);
        let reply = send(&app, r).await;
        assert_eq!(reply.status, StatusCode::OK, "{bytes:?}: {}", reply.text);
    }
}

aeturnis_testkit::topology_tests!(
    should_keep_spoofed_requests_of_an_untrusted_peer_on_its_own_key,
    should_answer_malformed_headers_without_a_500,
);
