//! N independent masters, for Redlock.

use crate::server::RedisServer;

/// N independent standalone masters (no replication between them), for Redlock.
#[derive(Debug)]
#[non_exhaustive]
pub struct Masters {
    /// The servers, in start order.
    pub servers: Vec<RedisServer>,
}

impl Masters {
    /// Starts `n` standalone servers on distinct free ports.
    ///
    /// # Errors
    /// Fails when any server does not come up.
    pub fn start(n: usize) -> anyhow::Result<Masters> {
        let servers = (0..n)
            .map(|_| RedisServer::start_standalone())
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Masters { servers })
    }

    /// `redis://127.0.0.1:port` of every master, in start order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::url).collect()
    }
}
