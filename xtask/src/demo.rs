//! `cargo xtask demo`: placeholder until the demo server exists.

use std::process::ExitCode;

/// Says that the demo comes later and fails, so scripts do not mistake it for a run.
pub(crate) fn run(_args: &[String]) -> anyhow::Result<ExitCode> {
    eprintln!("the demo game API server (crates/demo) comes in a later issue; nothing to run yet");
    Ok(ExitCode::FAILURE)
}
