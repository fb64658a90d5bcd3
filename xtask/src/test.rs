//! `cargo xtask test [ARGS]`: every topology up, `cargo test --workspace ARGS`, all down.

use std::process::ExitCode;

use crate::redis::{self, env_pairs};
use crate::util::{self, step};

/// Starts standalone, Redlock masters, cluster and sentinel, runs the workspace tests
/// with their `AETURNIS_TEST_*` addresses in the environment, stops what it started
/// (also when the tests fail) and exits with the tests' exit code.
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    step("check redis-server/redis-cli >= 7", util::ensure_redis)?;
    redis::with_topologies("test", &redis::all(), |entries| {
        let env = env_pairs(entries);
        for (name, value) in &env {
            println!("    {name}={value}");
        }
        let name = format!("cargo test --workspace {}", args.join(" "));
        let mut cargo = util::cargo();
        cargo
            .args(["test", "--workspace"])
            .args(args)
            .envs(env.iter().cloned());
        let status = util::step_status(name.trim_end(), &mut cargo)?;
        Ok(status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from))
    })
}
