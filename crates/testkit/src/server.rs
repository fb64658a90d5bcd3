//! One `redis-server` process with fault helpers.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use anyhow::{bail, Context};

use crate::lifetime::ServerRecord;
use crate::process::{self, Launch, Running, Spec};

/// One `redis-server` process on a free loopback port, in its own temp dir.
///
/// Dropping it SIGKILLs the process and removes the directory.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// let mut server = aeturnis_testkit::RedisServer::start_standalone()?;
/// assert_eq!(server.cli(&["PING"])?.trim(), "PONG");
/// server.kill()?;     // connections are refused now
/// server.restart()?;  // same port, same dir, answers again
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    launch: Launch,
    running: Option<Running>,
    pid: u32,
    detached: bool,
}

impl RedisServer {
    /// Starts a standalone server from `deploy/redis/standalone.conf` and waits until it
    /// answers PING.
    ///
    /// # Errors
    /// Fails when `redis-server` cannot be spawned or does not come up (the error holds
    /// the server log).
    pub fn start_standalone() -> anyhow::Result<RedisServer> {
        RedisServer::start(&Spec::standalone())
    }

    pub(crate) fn start(spec: &Spec) -> anyhow::Result<RedisServer> {
        let (launch, running) = process::start(spec)?;
        Ok(RedisServer {
            pid: running.child.id(),
            launch,
            running: Some(running),
            detached: false,
        })
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.launch.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The process id of the current (or last) `redis-server` process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process is running (it may be paused).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// SIGKILLs the server and waits for it to exit. Idempotent.
    ///
    /// # Errors
    /// Never fails today; the `Result` leaves room for platforms where killing can fail.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut running) = self.running.take() {
            running.stop();
        }
        Ok(())
    }

    /// Starts the server again on the same port, in the same dir, with the same
    /// arguments (a cluster node keeps its `nodes.conf` and so its identity), and waits
    /// until it answers PING. A running server is killed first.
    ///
    /// # Errors
    /// Fails when the server does not come up, for instance because another process
    /// took its port meanwhile; the error holds the server log.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let mut running = self.launch.spawn()?;
        if let Err(failed) = self.launch.wait_ready(&mut running) {
            running.stop();
            return Err(failed.error.context(format!("restarting {}", self.url())));
        }
        self.pid = running.child.id();
        self.running = Some(running);
        Ok(())
    }

    /// Freezes the process with SIGSTOP: connections stay open but nothing answers.
    ///
    /// # Errors
    /// Fails when the server is not running or `kill -STOP` fails.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Thaws a [`pause`](RedisServer::pause)d process with SIGCONT.
    ///
    /// # Errors
    /// Fails when the server is not running or `kill -CONT` fails.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        if self.running.is_none() {
            bail!("redis-server on port {} is not running", self.port());
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {} failed: {status}", self.pid);
        }
        Ok(())
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        process::read_log(&self.launch.log)
    }

    /// Runs `redis-cli -e -p PORT args...` and returns its stdout.
    ///
    /// # Errors
    /// Fails with redis-cli's stderr when it exits unsuccessfully, and with the reply
    /// when Redis answered with an error.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        // `-e`: exit non-zero (and print to stderr) when Redis replies with an error.
        let output = Command::new("redis-cli")
            .arg("-e")
            .arg("-p")
            .arg(self.port().to_string())
            .args(args)
            .output()
            .context("running redis-cli")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "redis-cli -p {} {} failed ({}): {}{}",
                self.port(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr),
                stdout
            );
        }
        Ok(stdout)
    }

    /// Runs [`cli`](RedisServer::cli) every [`POLL_EVERY`](crate::POLL_EVERY)
    /// until `accept` takes its output, and returns that output; fails
    /// naming `what` and the last output once `within` has passed (a
    /// replica's link, a key reaching a replica, a command held on the
    /// server).
    ///
    /// # Errors
    /// The last output or redis-cli error, once `within` has passed.
    pub async fn cli_until(
        &self,
        what: &str,
        within: std::time::Duration,
        args: &[&str],
        accept: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        crate::poll::eventually(what, within, || {
            let out = self.cli(args).map_err(|e| e.to_string());
            let out = match out {
                Ok(text) if accept(&text) => Ok(text),
                Ok(text) => Err(text),
                Err(e) => Err(e),
            };
            async move { out }
        })
        .await
    }

    /// Creates (or replaces) the ACL user `user` with password `password`
    /// and `rules`, one rule an item (such as the core's
    /// `aeturnis_redis_core::acl::acl_rules(prefix)`): `ACL SETUSER user
    /// reset on >password rules...`.
    ///
    /// # Errors
    /// As [`cli`](RedisServer::cli): Redis refused a rule.
    pub fn acl_setuser(&self, user: &str, password: &str, rules: &[String]) -> anyhow::Result<()> {
        let password = format!(">{password}");
        let mut args = vec!["ACL", "SETUSER", user, "reset", "on", password.as_str()];
        args.extend(rules.iter().map(String::as_str));
        self.cli(&args).map(drop)
    }

    /// The working directory (config copy, log, `nodes.conf`).
    pub fn dir(&self) -> &std::path::Path {
        &self.launch.dir
    }

    /// Leaves the process running and its directory in place, and returns what is
    /// needed to stop it later. Used by the `aeturnis-redis` helper that
    /// `cargo xtask redis up` runs.
    pub fn detach(mut self) -> ServerRecord {
        self.detached = true;
        if let Some(running) = self.running.take() {
            self.pid = running.detach();
        }
        ServerRecord {
            pid: self.pid,
            port: self.port(),
            dir: self.launch.dir.clone(),
            role: self.launch.role.to_owned(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.launch.dir);
    }
}
