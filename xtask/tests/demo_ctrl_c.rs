//! `cargo xtask demo` and the terminal's Ctrl-C: the servers flush their
//! acknowledged moves into SQLite while Redis is still up, then xtask stops
//! Redis; killed outright, xtask still takes its Redis with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use aeturnis_testkit::{eventually, http_request, strip_ansi};

/// Building and starting the demo server the first time may compile it.
const START: Duration = Duration::from_secs(300);

/// `cargo xtask demo` started as a terminal's foreground job: the leader of
/// its own process group, so signalling the group is what Ctrl-C does.
struct Demo {
    xtask: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    data_dir: PathBuf,
    addr: SocketAddr,
    redis_port: u16,
}

impl Demo {
    async fn start(name: &str) -> Demo {
        let data_dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("demo")
            .env("DEMO_ADDR", addr.to_string())
            .env("DEMO_DATA_DIR", &data_dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = xtask.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(strip_ansi(&line)).is_err() {
                    break;
                }
            }
        });
        let mut demo = Demo {
            xtask,
            lines,
            seen: Vec::new(),
            data_dir,
            addr,
            redis_port: 0,
        };
        let redis = demo
            .line("the demo's Redis URL", START, "==> demo Redis: ")
            .await;
        demo.redis_port = redis
            .split("redis://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {redis:?}"));
        demo.line("the server listening", START, "aeturnis-demo listening")
            .await;
        demo
    }

    /// Waits for the first line (from the start) that contains `needle`.
    async fn line(&mut self, what: &str, within: Duration, needle: &str) -> String {
        let (lines, seen) = (&self.lines, &mut self.seen);
        eventually(what, within, || {
            while let Ok(line) = lines.try_recv() {
                seen.push(line);
            }
            let found = seen.iter().find(|l| l.contains(needle)).cloned();
            let printed = seen.join("\n");
            async move { found.ok_or_else(|| format!("not printed yet; xtask printed:\n{printed}")) }
        })
        .await
        .unwrap()
    }

    /// Signals xtask's whole process group, as the terminal does.
    fn signal_group(&self, signal: &str) {
        let group = format!("-{}", self.xtask.id());
        let status = Command::new("kill")
            .args([signal, "--", &group])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} -- {group}");
    }

    async fn exited(&mut self, within: Duration) -> ExitStatus {
        let xtask = &mut self.xtask;
        eventually("xtask exits", within, || {
            let status = xtask.try_wait();
            async move {
                status
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "still running".to_owned())
            }
        })
        .await
        .unwrap()
    }

    fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir.join("demo.sqlite3")).unwrap()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.xtask.try_wait().ok().flatten().is_none() {
            self.signal_group("-KILL");
            let _ = self.xtask.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The live redis-server processes listening on `port`: `(pid, process group)`.
fn redis_servers(port: u16) -> Vec<(u32, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // a zombie's command line is empty; redis shows `redis-server 127.0.0.1:PORT`
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("redis-server") || !cmdline.contains(&format!(":{port}")) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // after `pid (comm)`: state, ppid, pgrp
        let Some(group) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(2))
            .and_then(|g| g.parse().ok())
        else {
            continue;
        };
        found.push((pid, group));
    }
    found
}

fn login(addr: SocketAddr, user: &str) -> String {
    let (status, body) = http_request(
        addr,
        "POST",
        "/auth/login",
        None,
        &format!(r#"{{"user":"{user}"}}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn should_flush_acknowledged_moves_into_sqlite_before_stopping_redis_on_ctrl_c() {
    let mut demo = Demo::start("demo-ctrl-c").await;
    let servers = redis_servers(demo.redis_port);
    assert_eq!(
        servers.len(),
        1,
        "one redis-server on port {}",
        demo.redis_port
    );
    assert_ne!(
        servers[0].1,
        demo.xtask.id(),
        "Redis runs outside the terminal's process group"
    );
    let token = login(demo.addr, "eve");
    // Hold SQLite's write lock: the movement workers cannot write the moves
    // below, so at Ctrl-C they are acknowledged and only in Redis.
    let blocker = demo.database();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for x in 1..=5 {
        let body = format!(r#"{{"zone":"marsh","x":{x},"y":9}}"#);
        let (status, reply) =
            http_request(demo.addr, "POST", "/move", Some(&token), &body).unwrap();
        assert_eq!(status, 200, "{reply}");
    }
    demo.signal_group("-INT");
    demo.line(
        "the server starts its flush",
        Duration::from_secs(10),
        "shutting down: writing acknowledged moves",
    )
    .await;
    // the server is flushing and cannot finish while we hold the lock: Redis
    // must still be there
    assert_eq!(
        redis_servers(demo.redis_port).len(),
        1,
        "Redis outlives the terminal's Ctrl-C while the servers flush"
    );
    blocker.execute_batch("COMMIT").unwrap();
    let status = demo.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "xtask exited with {status}");
    demo.line("the flush", Duration::ZERO, "acknowledged moves written")
        .await;
    let position: (String, f64, f64) = demo
        .database()
        .query_row(
            "SELECT zone, x, y FROM characters WHERE player_id = 'eve'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(position, ("marsh".to_owned(), 5.0, 9.0));
    assert_eq!(
        redis_servers(demo.redis_port),
        Vec::new(),
        "xtask stopped its Redis"
    );
}

#[tokio::test]
async fn should_take_its_redis_along_when_xtask_is_killed() {
    let mut demo = Demo::start("demo-sigkill").await;
    assert_eq!(redis_servers(demo.redis_port).len(), 1);
    let killed = Command::new("kill")
        .args(["-KILL", &demo.xtask.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    demo.exited(Duration::from_secs(5)).await;
    // the reaper polls its owner once a second
    let port = demo.redis_port;
    eventually("the reaper kills Redis", Duration::from_secs(5), || {
        let left = redis_servers(port);
        async move {
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("still running: {left:?}"))
            }
        }
    })
    .await
    .unwrap();
}
