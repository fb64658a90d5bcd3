//! Secrets never reach logs or `Debug` output: connection events are captured
//! from tracing while a client authenticates, fails to authenticate and
//! reconnects, and the password is searched for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Classify, ErrorClass, Redis, RedisConfig};
use aeturnis_testkit::RedisServer;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_log_or_debug_print_the_password() -> anyhow::Result<()> {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    const PASSWORD: &str = "Zebra-Quasar-8841";
    let mut server = RedisServer::start_standalone()?;
    server.cli(&["CONFIG", "SET", "requirepass", PASSWORD])?;
    let port = server.port();

    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}");
    let config = RedisConfig::from_url(&url)?.with_command_timeout(Duration::from_millis(500));
    assert!(!format!("{config:?}").contains(PASSWORD));
    let redis = Redis::connect(config.clone()).await?;
    assert!(!format!("{redis:?}").contains(PASSWORD));
    assert!(redis.health().await.is_healthy());

    // a wrong password is a typed error that does not echo either password
    let wrong = RedisConfig::from_url(&format!("redis://:Wrong-{PASSWORD}@127.0.0.1:{port}"))?;
    let err = Redis::connect(wrong).await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{err:?}");
    assert!(!err.to_string().contains(PASSWORD) && !format!("{err:?}").contains(PASSWORD));

    // a dropped connection is logged with its reconnection, password-free
    server.cli(&[
        "-a",
        PASSWORD,
        "--no-auth-warning",
        "CLIENT",
        "KILL",
        "TYPE",
        "normal",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !capture.text().contains("(re)established")
        || redis.client().ping::<String>(None).await.is_err()
    {
        assert!(
            Instant::now() < deadline,
            "no reconnect logged:\n{}",
            capture.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.shutdown().await?;
    server.kill()?;

    let logs = capture.text();
    assert!(logs.contains("connected to Redis"), "{logs}");
    assert!(
        !logs.contains(PASSWORD),
        "password leaked into logs:\n{logs}"
    );
    Ok(())
}
