//! `cargo xtask chaos [--minutes N] [--seed S] [--topology standalone|cluster|sentinel|all|every]`:
//! the chaos program (`tests/chaos/`) over every layer under injected faults,
//! which writes `docs/reliability.md` and its figures `docs/reliability.json`;
//! this draws them as `docs/reliability.svg` (recovery per fault kind).
//!
//! `--topology all` (the default) is what CI's short mode runs, standalone
//! and cluster (its 4-minute budget); `every` adds the sentinel set (its
//! failovers wait for `down-after-milliseconds` 3000 and a resync), and
//! `sentinel` runs that set alone.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use crate::util::{self, step};

/// Runs the chaos program with `args`, writing `docs/reliability.md`,
/// `.json` and `.svg`.
/// Without `--minutes`, the short mode (every fault kind once).
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--minutes" | "--seed" | "--topology" => {
                if it.next().is_none() {
                    bail!("{a} needs a value");
                }
            }
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask chaos [--minutes N] [--seed S] \
                 [--topology standalone|cluster|sentinel|all|every]"
            ),
        }
    }
    let report = util::root().join("docs/reliability.md");
    chaos(args, &report, &[])
}

/// The short mode CI runs: seed 17, standalone and cluster, every fault
/// kind once (about 50 s), its report under `target/chaos/`; built with
/// CI's `features` so nothing is compiled again.
pub(crate) fn short(features: &[&str]) -> anyhow::Result<ExitCode> {
    let dir = util::root().join("target/chaos");
    std::fs::create_dir_all(&dir)?;
    let args = ["--seed", "17", "--topology", "all"].map(String::from);
    chaos(&args, &dir.join("reliability.md"), features)
}

fn chaos(args: &[String], report: &Path, features: &[&str]) -> anyhow::Result<ExitCode> {
    step("check redis-server/redis-cli >= 7", util::ensure_redis)?;
    let mut cargo = util::cargo();
    cargo
        .args([
            "run",
            "--quiet",
            "--package",
            "aeturnis-tests",
            "--bin",
            "chaos",
        ])
        .args(features)
        .arg("--")
        .args(args)
        .arg("--report")
        .arg(report);
    let name = format!(
        "cargo run -p aeturnis-tests --bin chaos -- {}",
        args.join(" ")
    );
    // the run writes its figures next to its report, even when an
    // invariant broke; draw them (never a previous run's)
    let json = report.with_extension("json");
    if json.exists() {
        std::fs::remove_file(&json)?;
    }
    let status = util::step_status(&name, &mut cargo)?;
    if json.exists() {
        let svg = report.with_extension("svg");
        crate::chart::write_recovery(&json, &svg)?;
        println!("xtask: wrote {}", svg.display());
    }
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
