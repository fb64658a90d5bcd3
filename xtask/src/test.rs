//! `cargo xtask test [ARGS]`: every topology up, `cargo test --workspace ARGS`, all down.

use std::process::ExitCode;

use crate::redis::{self, env_pairs};
use crate::util::{self, step};

/// Starts standalone, Redlock masters, cluster and sentinel, runs the workspace tests
/// (or those of the packages named with `-p`) with their `AETURNIS_TEST_*` addresses in the environment, stops what it started
/// (also when the tests fail) and exits with the tests' exit code.
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    step("check redis-server/redis-cli >= 7", util::ensure_redis)?;
    // the demo's dashboard test drives a headless Chromium
    if !names_packages(args) || args.iter().any(|a| a.contains("aeturnis-demo")) {
        step("check chromium/chromedriver", crate::chromium::ensure)?;
    }
    redis::with_topologies("test", &redis::all(), |entries| {
        let env = env_pairs(entries);
        for (name, value) in &env {
            println!("    {name}={value}");
        }
        // `-p NAME` narrows the run to packages; otherwise test the whole workspace.
        let mut cargo = util::cargo();
        cargo.arg("test");
        if !names_packages(args) {
            cargo.arg("--workspace");
        }
        cargo.args(args).envs(env.iter().cloned());
        let name = util::describe(&cargo).replace(&util::describe(&util::cargo()), "cargo");
        let status = util::step_status(&name, &mut cargo)?;
        Ok(status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from))
    })
}

/// Whether the cargo arguments (before `--`) select packages with `-p`/`--package`.
fn names_packages(args: &[String]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| {
        a == "-p"
            || a == "--package"
            || a.starts_with("--package=")
            || (a.starts_with("-p") && a.len() > 2)
    })
}

#[cfg(test)]
mod tests {
    use super::names_packages;

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn should_test_the_workspace_unless_packages_are_named() {
        assert!(!names_packages(&args(&[])));
        assert!(!names_packages(&args(&["should_x", "--", "-p"])));
        assert!(names_packages(&args(&["-p", "aeturnis-testkit"])));
        assert!(names_packages(&args(&["--package=xtask"])));
        assert!(names_packages(&args(&["-pxtask"])));
    }
}
