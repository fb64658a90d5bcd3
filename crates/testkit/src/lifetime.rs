//! How long the servers started by this process live.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Serialize;

/// How long the `redis-server` processes started by this process may live.
///
/// Set it once, before starting any server, with [`set_lifetime`].
/// Default: [`Lifetime::Process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lifetime {
    /// Killed when their owner is dropped, and at the latest when this process exits
    /// (a reaper process watches a pipe that only this process holds open).
    Process,
    /// Kept alive until the process with this pid exits (a reaper polls it every second).
    /// The servers and their reapers run in their own process group, so the terminal's
    /// Ctrl-C reaches only the owner, which decides when to stop them (`cargo xtask demo`
    /// waits for its game servers to flush into Redis first); killed on its own, the owner
    /// still takes them with it. `cargo xtask test` uses this so that its servers die with it.
    Owner(u32),
    /// Never reaped, and in their own process group so that Ctrl-C in the terminal does
    /// not reach them. `cargo xtask redis up` uses this; `redis down` stops them.
    Detached,
}

static LIFETIME: OnceLock<Lifetime> = OnceLock::new();

/// Sets the [`Lifetime`] of every server this process starts from now on.
///
/// # Errors
/// Fails when the lifetime was already set or a server was already started.
pub fn set_lifetime(lifetime: Lifetime) -> anyhow::Result<()> {
    LIFETIME
        .set(lifetime)
        .map_err(|_| anyhow::anyhow!("the server lifetime is already set"))
}

pub(crate) fn lifetime() -> Lifetime {
    *LIFETIME.get_or_init(|| Lifetime::Process)
}

/// A server left running by [`RedisServer::detach`](crate::RedisServer::detach).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ServerRecord {
    /// Process id of the `redis-server` process.
    pub pid: u32,
    /// Loopback port it listens on.
    pub port: u16,
    /// Its working directory (config copy, log, nodes file).
    pub dir: PathBuf,
    /// What it is: `standalone`, `replica`, `cluster-node` or `sentinel`.
    pub role: String,
}
