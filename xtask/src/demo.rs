//! `cargo xtask demo [CARGO RUN ARGS]`: the demo game API server with its own Redis.
//!
//! Starts a standalone Redis owned by this process (testkit's `aeturnis-redis`
//! helper with `--owner-pid`, so it dies with xtask even when xtask is killed), runs
//! `cargo run -p aeturnis-demo` in the foreground with `REDIS_URL` pointing at it,
//! and stops Redis when the server exits. The server's stdin is a pipe xtask holds, so
//! it stops too when xtask is killed on its own. `DEMO_ADDR` (default `127.0.0.1:8080`),
//! `RUST_LOG` and the crates' variables pass through to the server.

use std::process::{ExitCode, Stdio};

use anyhow::Context;

use crate::redis;
use crate::util::{self, step};

/// The server's default listen address (keep in step with crates/demo/src/main.rs).
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Runs the demo until it exits (Ctrl-C), then stops its Redis. Extra arguments go to
/// `cargo run` (for example `--release`). `--load [OPTIONS]` drives simulated players
/// against a running demo instead ([`load`](crate::load)).
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    if let Some(("--load", rest)) = args.split_first().map(|(a, r)| (a.as_str(), r)) {
        let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
        return crate::load::run(&crate::load::Options::parse(
            rest,
            &format!("http://{addr}"),
        )?);
    }
    step("check redis-server/redis-cli >= 7", util::ensure_redis)?;
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    redis::with_topologies("demo", &["standalone".to_owned()], |entries| {
        let url = entries
            .iter()
            .find(|e| e["topology"] == "standalone")
            .and_then(|e| e["url"].as_str())
            .context("aeturnis-redis did not report a standalone URL")?
            .to_owned();
        print_intro(&addr, &url);
        let mut cargo = util::cargo();
        cargo
            .args(["run", "--package", "aeturnis-demo"])
            .args(args)
            .env("REDIS_URL", &url)
            .env("DEMO_ADDR", &addr)
            // The server stops when this pipe closes, i.e. when xtask exits however
            // it exits (Ctrl-C reaches the whole process group anyway).
            .env("DEMO_EXIT_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped());
        let mut child = cargo
            .spawn()
            .with_context(|| format!("could not run {}", util::describe(&cargo)))?;
        let _owner_pipe = child.stdin.take();
        let status = child.wait()?;
        println!("==> demo server exited: {status}");
        Ok(status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from))
    })
}

fn print_intro(addr: &str, redis_url: &str) {
    let base = format!("http://{addr}");
    println!(
        "\
==> demo Redis: {redis_url} (stopped when the demo exits)
==> demo server: {base} (building and starting; Ctrl-C stops it)

try, in another terminal:
    curl -s {base}/health
    TOKEN=$(curl -s -X POST {base}/auth/login -H 'content-type: application/json' \\
        -d '{{\"user\":\"alice\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')
    curl -s {base}/me -H \"authorization: Bearer $TOKEN\"
    curl -s -X POST {base}/chat -H \"authorization: Bearer $TOKEN\" \\
        -H 'content-type: application/json' -d '{{\"message\":\"hello\"}}'
    curl -s {base}/chat
    curl -si {base}/players/bob/profile        # X-Cache: miss, then hit
    curl -s -X POST {base}/auth/logout -H \"authorization: Bearer $TOKEN\"
(more in crates/demo/README.md)
"
    );
}
