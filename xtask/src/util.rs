//! Shared helpers: the project root, timed steps, running commands, the Redis check.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

/// Oldest Redis major version the topologies need (`cluster-port`, `redis-cli -e`).
const MIN_REDIS_MAJOR: u32 = 7;

/// The workspace root: the parent of `xtask/`.
pub(crate) fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo` (the one running us, when known) in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `f` as a named step: prints `==> name`, then `==> name ... ok (1.2s)` or
/// `... FAILED (1.2s)`.
pub(crate) fn step<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    println!("==> {name}");
    let started = Instant::now();
    let result = f();
    let secs = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => println!("==> {name} ... ok ({secs:.1}s)"),
        Err(_) => println!("==> {name} ... FAILED ({secs:.1}s)"),
    }
    result
}

/// Runs a command as a named step like [`step`], reporting `FAILED` when it exits
/// unsuccessfully, and returns its exit status.
pub(crate) fn step_status(name: &str, command: &mut Command) -> anyhow::Result<ExitStatus> {
    println!("==> {name}");
    let started = Instant::now();
    let result = status(command);
    let secs = started.elapsed().as_secs_f64();
    let verdict = match &result {
        Ok(status) if status.success() => "ok".to_owned(),
        Ok(status) => format!("FAILED: {status}"),
        Err(_) => "FAILED".to_owned(),
    };
    println!("==> {name} ... {verdict} ({secs:.1}s)");
    result
}

/// Runs a command with inherited stdio and fails unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = status(command)?;
    if !status.success() {
        bail!("{} failed: {status}", describe(command));
    }
    Ok(())
}

/// Runs a command with inherited stdio and returns its exit status.
pub(crate) fn status(command: &mut Command) -> anyhow::Result<ExitStatus> {
    command
        .status()
        .with_context(|| format!("could not run {}", describe(command)))
}

/// Runs a command and returns its stdout; stderr passes through.
pub(crate) fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run {}", describe(command)))?;
    if !out.status.success() {
        bail!("{} failed: {}", describe(command), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program arg arg...` for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// The first line of `program --version`, or `None` when it does not run.
pub(crate) fn version_of(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

/// Major version from `Redis server v=7.0.15 ...` or `redis-cli 7.0.15`.
fn redis_major(version: &str) -> Option<u32> {
    let number = version.split_whitespace().find_map(|word| {
        let word = word.strip_prefix("v=").unwrap_or(word);
        word.starts_with(|c: char| c.is_ascii_digit())
            .then_some(word)
    })?;
    number.split('.').next()?.parse().ok()
}

/// Makes sure redis-server, redis-cli and redis-benchmark 7+ are installed. Installs them
/// with apt-get when missing and running as root; otherwise fails with the command to run.
pub(crate) fn ensure_redis() -> anyhow::Result<()> {
    if redis_ok() {
        return Ok(());
    }
    if can_apt_install() {
        step(
            "installing redis-server and redis-tools with apt-get (redis 7+ not found)",
            || apt_install(&["redis-server", "redis-tools"]),
        )?;
        if redis_ok() {
            return Ok(());
        }
        bail!("apt-get installed Redis, but redis-server/redis-cli {MIN_REDIS_MAJOR}+ are still not usable; found {}", found());
    }
    bail!(
        "redis-server, redis-cli and redis-benchmark {MIN_REDIS_MAJOR} or newer are needed; found {}.\n\
         Install them with:\n    sudo apt-get update && sudo apt-get install -y redis-server redis-tools\n\
         (macOS: brew install redis)",
        found()
    )
}

/// Whether xtask may install packages itself: running as root with apt-get.
pub(crate) fn can_apt_install() -> bool {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    is_root && Command::new("apt-get").arg("--version").output().is_ok()
}

/// `apt-get update`, then `apt-get install -y --no-install-recommends PACKAGES`.
pub(crate) fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn redis_ok() -> bool {
    ["redis-server", "redis-cli", "redis-benchmark"]
        .iter()
        .all(|p| version_of(p).and_then(|v| redis_major(&v)) >= Some(MIN_REDIS_MAJOR))
}

fn found() -> String {
    ["redis-server", "redis-cli", "redis-benchmark"]
        .iter()
        .map(|p| format!("{p}: {}", version_of(p).unwrap_or_else(|| "missing".into())))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_redis_versions() {
        let server = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64";
        assert_eq!(redis_major(server), Some(7));
        assert_eq!(redis_major("redis-cli 6.2.6"), Some(6));
        assert_eq!(redis_major("redis-benchmark 7.2.4"), Some(7));
        assert_eq!(redis_major("nothing here"), None);
    }
}
