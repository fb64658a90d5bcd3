//! `cargo xtask chaos [--minutes N] [--seed S] [--topology standalone|cluster|all]`:
//! the chaos program (`tests/chaos/`) over every layer under injected faults,
//! which writes `docs/reliability.md`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use crate::util::{self, step};

/// Runs the chaos program with `args`, writing `docs/reliability.md`.
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
                 [--topology standalone|cluster|all]"
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
    let status = util::step_status(&name, &mut cargo)?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
