//! A sentinel set: 1 primary, 1 replica, 3 sentinels.

use std::time::Duration;

use anyhow::{bail, ensure, Context};

use crate::process::{wait_until, Spec};
use crate::resp::{self, info_field};
use crate::server::RedisServer;

/// The service name in `deploy/redis/sentinel.conf`.
const SERVICE: &str = "mymaster";
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One primary, one replica and three sentinels watching them as `mymaster` with
/// quorum 2, from `deploy/redis/sentinel-node.conf` (`min-replicas-to-write 1`,
/// `min-replicas-max-lag 2`: a primary without an in-sync replica refuses writes with
/// `NOREPLICAS`) and `deploy/redis/sentinel.conf` (`down-after-milliseconds` 3000,
/// `failover-timeout` 5000). Dropping it kills every process.
#[derive(Debug)]
pub struct Sentinel {
    primary: RedisServer,
    replica: RedisServer,
    sentinels: Vec<RedisServer>,
}

impl Sentinel {
    /// Starts the primary, the replica and 3 sentinels, and waits until the replica is
    /// in sync (`master_link_status:up`) and every sentinel knows the primary, the
    /// replica and the 2 other sentinels.
    ///
    /// # Errors
    /// Fails when a process does not start or the set does not settle within 30 s.
    pub fn start() -> anyhow::Result<Sentinel> {
        let primary = RedisServer::start(&data_node(Spec::primary()))?;
        let replica = RedisServer::start(&data_node(Spec::replica_of(primary.port())))?;
        let sentinels = (0..3)
            .map(|_| RedisServer::start(&Spec::sentinel(primary.port())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let set = Sentinel {
            primary,
            replica,
            sentinels,
        };
        set.wait_settled(set.primary.port(), set.replica.port(), true)?;
        Ok(set)
    }

    /// fred's sentinel URL naming all 3 sentinels:
    /// `redis-sentinel://127.0.0.1:S1?sentinelServiceName=mymaster&node=127.0.0.1:S2&node=127.0.0.1:S3`.
    pub fn url(&self) -> String {
        let mut url = String::from("redis-sentinel://");
        for (i, sentinel) in self.sentinels.iter().enumerate() {
            match i {
                0 => url.push_str(&format!(
                    "127.0.0.1:{}?sentinelServiceName={SERVICE}",
                    sentinel.port()
                )),
                _ => url.push_str(&format!("&node=127.0.0.1:{}", sentinel.port())),
            }
        }
        url
    }

    /// The service name the sentinels watch: `mymaster`.
    pub fn service_name(&self) -> &str {
        SERVICE
    }

    /// `("127.0.0.1", port)` of every sentinel.
    pub fn sentinel_nodes(&self) -> Vec<(String, u16)> {
        self.sentinels
            .iter()
            .map(|s| ("127.0.0.1".to_owned(), s.port()))
            .collect()
    }

    /// The sentinel processes.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// One sentinel, for fault injection (`kill`, `pause`...).
    ///
    /// # Panics
    /// Panics when `i >= 3`, like slice indexing.
    pub fn sentinel_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.sentinels[i]
    }

    /// The server started as the primary (after a failover it is the replica).
    pub fn primary(&self) -> &RedisServer {
        &self.primary
    }

    /// The server started as the replica (after a failover it is the primary).
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// Primary, replica and sentinels, giving up the set (for [`RedisServer::detach`]).
    pub fn into_servers(self) -> Vec<RedisServer> {
        let mut servers = vec![self.primary, self.replica];
        servers.extend(self.sentinels);
        servers
    }

    /// The port the sentinels currently report for the primary of `mymaster`.
    ///
    /// # Errors
    /// Fails when the first sentinel does not answer.
    pub fn current_primary_port(&self) -> anyhow::Result<u16> {
        let port = self.sentinels.first().context("no sentinels")?.port();
        master_port(port)
    }

    /// Runs `SENTINEL FAILOVER mymaster` and waits until every sentinel reports the
    /// old replica as the primary, it says `role:master`, and the old primary (if
    /// running) has rejoined as its replica with the link up.
    ///
    /// Sentinels reconfigure a demoted primary only at their next 10 s `INFO` round, so
    /// once they agree on the new primary this sends the old one the same
    /// `REPLICAOF` they would.
    ///
    /// # Errors
    /// Fails when the failover cannot start or does not complete within 30 s.
    pub fn failover(&self) -> anyhow::Result<()> {
        self.run_failover(false)
    }

    /// The planned failover that loses no acknowledged write: `CLIENT PAUSE WRITE` on
    /// the primary, wait until the replica has every byte of the replication stream
    /// (`slave_repl_offset` = the primary's `master_repl_offset`), then
    /// [`failover`](Sentinel::failover), sending `CLIENT UNPAUSE` to the old primary
    /// once every sentinel reports the new one. The held writes then meet a primary
    /// without replica and are refused (`NOREPLICAS`), never acknowledged and lost.
    ///
    /// A plain `SENTINEL FAILOVER` can lose the writes the primary acknowledged in the
    /// instant before the replica ran `REPLICAOF NO ONE` (still in flight on the
    /// replication link); the pause closes that window.
    ///
    /// # Errors
    /// As [`failover`](Sentinel::failover), and when the replica does not catch up
    /// within 30 s.
    pub fn failover_paused(&self) -> anyhow::Result<()> {
        self.run_failover(true)
    }

    /// Sends the bare `SENTINEL FAILOVER mymaster` to the first sentinel until
    /// it is accepted (right after a start or a previous failover the
    /// sentinels may not consider the replica promotable yet: `NOGOODSLAVE`,
    /// `INPROG`), and returns: nothing waits for the promotion, and the old
    /// primary is left to the sentinels (they demote it at their next `INFO`
    /// round, about 10 s later), unlike [`failover`](Sentinel::failover).
    ///
    /// # Errors
    /// Fails when no failover is accepted within 30 s.
    pub fn start_failover(&self) -> anyhow::Result<()> {
        let first = self.sentinels.first().context("no sentinels")?.port();
        wait_until("SENTINEL FAILOVER to be accepted", SETTLE_TIMEOUT, || {
            resp::text(first, &["SENTINEL", "FAILOVER", SERVICE])
                .map(drop)
                .context("SENTINEL FAILOVER")
        })
    }

    fn run_failover(&self, pause: bool) -> anyhow::Result<()> {
        let first = self.sentinels.first().context("no sentinels")?.port();
        let old = master_port(first)?;
        let new = if old == self.primary.port() {
            self.replica.port()
        } else {
            self.primary.port()
        };
        if pause {
            // longer than a failover takes; UNPAUSE below ends it early
            resp::text(old, &["CLIENT", "PAUSE", "10000", "WRITE"])?;
            wait_until("the replica to catch up", SETTLE_TIMEOUT, || {
                let info = resp::text(old, &["INFO", "replication"])?;
                let sent = info_field(&info, "master_repl_offset").map(str::to_owned);
                let info = resp::text(new, &["INFO", "replication"])?;
                let got = info_field(&info, "slave_repl_offset");
                ensure!(
                    sent.is_some() && sent.as_deref() == got,
                    "primary offset {sent:?}, replica offset {got:?}"
                );
                Ok(())
            })?;
        }
        self.start_failover()?;
        let sentinels: Vec<u16> = self.sentinels.iter().map(RedisServer::port).collect();
        wait_until(
            &format!("every sentinel to report port {new} as the primary"),
            SETTLE_TIMEOUT,
            || {
                for &sentinel in &sentinels {
                    let reported = master_port(sentinel)?;
                    ensure!(reported == new, "sentinel {sentinel} reports {reported}");
                }
                Ok(())
            },
        )?;
        let old_running = [&self.primary, &self.replica]
            .iter()
            .any(|s| s.port() == old && s.is_running());
        if pause && old_running {
            resp::text(old, &["CLIENT", "UNPAUSE"])?;
        }
        if !old_running {
            return wait_until("the new primary", SETTLE_TIMEOUT, || {
                let info = resp::text(new, &["INFO", "replication"])?;
                ensure!(
                    info_field(&info, "role") == Some("master"),
                    "not a master yet"
                );
                Ok(())
            });
        }
        resp::text(old, &["REPLICAOF", "127.0.0.1", &new.to_string()])?;
        self.wait_settled(new, old, false)
    }

    /// SIGKILLs the current primary and waits until every sentinel reports the other
    /// server as the primary and it says `role:master`. Returns the new primary's port.
    /// The killed server stays down (see [`Sentinel::rejoin`]).
    ///
    /// # Errors
    /// Fails when the sentinels do not promote the replica within 30 s.
    pub fn kill_primary(&mut self) -> anyhow::Result<u16> {
        let first = self.sentinels.first().context("no sentinels")?.port();
        let old = master_port(first)?;
        let (killed, survivor) = if old == self.primary.port() {
            (&mut self.primary, self.replica.port())
        } else {
            (&mut self.replica, self.primary.port())
        };
        killed.kill()?;
        let sentinels: Vec<u16> = self.sentinels.iter().map(RedisServer::port).collect();
        wait_until(
            &format!("every sentinel to promote port {survivor}"),
            SETTLE_TIMEOUT,
            || {
                for &sentinel in &sentinels {
                    let reported = master_port(sentinel)?;
                    ensure!(
                        reported == survivor,
                        "sentinel {sentinel} reports {reported}"
                    );
                }
                let info = resp::text(survivor, &["INFO", "replication"])?;
                ensure!(
                    info_field(&info, "role") == Some("master"),
                    "not a master yet"
                );
                Ok(())
            },
        )
        .with_context(|| self.sentinel_logs())?;
        Ok(survivor)
    }

    /// Restarts a killed server (empty: no persistence) as a replica of the primary the
    /// sentinels report, as the sentinels would on their next `INFO` round, and waits
    /// until the set has settled. With `min-replicas-to-write 1` the new primary
    /// accepts writes again from then on.
    ///
    /// # Errors
    /// Fails when no server is down, it does not restart, or the set does not settle
    /// within 30 s.
    pub fn rejoin(&mut self) -> anyhow::Result<()> {
        let primary = self.current_primary_port()?;
        let down = if self.primary.is_running() {
            &mut self.replica
        } else {
            &mut self.primary
        };
        ensure!(!down.is_running(), "no server of the set is down");
        down.restart()?;
        let port = down.port();
        resp::text(port, &["REPLICAOF", "127.0.0.1", &primary.to_string()])?;
        self.wait_settled(primary, port, false)
    }

    /// The last lines of every sentinel's log, for a failure message (a
    /// sentinel that misses a promotion under load says why: TILT, no quorum).
    fn sentinel_logs(&self) -> String {
        let mut out = String::new();
        for sentinel in &self.sentinels {
            let log = sentinel.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("sentinel {}:\n{tail}\n", sentinel.port()));
        }
        out
    }

    /// Waits until `primary` is a master with `replica` in sync, and every sentinel
    /// reports `primary` and knows `replica`. `strict` also wants each sentinel to
    /// know the 2 others and to have seen the replica's link up (sentinels refresh that
    /// only every 10 s, so a failover does not wait for it).
    fn wait_settled(&self, primary: u16, replica: u16, strict: bool) -> anyhow::Result<()> {
        let sentinels: Vec<u16> = self.sentinels.iter().map(RedisServer::port).collect();
        wait_until("the sentinel set to settle", SETTLE_TIMEOUT, || {
            let info = resp::text(primary, &["INFO", "replication"])?;
            ensure!(
                info_field(&info, "role") == Some("master"),
                "port {primary} is not a master yet"
            );
            let info = resp::text(replica, &["INFO", "replication"])?;
            let link = info_field(&info, "master_link_status");
            let master = info_field(&info, "master_port");
            let want = primary.to_string();
            ensure!(
                link == Some("up") && master == Some(want.as_str()),
                "replica {replica}: master_port {master:?}, master_link_status {link:?}"
            );
            for &sentinel in &sentinels {
                check_sentinel(sentinel, primary, replica, strict)?;
            }
            Ok(())
        })
    }
}

/// A primary or replica of the set: `sentinel-node.conf` (bounded split brain).
fn data_node(spec: Spec) -> Spec {
    Spec {
        conf: "sentinel-node.conf",
        ..spec
    }
}

fn master_port(sentinel: u16) -> anyhow::Result<u16> {
    let addr = resp::query(sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE])?.array()?;
    let port = addr
        .into_iter()
        .nth(1)
        .context("GET-MASTER-ADDR-BY-NAME returned no port")?
        .text()?;
    Ok(port.parse()?)
}

fn check_sentinel(sentinel: u16, primary: u16, replica: u16, strict: bool) -> anyhow::Result<()> {
    let reported = master_port(sentinel)?;
    ensure!(
        reported == primary,
        "sentinel {sentinel} reports primary {reported}, want {primary}"
    );
    let master = resp::query(sentinel, &["SENTINEL", "MASTER", SERVICE])?.pairs()?;
    let get = |key: &str| {
        master
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    ensure!(
        get("flags") == Some("master"),
        "sentinel {sentinel}: master flags {:?}",
        get("flags")
    );
    ensure!(
        !strict || get("num-other-sentinels") == Some("2"),
        "sentinel {sentinel} knows {:?} other sentinels",
        get("num-other-sentinels")
    );
    let replicas = resp::query(sentinel, &["SENTINEL", "REPLICAS", SERVICE])?.array()?;
    let mut found = false;
    for entry in replicas {
        let fields = entry.pairs()?;
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if get("port") == Some(replica.to_string().as_str()) {
            let link_ok = !strict || get("master-link-status") == Some("ok");
            if get("flags") != Some("slave") || !link_ok {
                bail!(
                    "sentinel {sentinel}: replica {replica} flags {:?}, link {:?}",
                    get("flags"),
                    get("master-link-status")
                );
            }
            found = true;
        }
    }
    ensure!(found, "sentinel {sentinel} does not know replica {replica}");
    Ok(())
}
