//! Holding a command in flight: `CLIENT PAUSE .. WRITE` keeps every write
//! (a script, `SET`, `XADD`...) unexecuted on the server with its connection
//! open, so a test can drop that connection while the command is on the wire
//! and check what the client does (replay, typed error) — the replay-safety
//! tests of every layer.
//!
//! ```no_run
//! # async fn demo(server: &aeturnis_testkit::RedisServer) -> anyhow::Result<()> {
//! server.pause_writes()?;
//! // ... start the call under test on a task ...
//! let held = server.kill_held(|c| c.cmd == "evalsha").await?;
//! assert_eq!(held.cmd, "evalsha");
//! # Ok(()) }
//! ```

use std::time::Duration;

use anyhow::ensure;

use crate::poll::eventually;
use crate::server::RedisServer;

/// How long [`RedisServer::held_client`] waits for the call to reach Redis.
const HELD_WITHIN: Duration = Duration::from_secs(10);

/// A client connection held by `CLIENT PAUSE .. WRITE` (`CLIENT LIST`: flag
/// `b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldClient {
    /// Its `CLIENT LIST` id.
    pub id: String,
    /// The held command, lower case (`evalsha`, `set`...).
    pub cmd: String,
    /// Bytes it sent after the held command (`qbuf`): commands queued behind
    /// it on the same connection (a pipeline).
    pub queued: u64,
}

impl RedisServer {
    /// Holds every write on this server (`CLIENT PAUSE 10000 WRITE`: the
    /// commands wait unexecuted, their connections open) until
    /// [`unpause`](RedisServer::unpause) or [`kill_held`](RedisServer::kill_held).
    ///
    /// # Errors
    /// Fails when Redis does not answer `OK`.
    pub fn pause_writes(&self) -> anyhow::Result<()> {
        let out = self.cli(&["CLIENT", "PAUSE", "10000", "WRITE"])?;
        ensure!(out.trim() == "OK", "CLIENT PAUSE answered {out:?}");
        Ok(())
    }

    /// Lifts [`pause_writes`](RedisServer::pause_writes).
    ///
    /// # Errors
    /// Fails when Redis does not answer `OK`.
    pub fn unpause(&self) -> anyhow::Result<()> {
        let out = self.cli(&["CLIENT", "UNPAUSE"])?;
        ensure!(out.trim() == "OK", "CLIENT UNPAUSE answered {out:?}");
        Ok(())
    }

    /// Waits (10 s at most) until a client is held by the pause and `accept`
    /// takes it, and returns it. The pause stays on.
    ///
    /// # Errors
    /// Fails naming the last `CLIENT LIST` when no held client was accepted
    /// in time.
    pub async fn held_client(
        &self,
        accept: impl Fn(&HeldClient) -> bool,
    ) -> anyhow::Result<HeldClient> {
        eventually("a command held by the pause", HELD_WITHIN, || async {
            let list = self.cli(&["CLIENT", "LIST"]).map_err(|e| e.to_string())?;
            list.lines()
                .filter_map(parse_held)
                .find(|held| accept(held))
                .ok_or_else(|| format!("no held client accepted: {list}"))
        })
        .await
    }

    /// Waits for a held client `accept` takes (as
    /// [`held_client`](RedisServer::held_client)), closes exactly that
    /// connection (`CLIENT KILL ID`) while its command is in flight, and lifts
    /// the pause — also when no client was found, so a failing test does not
    /// leave the server paused. Returns the client it closed.
    ///
    /// # Errors
    /// Fails when no held client was accepted in time, when `CLIENT KILL ID`
    /// did not close exactly one connection, or when the pause could not be
    /// lifted.
    pub async fn kill_held(
        &self,
        accept: impl Fn(&HeldClient) -> bool,
    ) -> anyhow::Result<HeldClient> {
        let found = self.held_client(accept).await;
        let killed = match &found {
            Ok(held) => self.cli(&["CLIENT", "KILL", "ID", &held.id]),
            Err(_) => Ok(String::new()),
        };
        let resumed = self.unpause();
        let held = found?;
        let killed = killed?;
        ensure!(killed.trim() == "1", "CLIENT KILL ID closed {killed:?}");
        resumed?;
        Ok(held)
    }

    /// Closes every normal client connection (the test's clients;
    /// `redis-cli`'s own is skipped) and returns how many it closed.
    ///
    /// # Errors
    /// Fails when redis-cli fails or answers something other than a count.
    pub fn kill_normal_clients(&self) -> anyhow::Result<u32> {
        let out = self.cli(&["CLIENT", "KILL", "TYPE", "normal"])?;
        Ok(out.trim().parse()?)
    }
}

/// One `CLIENT LIST` line, when that client is held by a pause (flag `b`).
fn parse_held(line: &str) -> Option<HeldClient> {
    let field = |name: &str| {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    if !field("flags")?.contains('b') {
        return None;
    }
    Some(HeldClient {
        id: field("id")?.to_owned(),
        cmd: field("cmd")?.to_owned(),
        queued: field("qbuf")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_only_clients_held_by_the_pause() {
        let held = "id=7 addr=127.0.0.1:5 laddr=x fd=9 name= age=0 idle=0 flags=b db=0 \
                    sub=0 psub=0 ssub=0 multi=-1 qbuf=42 qbuf-free=0 cmd=evalsha user=default";
        let idle = held.replace("flags=b", "flags=N");
        assert_eq!(
            parse_held(held),
            Some(HeldClient {
                id: "7".into(),
                cmd: "evalsha".into(),
                queued: 42
            })
        );
        assert_eq!(parse_held(&idle), None);
    }
}
