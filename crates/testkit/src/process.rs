//! Spawning `redis-server`: free ports, temp dirs, config copies, reapers, readiness.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::lifetime::{lifetime, Lifetime};

/// How long a server may take to answer PING after it was spawned.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval of every readiness loop.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// How often we try fresh ports when another process grabbed the one we chose.
const PORT_ATTEMPTS: usize = 5;

/// The directory holding the Redis configs (`deploy/redis`).
pub(crate) fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/redis")
}

/// A free loopback port: bind port 0 and read what the kernel chose.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A fresh random-ish 32-bit hex string (no `rand` dependency needed).
pub(crate) fn random_hex8() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    format!("{:08x}", hasher.finish() & 0xffff_ffff)
}

/// A new empty directory under the system temp dir.
pub(crate) fn make_temp_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "aeturnis-redis-{}-{}",
        std::process::id(),
        random_hex8()
    ));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// What kind of server to start.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Config file name in `deploy/redis`.
    pub conf: &'static str,
    /// `{{NAME}}` placeholders to replace in the config copy.
    pub vars: Vec<(&'static str, String)>,
    /// Extra command-line options, after the standard ones.
    pub extra: Vec<String>,
    /// Cluster node: needs a bus port and a nodes file.
    pub cluster: bool,
    /// Start in sentinel mode.
    pub sentinel: bool,
    /// Role name for records and messages.
    pub role: &'static str,
}

impl Spec {
    pub(crate) fn standalone() -> Spec {
        Spec {
            conf: "standalone.conf",
            vars: Vec::new(),
            extra: Vec::new(),
            cluster: false,
            sentinel: false,
            role: "standalone",
        }
    }

    pub(crate) fn primary() -> Spec {
        Spec {
            role: "primary",
            ..Spec::standalone()
        }
    }

    pub(crate) fn replica_of(primary_port: u16) -> Spec {
        Spec {
            extra: vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary_port.to_string(),
            ],
            role: "replica",
            ..Spec::standalone()
        }
    }

    pub(crate) fn cluster_node() -> Spec {
        Spec {
            conf: "cluster-node.conf",
            cluster: true,
            role: "cluster-node",
            ..Spec::standalone()
        }
    }

    pub(crate) fn sentinel(master_port: u16) -> Spec {
        Spec {
            conf: "sentinel.conf",
            vars: vec![("MASTER_PORT", master_port.to_string())],
            sentinel: true,
            role: "sentinel",
            ..Spec::standalone()
        }
    }
}

/// Everything needed to (re)start one server: the port, the dir and the argv.
#[derive(Debug)]
pub(crate) struct Launch {
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub args: Vec<OsString>,
    pub role: &'static str,
}

impl Launch {
    /// Chooses ports, creates the dir and copies the config into it.
    pub(crate) fn prepare(spec: &Spec) -> anyhow::Result<Launch> {
        let port = free_port()?;
        let dir = make_temp_dir()?;
        let template = config_dir().join(spec.conf);
        let mut text = fs::read_to_string(&template)
            .with_context(|| format!("reading {}", template.display()))?;
        for (name, value) in &spec.vars {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        // Servers run from a copy: sentinel and CONFIG REWRITE rewrite their config file.
        let conf = dir.join(spec.conf);
        fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let log = dir.join("redis.log");

        let mut args: Vec<OsString> = vec![conf.into_os_string()];
        if spec.sentinel {
            args.push("--sentinel".into());
        }
        let mut push = |name: &str, value: OsString| {
            args.push(format!("--{name}").into());
            args.push(value);
        };
        push("port", port.to_string().into());
        push("dir", dir.clone().into_os_string());
        push("logfile", log.clone().into_os_string());
        if !spec.sentinel {
            push("save", "".into());
            push("appendonly", "no".into());
        }
        if spec.cluster {
            push("cluster-port", free_port()?.to_string().into());
            push("cluster-config-file", "nodes.conf".into());
        }
        args.extend(spec.extra.iter().map(OsString::from));
        Ok(Launch {
            port,
            dir,
            log,
            args,
            role: spec.role,
        })
    }

    /// Spawns the server once, with a reaper according to the [`Lifetime`].
    pub(crate) fn spawn(&self) -> anyhow::Result<Running> {
        let mut command = Command::new("redis-server");
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Detached and owned servers live in their own process group: the
        // terminal's Ctrl-C must not stop them under their owner (`cargo xtask
        // demo` lets its servers flush to Redis first, then stops it).
        if matches!(lifetime(), Lifetime::Detached | Lifetime::Owner(_)) {
            command.process_group(0);
        }
        let child = command
            .spawn()
            .context("spawning redis-server (is it installed? try `cargo xtask redis up`)")?;
        let reaper = Reaper::spawn(child.id(), &self.dir)?;
        Ok(Running { child, reaper })
    }

    /// Waits until the server answers PING; fails with its log when it exits or stalls.
    pub(crate) fn wait_ready(&self, running: &mut Running) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                let log = read_log(&self.log);
                let in_use = log.contains("Address already in use");
                return Err(StartError {
                    port_in_use: in_use,
                    error: anyhow::anyhow!(
                        "{} on port {} exited with {status} before answering PING; log:\n{log}",
                        self.role,
                        self.port
                    ),
                });
            }
            if ping(addr, Duration::from_millis(250)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError {
                    port_in_use: false,
                    error: anyhow::anyhow!(
                        "{} on port {} did not answer PING within {:?}; log:\n{}",
                        self.role,
                        self.port,
                        READY_TIMEOUT,
                        read_log(&self.log)
                    ),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A failed start; `port_in_use` tells the caller to retry on other ports.
#[derive(Debug)]
pub(crate) struct StartError {
    pub port_in_use: bool,
    pub error: anyhow::Error,
}

/// Prepares, spawns and waits for a server, retrying with fresh ports when a port
/// was taken between choosing and binding it.
pub(crate) fn start(spec: &Spec) -> anyhow::Result<(Launch, Running)> {
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        let launch = Launch::prepare(spec)?;
        let mut running = launch.spawn()?;
        match launch.wait_ready(&mut running) {
            Ok(()) => return Ok((launch, running)),
            Err(failed) => {
                running.stop();
                let _ = fs::remove_dir_all(&launch.dir);
                if !failed.port_in_use {
                    return Err(failed.error);
                }
                last = Some(failed.error);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("could not start {}", spec.role)))
}

/// A spawned server and its reaper.
#[derive(Debug)]
pub(crate) struct Running {
    pub child: Child,
    reaper: Reaper,
}

impl Running {
    /// SIGKILL and reap the server, then let the reaper go.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaper.release();
    }

    /// Leave the server running; the reaper (if any) keeps watching it.
    pub(crate) fn detach(self) -> u32 {
        let pid = self.child.id();
        self.reaper.forget();
        pid
    }
}

/// A `sh` process that SIGKILLs a server when its owner goes away.
#[derive(Debug)]
struct Reaper {
    child: Option<Child>,
    /// Write end of the reaper's stdin; closing it (or this process exiting) fires it.
    pipe: Option<ChildStdin>,
}

impl Reaper {
    fn spawn(server_pid: u32, dir: &Path) -> anyhow::Result<Reaper> {
        // Kill the pid only if it is still a redis process, then remove its directory.
        const KILL: &str = "grep -qs redis /proc/$1/cmdline && kill -9 $1; rm -rf \"$2\"";
        let (script, owner, stdin) = match lifetime() {
            Lifetime::Detached => {
                return Ok(Reaper {
                    child: None,
                    pipe: None,
                })
            }
            Lifetime::Process => (format!("read x; {KILL}"), String::new(), Stdio::piped()),
            Lifetime::Owner(owner) => (
                format!("while kill -0 $3 2>/dev/null; do sleep 1; done; {KILL}"),
                owner.to_string(),
                Stdio::null(),
            ),
        };
        let mut reaper = Command::new("sh");
        if matches!(lifetime(), Lifetime::Owner(_)) {
            // out of the terminal's reach like its server: it must outlive a
            // Ctrl-C of its owner to kill the server when the owner dies
            reaper.process_group(0);
        }
        let mut child = reaper
            .arg("-c")
            .arg(script)
            .arg("aeturnis-reaper")
            .arg(server_pid.to_string())
            .arg(dir)
            .arg(owner)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the reaper shell")?;
        let pipe = child.stdin.take();
        Ok(Reaper {
            child: Some(child),
            pipe,
        })
    }

    /// The server is gone (or restarting in the same dir): stop the reaper without
    /// letting it fire.
    fn release(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.pipe.take());
    }

    /// Keep the reaper running without us (its pipe end stays open until we exit).
    fn forget(mut self) {
        if let Some(pipe) = self.pipe.take() {
            std::mem::forget(pipe);
        }
        self.child.take();
    }
}

/// One raw `PING` over TCP; true when the answer is `+PONG`.
pub(crate) fn ping(addr: SocketAddr, timeout: Duration) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf)?;
        Ok(&buf == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}

pub(crate) fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("<no log at {}: {e}>", path.display()))
}

/// Polls `check` every [`POLL`] until it returns `Ok(())`; an `Err` is the reason it
/// is not there yet. Fails after `timeout` with the last reason.
pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let reason = match check() {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {reason:#}");
        }
        std::thread::sleep(POLL);
    }
}
