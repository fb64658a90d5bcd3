//! `aeturnis-demo`: the example game API server.
//!
//! `REDIS_URL` (or the other `REDIS_*` variables) names Redis, `DEMO_ADDR`
//! the listen address (default `127.0.0.1:8080`), `DEMO_DATA_DIR` the
//! directory of the SQLite database (default `<temp dir>/aeturnis-demo`), `RUST_LOG` the log filter
//! (default `info`). Stops gracefully on Ctrl-C or SIGTERM, and, with
//! `DEMO_EXIT_ON_STDIN_EOF=1`, when its standard input closes: `cargo xtask
//! demo` holds that pipe, so the server stops with xtask even when only xtask
//! is killed.

use std::net::SocketAddr;

use aeturnis_demo::{app, AppState, DemoConfig};
use aeturnis_redis_core::Env;
use aeturnis_redis_core::{Redis, RedisConfig};
use anyhow::Context;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let addr: SocketAddr = Env::process()
        .parse("DEMO_ADDR")
        .context("DEMO_ADDR must be an address such as 127.0.0.1:8080")?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let mut config = DemoConfig::from_env()?;
    if config.data_dir.is_none() {
        config = config.with_data_dir(Some(std::env::temp_dir().join("aeturnis-demo")));
    }
    let redis = Redis::connect(RedisConfig::from_env()?)
        .await
        .context("connecting to Redis (set REDIS_URL)")?;
    let state = AppState::new(redis, config).context("opening the database")?;
    // the movement workers first drain moves a killed process acknowledged
    state
        .start()
        .await
        .context("starting the movement workers")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        redis = ?state.redis(),
        data_dir = ?state.config().data_dir,
        "aeturnis-demo listening"
    );
    axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving")?;
    tracing::info!("shutting down: writing acknowledged moves to SQLite");
    // bounded: with Redis gone (stopped by someone else; `cargo xtask demo`
    // keeps it until its servers exited) the flush cannot finish; what is
    // left stays in the stream
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.shutdown()).await {
        Ok(Ok(())) => tracing::info!("acknowledged moves written"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "flushing moves (they stay in Redis for the next start)");
        }
        Err(_) => {
            tracing::warn!("flushing moves timed out (they stay in Redis for the next start)")
        }
    }
    // Redis may already be gone (a Redis run outside `cargo xtask demo`).
    if let Err(e) = state.redis().shutdown().await {
        tracing::warn!(error = %e, "closing the Redis connection");
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
        () = stdin_closed() => tracing::info!("standard input closed (the owner exited)"),
    }
}

/// With `DEMO_EXIT_ON_STDIN_EOF=1`: completes when standard input reaches EOF.
/// Otherwise never.
async fn stdin_closed() {
    if std::env::var("DEMO_EXIT_ON_STDIN_EOF").as_deref() != Ok("1") {
        return std::future::pending().await;
    }
    // A plain thread, not `spawn_blocking`: the runtime would wait for the
    // blocked read at shutdown; a detached thread ends with the process.
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = on_close.await;
}
