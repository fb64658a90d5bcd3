//! `cargo xtask demo [CARGO RUN ARGS]`: the demo game API server with its own Redis.
//!
//! Starts a standalone Redis owned by this process (testkit's `aeturnis-redis`
//! helper with `--owner-pid`: Redis and its reaper run in their own process group, out
//! of the terminal's Ctrl-C, and the reaper kills Redis when xtask dies, even by
//! SIGKILL), runs
//! `cargo run -p aeturnis-demo` in the foreground with `REDIS_URL` pointing at it,
//! and stops Redis when the server exits. The server's stdin is a pipe xtask holds, so
//! it stops too when xtask is killed on its own. `DEMO_ADDR` (default `127.0.0.1:8080`),
//! `RUST_LOG` and the crates' variables pass through to the server. The SQLite
//! database lives in `DEMO_DATA_DIR` (default `target/demo-data`), created, migrated and
//! seeded by the server on first start. `--instances N` starts N servers on adjacent
//! ports sharing Redis and the database (players on different instances see each
//! other through Redis sharded pub/sub). On Ctrl-C each server writes its acknowledged
//! moves to SQLite before it exits: the terminal's SIGINT reaches the servers (they are
//! in xtask's process group) but not Redis, and xtask, which catches SIGINT, waits for
//! every server to exit before it stops Redis.

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
    let (instances, args) = instances(args)?;
    // from here on Ctrl-C does not stop xtask: the servers stop on it, flush
    // into Redis, and xtask stops Redis after them
    let _ctrl_c = CtrlC::catch()?;
    step("check redis-server/redis-cli >= 7", util::ensure_redis)?;
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let first: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("DEMO_ADDR `{addr}` is not an address such as 127.0.0.1:8080"))?;
    let addrs: Vec<String> = (0..instances)
        .map(|i| {
            let mut a = first;
            a.set_port(first.port().saturating_add(i));
            a.to_string()
        })
        .collect();
    let data_dir = std::env::var("DEMO_DATA_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map_or_else(|| util::root().join("target").join("demo-data"), Into::into);
    if instances > 1 {
        // one build, then the instances start from it (not N cargo runs racing)
        util::run(
            util::cargo()
                .args(["build", "--package", "aeturnis-demo"])
                .args(&args),
        )?;
    }
    redis::with_topologies("demo", &["standalone".to_owned()], |entries| {
        let url = entries
            .iter()
            .find(|e| e["topology"] == "standalone")
            .and_then(|e| e["url"].as_str())
            .context("aeturnis-redis did not report a standalone URL")?
            .to_owned();
        print_intro(&addrs, &url, &data_dir);
        let mut children = Vec::new();
        for addr in &addrs {
            let mut cargo = util::cargo();
            cargo
                .args(["run", "--quiet", "--package", "aeturnis-demo"])
                .args(&args)
                .env("REDIS_URL", &url)
                .env("DEMO_ADDR", addr)
                .env("DEMO_DATA_DIR", &data_dir)
                // The server stops when this pipe closes, i.e. when xtask exits however
                // it exits (Ctrl-C reaches the servers directly: same process group).
                .env("DEMO_EXIT_ON_STDIN_EOF", "1")
                .stdin(Stdio::piped());
            let mut child = cargo
                .spawn()
                .with_context(|| format!("could not run {}", util::describe(&cargo)))?;
            let pipe = child.stdin.take();
            children.push((child, pipe));
        }
        let mut worst = ExitCode::SUCCESS;
        for (addr, (mut child, _owner_pipe)) in addrs.iter().zip(children) {
            let status = child.wait()?;
            println!("==> demo server {addr} exited: {status}");
            if !status.success() {
                worst = status
                    .code()
                    .and_then(|c| u8::try_from(c).ok())
                    .map_or(ExitCode::FAILURE, ExitCode::from);
            }
        }
        Ok(worst)
    })
}

/// SIGINT caught (and ignored) while this lives; the servers xtask spawns get the
/// default disposition back when they exec.
struct CtrlC {
    _signal: tokio::signal::unix::Signal,
    _runtime: tokio::runtime::Runtime,
}

impl CtrlC {
    fn catch() -> anyhow::Result<CtrlC> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let signal = {
            let _entered = runtime.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("catching Ctrl-C")?
        };
        Ok(CtrlC {
            _signal: signal,
            _runtime: runtime,
        })
    }
}

/// `--instances N` (1 to 8, default 1), and the other arguments (for `cargo run`).
fn instances(args: &[String]) -> anyhow::Result<(u16, Vec<String>)> {
    let mut n = 1;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.strip_prefix("--instances") {
            Some("") => it.next().map(String::as_str),
            Some(v) if v.starts_with('=') => Some(&v[1..]),
            _ => {
                rest.push(a.clone());
                continue;
            }
        };
        n = value
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|n| (1..=8).contains(n))
            .context("--instances takes a number from 1 to 8")?;
    }
    Ok((n, rest))
}

fn print_intro(addrs: &[String], redis_url: &str, data_dir: &std::path::Path) {
    let base = format!("http://{}", addrs[0]);
    let servers: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    println!(
        "\
==> demo Redis: {redis_url} (stopped when the demo exits)
==> SQLite: {data} (created and seeded on first start)
==> demo API: {servers} (building and starting; Ctrl-C stops everything)
    dashboard  {base}/dashboard
    metrics    {base}/metrics
    health     {base}/health/detailed
    websocket  ws://{ws}/ws   (bearer token or session cookie)

try, in another terminal:
    TOKEN=$(curl -s -X POST {base}/auth/login -H 'content-type: application/json' \\
        -d '{{\"user\":\"alice\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')
    curl -si {base}/players/alice/profile        # X-Cache: miss, then hit
    curl -s -X POST {base}/move -H \"authorization: Bearer $TOKEN\" \\
        -H 'content-type: application/json' -d '{{\"zone\":\"keep\",\"x\":3,\"y\":4}}'
(more in crates/demo/README.md)
",
        data = data_dir.display(),
        servers = servers.join(", "),
        ws = addrs[0],
    );
}
