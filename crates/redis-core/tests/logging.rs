//! Secrets never reach logs or `Debug` output: every log line at TRACE
//! level (ours through `tracing`, fred's own through the `log` bridge) is
//! captured while a client authenticates (default user, ACL user), runs
//! commands and a script, fails to authenticate and reconnects, and the
//! password is searched for. With the `tls` feature, the same across a
//! mutual-TLS connect and reconnect, for the password and the client key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Classify, ErrorClass, LuaScript, Redis, RedisConfig, RedisKey};
use aeturnis_testkit::{eventually, RedisServer};

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
    /// The one capture of this test binary: a TRACE subscriber writing every
    /// event to a buffer, installed once, with `log` records (fred's own
    /// logging) bridged into it. Each test searches it for its own secret.
    fn global() -> Capture {
        static CAPTURE: OnceLock<Capture> = OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let capture = Capture::default();
                let writer = capture.clone();
                // `init` also installs the `log` -> tracing bridge (the
                // `tracing-log` feature), at TRACE
                tracing_subscriber::fmt()
                    .with_env_filter("trace")
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .init();
                capture
            })
            .clone()
    }

    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

/// Waits until `count` finds more reconnect lines in the capture than
/// `before` and the client answers `PING` again.
/// A `SET`, a `GET` and a script call through `redis`, each checked: the
/// traffic whose TRACE lines the tests scan. Returns the key it set to `v`.
async fn commands_and_a_script(redis: &Redis) -> anyhow::Result<RedisKey> {
    let client = redis.client();
    let key = redis.keys().key("k").build()?;
    client.set::<(), _, _>(&key, "v", None, None, false).await?;
    assert_eq!(client.get::<String, _>(&key).await?, "v");
    let script = LuaScript::new("logs_len", "return string.len(ARGV[1])");
    let n: i64 = redis
        .script(&script, vec![key.clone()], vec!["abc"])
        .await?;
    assert_eq!(n, 3);
    Ok(key)
}

async fn reconnect_logged(
    capture: &Capture,
    client: &Client,
    before: usize,
    count: impl Fn(&str) -> usize,
) -> anyhow::Result<()> {
    eventually("the client reconnects", Duration::from_secs(20), || {
        let reconnected = count(&capture.text()) > before;
        let client = client.clone();
        async move {
            let pong: String = client.ping(None).await.map_err(|e| e.to_string())?;
            if reconnected && pong == "PONG" {
                Ok(())
            } else {
                Err("no reconnect logged yet".to_owned())
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_log_or_debug_print_the_password() -> anyhow::Result<()> {
    let capture = Capture::global();

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_log_an_acl_users_password_at_trace_level() -> anyhow::Result<()> {
    let capture = Capture::global();
    const USER: &str = "props-game";
    const PASSWORD: &str = "Walrus-Nebula-5127";
    let mut server = RedisServer::start_standalone()?;
    server.cli(&[
        "ACL",
        "SETUSER",
        USER,
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "&*",
        "+@all",
    ])?;
    let port = server.port();
    let url = format!("redis://{USER}:{PASSWORD}@127.0.0.1:{port}");
    let config = RedisConfig::from_url(&url)?
        .with_key_prefix("logs:")
        .with_command_timeout(Duration::from_millis(500));
    assert!(!format!("{config:?}").contains(PASSWORD));
    let redis = Redis::connect(config).await?;
    assert!(!format!("{redis:?}").contains(PASSWORD));

    // commands, including ones carrying the password as a value and a script
    let client = redis.client();
    let key = commands_and_a_script(&redis).await?;
    let me: String = client
        .custom(
            aeturnis_redis_core::fred::types::CustomCommand::new_static(
                "ACL",
                aeturnis_redis_core::fred::types::ClusterHash::Random,
                false,
            ),
            vec!["WHOAMI"],
        )
        .await?;
    assert_eq!(me, USER);

    // the server drops the connection: fred reconnects and authenticates again
    let before = capture.text().matches("(re)established").count();
    server.cli(&[
        "--user",
        USER,
        "--pass",
        PASSWORD,
        "--no-auth-warning",
        "CLIENT",
        "KILL",
        "USER",
        USER,
    ])?;
    reconnect_logged(&capture, client, before, |text| {
        text.matches("(re)established").count()
    })
    .await?;
    assert_eq!(client.get::<String, _>(&key).await?, "v");
    redis.shutdown().await?;
    server.kill()?;

    let logs = capture.text();
    // the capture holds fred's own TRACE/DEBUG lines, not only ours
    assert!(
        logs.contains("fred::"),
        "no fred log line captured:\n{logs}"
    );
    assert!(logs.contains(" TRACE "), "no TRACE line captured:\n{logs}");
    assert!(
        !logs.contains(PASSWORD),
        "password leaked into logs:\n{logs}"
    );
    Ok(())
}

/// Mutual TLS with a password: a connect showing a client certificate,
/// commands and a script, a dropped connection and its reconnection (a new
/// handshake, the key used again), all at TRACE (ours, fred's and rustls's
/// `log` records). Neither the password nor any line of the private key's
/// PEM body, its whole base64, or its DER bytes (hex, or as a byte list) in
/// any line.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_log_the_tls_key_or_password_across_a_mutual_tls_reconnect(
) -> anyhow::Result<()> {
    use aeturnis_redis_core::fred::rustls::pki_types::pem::PemObject;
    use aeturnis_redis_core::fred::rustls::pki_types::PrivateKeyDer;

    let capture = Capture::global();
    const PASSWORD: &str = "Osprey-Tundra-3391";
    let tls = tokio::task::spawn_blocking(aeturnis_testkit::TlsRedis::start_mutual).await??;
    tls.server()
        .cli(&["CONFIG", "SET", "requirepass", PASSWORD])?;
    let key_pem = std::fs::read_to_string(tls.client_key_file())?;
    let body: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .collect();
    assert!(!body.is_empty(), "{key_pem}");
    let der = PrivateKeyDer::from_pem_file(tls.client_key_file())?;
    let secret_bytes = &der.secret_der()[der.secret_der().len() - 32..];
    let hex: String = secret_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let list = format!("{:?}", &secret_bytes[..12]);
    let list = list.trim_start_matches('[').trim_end_matches(']');
    let mut forbidden = vec![PASSWORD.to_owned(), body.concat(), hex, list.to_owned()];
    forbidden.extend(body.iter().map(|l| (*l).to_owned()));

    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}", tls.tls_port());
    let config = RedisConfig::from_url(&url)?
        .with_tls_ca_file(tls.ca_file())
        .with_tls_client_cert(tls.client_cert_file(), tls.client_key_file())
        .with_key_prefix("mtls-logs:")
        .with_command_timeout(Duration::from_secs(2));
    let redis = Redis::connect(config.clone()).await?;
    let client = redis.client();
    let key = commands_and_a_script(&redis).await?;

    // the server drops every client connection: fred reconnects over TLS,
    // shows the certificate again and authenticates again
    let reconnected = format!("127.0.0.1:{}", tls.tls_port());
    let count = |text: &str| {
        text.lines()
            .filter(|l| l.contains("(re)established") && l.contains(&reconnected))
            .count()
    };
    let before = count(&capture.text());
    tls.server().cli(&[
        "-a",
        PASSWORD,
        "--no-auth-warning",
        "CLIENT",
        "KILL",
        "TYPE",
        "normal",
    ])?;
    reconnect_logged(&capture, client, before, count).await?;
    assert_eq!(client.get::<String, _>(&key).await?, "v");
    let debug = format!("{config:?} {redis:?}");
    redis.shutdown().await?;

    let logs = capture.text();
    assert!(logs.contains(" TRACE "), "no TRACE line captured:\n{logs}");
    assert!(logs.contains("fred::"), "no fred line captured:\n{logs}");
    assert!(
        logs.contains("rustls::"),
        "no rustls line captured:\n{logs}"
    );
    for text in &forbidden {
        for line in logs.lines() {
            assert!(
                !line.contains(text.as_str()),
                "secret text {text:?} in a log line: {line}"
            );
        }
        assert!(
            !debug.contains(text.as_str()),
            "secret text {text:?} in Debug: {debug}"
        );
    }
    Ok(())
}
