//! Write-behind durability: the demo binary SIGKILLed after acknowledged
//! moves loses none of them; the next start drains them into SQLite.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use aeturnis_demo::{DemoConfig, Position};
use aeturnis_testkit::{http_request, strip_ansi, TestCtx};

use crate::support::Api;

#[tokio::test]
async fn should_drain_moves_acknowledged_by_a_sigkilled_demo_into_sqlite_at_the_next_start(
) -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("demo_sigkill").await;
    let data_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(&ctx.prefix);
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut demo = Command::new(env!("CARGO_BIN_EXE_aeturnis-demo"))
        .env("REDIS_URL", &ctx.url)
        .env("CACHE_KEY_PREFIX", &ctx.prefix)
        .env("DEMO_ADDR", "127.0.0.1:0")
        .env("DEMO_DATA_DIR", &data_dir)
        .env("RUST_LOG", "info")
        // an instance that acknowledges moves and leaves writing them to
        // others: the moves are still in Redis when it dies
        .env("DEMO_MOVES_WORKERS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = demo.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = strip_ansi(&lines.next().expect("the demo exited").unwrap());
            if line.contains("aeturnis-demo listening") {
                let at = line.find("addr=").unwrap() + 5;
                let end = line[at..].find(' ').map_or(line.len(), |e| at + e);
                break line[at..end].parse::<SocketAddr>().unwrap();
            }
        };
        // keep draining the log so the server never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        addr
    })
    .await?;
    let moves = tokio::task::spawn_blocking(move || {
        let (status, body) =
            http_request(addr, "POST", "/auth/login", None, r#"{"user":"dave"}"#).unwrap();
        assert_eq!(status, 201, "{body}");
        let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        for x in 1..=5 {
            let body = format!(r#"{{"zone":"marsh","x":{x},"y":7}}"#);
            let (status, reply) = http_request(addr, "POST", "/move", Some(&token), &body).unwrap();
            assert_eq!(status, 200, "{reply}");
        }
    });
    moves.await?;
    // every move above was acknowledged; the process dies without a flush
    demo.kill()?;
    demo.wait()?;

    // the next start, on the same Redis, prefix and database
    let config = DemoConfig::defaults()?
        .with_data_dir(Some(data_dir.clone()))
        .with_moves_claim_idle(Duration::from_millis(200));
    let next = Api::new(&ctx, config).await?;
    let db = next.state.store().db();
    assert_eq!(
        db.position("dave").await?,
        Some(Position::new("dave", "meadow", 0.0, 0.0)),
        "nothing written before the next start"
    );
    next.state.start().await?;
    next.state.shutdown().await?;
    assert_eq!(
        db.position("dave").await?,
        Some(Position::new("dave", "marsh", 5.0, 7.0))
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
