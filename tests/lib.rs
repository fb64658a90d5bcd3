//! Workspace-level integration, fault and load tests for Aeturnis.
//!
//! The test targets (`[[test]]` in this package's `Cargo.toml`) exercise several crates
//! together against real Redis topologies from `aeturnis-testkit`; the bench targets in
//! `benches/` are run by `cargo xtask bench`, which starts a fresh Redis and passes its
//! address in the environment:
//!
//! | Variable | Meaning |
//! |----------|---------|
//! | `AETURNIS_BENCH_REDIS_URL` | `redis://127.0.0.1:PORT` of the bench's standalone server |
//! | `AETURNIS_BENCH_REDIS_PORT` | its port, for `redis-benchmark -p` |
//! | `AETURNIS_BENCH_REDLOCK_URLS` | comma-separated URLs of 3 independent masters |
//! | `AETURNIS_BENCH_OUT` | where bench records are appended (JSON lines) |
//!
//! The `chaos` binary (`chaos/`, issue 17) is run by `cargo xtask chaos`: every layer
//! under injected faults, each layer's invariant checked, `docs/reliability.md` written.
//!
//! This library holds the small helpers bench and test targets share.

use anyhow::Context;

/// The bench server's URL from `AETURNIS_BENCH_REDIS_URL`.
///
/// # Errors
/// Fails with a hint to use `cargo xtask bench` when the variable is not set.
pub fn bench_redis_url() -> anyhow::Result<String> {
    std::env::var("AETURNIS_BENCH_REDIS_URL")
        .context("AETURNIS_BENCH_REDIS_URL is not set; run the benches with `cargo xtask bench`")
}

/// The bench server's port from `AETURNIS_BENCH_REDIS_PORT`.
///
/// # Errors
/// Fails when the variable is not set or not a port number.
pub fn bench_redis_port() -> anyhow::Result<u16> {
    std::env::var("AETURNIS_BENCH_REDIS_PORT")
        .context("AETURNIS_BENCH_REDIS_PORT is not set; run the benches with `cargo xtask bench`")?
        .parse()
        .context("AETURNIS_BENCH_REDIS_PORT is not a port number")
}

/// The Redlock masters' URLs from `AETURNIS_BENCH_REDLOCK_URLS`.
///
/// # Errors
/// Fails when the variable is not set.
pub fn bench_redlock_urls() -> anyhow::Result<Vec<String>> {
    let urls = std::env::var("AETURNIS_BENCH_REDLOCK_URLS").context(
        "AETURNIS_BENCH_REDLOCK_URLS is not set; run the benches with `cargo xtask bench`",
    )?;
    Ok(urls.split(',').map(str::to_owned).collect())
}

/// A multi-thread runtime with 2 workers (the bench machine has 2 cores).
///
/// # Errors
/// Fails when the runtime cannot be built.
pub fn multi_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A current-thread runtime.
///
/// # Errors
/// Fails when the runtime cannot be built.
pub fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
