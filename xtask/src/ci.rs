//! `cargo xtask ci`: formatting, lints, docs, then the tests on real Redis.

use std::process::{Command, ExitCode};

use anyhow::bail;

use crate::util::{self, step};

/// `cargo fmt --all --check`, `cargo clippy --workspace --all-targets` (with
/// [`FEATURES`]) `-- -D warnings`,
/// `cargo doc --workspace --no-deps` with `RUSTDOCFLAGS=-D warnings`, the
/// package checks ([`package::check_all`](crate::package::check_all)), then
/// [`test::run`](crate::test::run) with [`FEATURES`], then the chaos run's
/// short mode ([`chaos::short`](crate::chaos::short), about a minute). Stops
/// at the first failing step.
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    if !args.is_empty() {
        bail!("cargo xtask ci takes no arguments (got {args:?})");
    }
    ensure_component("rustfmt", "fmt")?;
    ensure_component("clippy", "clippy")?;
    step("cargo fmt --all --check", || {
        util::run(util::cargo().args(["fmt", "--all", "--check"]))
    })?;
    step(
        "cargo clippy --workspace --all-targets --features aeturnis-redis-core/tls -- -D warnings",
        || {
            util::run(
                util::cargo()
                    .args(["clippy", "--workspace", "--all-targets"])
                    .args(FEATURES)
                    .args(["--", "-D", "warnings"]),
            )
        },
    )?;
    step(
        "cargo doc --workspace --no-deps (RUSTDOCFLAGS=-D warnings)",
        || {
            util::run(
                util::cargo()
                    .args(["doc", "--workspace", "--no-deps"])
                    .env("RUSTDOCFLAGS", "-D warnings"),
            )
        },
    )?;
    crate::package::check_all()?;
    let tests = crate::test::run(&FEATURES.map(String::from))?;
    if tests != ExitCode::SUCCESS {
        return Ok(tests);
    }
    crate::chaos::short(&FEATURES)
}

/// The optional features CI builds and tests too: the core's `tls`
/// (`crates/redis-core/tests/tls.rs` runs only with it). One feature set for
/// clippy and the tests, so fred is built once.
const FEATURES: [&str; 2] = ["--features", "aeturnis-redis-core/tls"];

/// Makes sure `cargo SUBCOMMAND` works, installing the rustup component if not.
fn ensure_component(component: &str, subcommand: &str) -> anyhow::Result<()> {
    let works = |c: &mut Command| {
        c.arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(util::cargo().arg(subcommand)) {
        return Ok(());
    }
    step(&format!("rustup component add {component}"), || {
        util::run(Command::new("rustup").args(["component", "add", component]))
    })
    .map_err(|e| {
        e.context(format!(
            "`cargo {subcommand}` is missing and `rustup component add {component}` failed \
             (offline?); install the {component} component and run again"
        ))
    })
}
