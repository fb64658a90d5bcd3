//! Standalone servers and Redlock masters: start, kill, restart, pause, resume.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aeturnis_testkit::{Masters, RedisServer};
use fred::prelude::*;

/// Raw PING with a read timeout: the answer, or the I/O error.
fn ping(server: &RedisServer, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&server.addr(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test]
async fn should_answer_ping_through_fred() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    let client = Client::new(Config::from_url(&server.url())?, None, None, None);
    client.init().await?;
    let pong: String = client.ping(None).await?;
    assert_eq!(pong, "PONG");
    client.quit().await?;
    Ok(())
}

#[test]
fn should_refuse_connections_when_killed_and_answer_again_after_restart() -> anyhow::Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let port = server.port();
    let old_pid = server.pid();
    server.cli(&["SET", "k", "v"])?;

    server.kill()?;
    server.kill()?; // idempotent
    let refused = ping(&server, Duration::from_secs(1)).map(drop);
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );

    server.restart()?;
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert_eq!(ping(&server, Duration::from_secs(1))?, "+PONG\r\n");
    // No persistence: the data is gone, the server is fresh.
    assert_eq!(server.cli(&["EXISTS", "k"])?.trim(), "0");
    Ok(())
}

#[test]
fn should_stop_answering_when_paused_and_answer_after_resume() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    server.pause()?;
    let stalled = ping(&server, Duration::from_millis(300)).map(drop);
    let kind = stalled.map_err(|e| e.kind());
    assert!(
        matches!(kind, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "expected a timeout, got {kind:?}"
    );
    server.resume()?;
    assert_eq!(ping(&server, Duration::from_secs(2))?, "+PONG\r\n");
    Ok(())
}

#[test]
fn should_report_redis_errors_from_cli_and_keep_a_log() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let error = server.cli(&["NO-SUCH-COMMAND"]).map(drop);
    assert!(
        format!("{error:?}").contains("unknown command"),
        "{error:?}"
    );
    assert!(server.log().contains("Ready to accept connections"));
    Ok(())
}

#[test]
fn should_remove_the_directory_and_process_on_drop() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let dir = server.dir().to_path_buf();
    let pid = server.pid();
    assert!(dir.join("standalone.conf").exists());
    drop(server);
    assert!(!dir.exists());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    Ok(())
}

#[test]
fn should_start_independent_masters_on_distinct_ports() -> anyhow::Result<()> {
    let masters = Masters::start(3)?;
    let mut ports: Vec<u16> = masters.servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    assert_eq!(masters.urls().len(), 3);
    for server in &masters.servers {
        let info = server.cli(&["INFO", "replication"])?;
        assert!(info.contains("role:master"), "{info}");
        assert!(info.contains("connected_slaves:0"), "{info}");
    }
    Ok(())
}
