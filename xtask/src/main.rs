//! `cargo xtask`: the workspace's automation, in Rust (matklad's cargo-xtask).
//!
//! ```text
//! cargo xtask redis up|down|status [--topology standalone|redlock|cluster|sentinel|all]
//! cargo xtask test [cargo test args]   start every topology, cargo test --workspace, stop them
//! cargo xtask ci                       fmt --check, clippy -D warnings, docs -D warnings, test, chaos (short)
//! cargo xtask bench [LAYER]            benches against a fresh Redis -> target/bench/results.json
//! cargo xtask bench --chart-only       redraw docs/bench/*.svg and docs/reliability.svg from their JSON
//! cargo xtask chaos [--minutes N] ...   every layer under injected faults -> docs/reliability.md
//! cargo xtask demo                     the demo game API server with its own Redis
//! cargo xtask demo --load [--players N] [--seconds S] [--url U]   simulated players
//! cargo xtask package                  package (verified), contents, selective use of each layer
//! ```
//!
//! One module per task; `util` holds the shared helpers (project root, timed steps,
//! the redis-server check).

#![allow(clippy::print_stdout)]

mod bench;
mod chaos;
mod chart;
mod chromium;
mod ci;
mod demo;
mod load;
mod package;
mod redis;
mod test;
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  redis up|down|status [--topology standalone|redlock|cluster|sentinel|all]
                        start, stop or list local Redis topologies (state in target/redis/)
  test [ARGS...]        start every topology, run `cargo test --workspace ARGS...`, stop them
  ci                    fmt --check, clippy -D warnings, rustdoc -D warnings, then test and
                        the chaos short mode
  bench [LAYER]         run bench targets against a fresh Redis; writes target/bench/results.json
                        and docs/bench/results.md (layers: core cache session lock ratelimit
                        patterns tower); also docs/bench/throughput.svg and latency.svg
  bench --chart-only    redraw the SVG charts from docs/bench/results.json (and
                        docs/reliability.svg from docs/reliability.json)
  chaos [--minutes N] [--seed S] [--topology standalone|cluster|sentinel|all|every]
                        a mixed workload over every layer while faults are injected (seeded),
                        each layer's invariant checked; writes docs/reliability.md, .json and
                        .svg (recovery chart), exits non-zero on a broken invariant (no
                        --minutes: every fault once). Topologies: all (default) = standalone +
                        cluster, what CI's short mode runs; every = all + sentinel; or one
  demo [ARGS...]        run the demo game API server (DEMO_ADDR) with its own Redis; ARGS to cargo run
  demo --load [--players N] [--seconds S] [--url U]
                        drive N simulated players (default 20, 10 s) against a running demo;
                        progress bar, then requests/s, p50/p99 per route, 429s, cache hit rate
  package               cargo package every publishable crate (verified), check the package
                        contents, and compile each layer's README example in a project of its own";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest.to_vec()),
        None => ("help", Vec::new()),
    };
    let result = match task {
        "redis" => redis::run(&rest),
        "test" => test::run(&rest),
        "ci" => ci::run(&rest),
        "bench" => bench::run(&rest),
        "chaos" => chaos::run(&rest),
        "demo" => demo::run(&rest),
        "package" => package::run(&rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("unknown task {other:?}\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}
