//! `cargo xtask redis up|down|status`: local Redis topologies that outlive xtask.
//!
//! The topologies themselves are started by testkit's `aeturnis-redis` helper binary,
//! so the cluster and sentinel setup exists once. xtask records what it started in a
//! state file (`target/redis/state.json` for `redis up`) and only ever stops the
//! processes recorded there.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::util::{self, step};

/// Every topology, in start order.
pub(crate) const TOPOLOGIES: [&str; 4] = ["standalone", "redlock", "cluster", "sentinel"];

/// `cargo xtask redis up|down|status [--topology T[,T...]|all]`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let (action, rest) = args
        .split_first()
        .context("usage: cargo xtask redis up|down|status [--topology standalone|redlock|cluster|sentinel|all]")?;
    let topologies = parse_topologies(rest, action == "up")?;
    let state = state_path("state.json");
    match action.as_str() {
        "up" => {
            util::ensure_redis()?;
            let started = up(&state, &topologies, None)?;
            print_topologies(&started, &state);
        }
        "down" => down(&state, &topologies)?,
        "status" => status(&state)?,
        other => bail!("unknown redis action {other:?}; expected up, down or status"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--topology a,b` (default: standalone for `up`, everything otherwise).
fn parse_topologies(args: &[String], up: bool) -> anyhow::Result<Vec<String>> {
    let mut list = if up {
        vec!["standalone".to_owned()]
    } else {
        all()
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let value = match arg.strip_prefix("--topology=") {
            Some(value) => value.to_owned(),
            None if arg == "--topology" => iter.next().context("--topology needs a value")?.clone(),
            None => bail!("unknown argument {arg:?}"),
        };
        list = value.split(',').map(str::to_owned).collect();
    }
    if list.iter().any(|t| t == "all") {
        return Ok(all());
    }
    if let Some(bad) = list.iter().find(|t| !TOPOLOGIES.contains(&t.as_str())) {
        bail!("unknown topology {bad:?}; expected one of {TOPOLOGIES:?} or all");
    }
    Ok(list)
}

pub(crate) fn all() -> Vec<String> {
    TOPOLOGIES.iter().map(|t| (*t).to_owned()).collect()
}

/// `target/redis/NAME` in the workspace.
pub(crate) fn state_path(name: &str) -> PathBuf {
    util::root().join("target/redis").join(name)
}

/// Starts the topologies not already running (per the state file), records them, and
/// returns the state entries of all the requested ones. With `owner`, the processes die
/// when that pid exits; otherwise they are detached.
pub(crate) fn up(
    state: &Path,
    topologies: &[String],
    owner: Option<u32>,
) -> anyhow::Result<Vec<Value>> {
    let mut entries = read_state(state)?;
    let mut missing = Vec::new();
    for topology in topologies {
        match entries.iter().find(|e| e["topology"] == topology.as_str()) {
            Some(entry) if all_alive(entry) => println!("{topology}: already up"),
            Some(_) => {
                println!("{topology}: some processes died; restarting it");
                stop_entries(&mut entries, std::slice::from_ref(topology));
                missing.push(topology.clone());
            }
            None => missing.push(topology.clone()),
        }
    }
    if !missing.is_empty() {
        let started = step(&format!("start redis: {}", missing.join(", ")), || {
            let mut helper = util::cargo();
            helper
                .args([
                    "run",
                    "--quiet",
                    "--package",
                    "aeturnis-testkit",
                    "--bin",
                    "aeturnis-redis",
                    "--",
                ])
                .args(["up", "--topology", &missing.join(",")]);
            if let Some(pid) = owner {
                helper.args(["--owner-pid", &pid.to_string()]);
            }
            let stdout = util::output(&mut helper)?;
            let started: Vec<Value> = serde_json::from_str(&stdout)
                .with_context(|| format!("aeturnis-redis printed unexpected output:\n{stdout}"))?;
            Ok(started)
        })?;
        entries.extend(started);
        write_state(state, &entries)?;
    }
    Ok(entries
        .into_iter()
        .filter(|e| topologies.iter().any(|t| e["topology"] == t.as_str()))
        .collect())
}

/// Starts `topologies` owned by this xtask process, runs `f` with their state entries,
/// and stops them again, also when `f` fails.
///
/// The state goes to `target/redis/run-{kind}-{pid}.json`, so concurrent xtask runs in
/// one workspace never stop each other's servers; the files of runs whose xtask died
/// are cleaned up here.
pub(crate) fn with_topologies<T>(
    kind: &str,
    topologies: &[String],
    f: impl FnOnce(&[Value]) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    clean_dead_runs();
    let state = state_path(&format!("run-{kind}-{}.json", std::process::id()));
    let result = up(&state, topologies, Some(std::process::id())).and_then(|entries| f(&entries));
    step("stop redis", || down(&state, &all()))?;
    result
}

/// Stops what xtask runs that died without cleaning up had recorded (their reapers
/// normally did that already) and removes their state files.
fn clean_dead_runs() {
    let Ok(files) = std::fs::read_dir(state_path("")) else {
        return;
    };
    for file in files.flatten() {
        let path = file.path();
        let name = file.file_name().to_string_lossy().into_owned();
        let owner = name
            .strip_prefix("run-")
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.rsplit('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = down(&path, &all());
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Stops the recorded processes of `topologies` and forgets them.
pub(crate) fn down(state: &Path, topologies: &[String]) -> anyhow::Result<()> {
    let mut entries = read_state(state)?;
    if entries.is_empty() {
        println!("nothing recorded in {}", state.display());
        return Ok(());
    }
    stop_entries(&mut entries, topologies);
    if entries.is_empty() {
        let _ = std::fs::remove_file(state);
    } else {
        write_state(state, &entries)?;
    }
    Ok(())
}

fn stop_entries(entries: &mut Vec<Value>, topologies: &[String]) {
    entries.retain(|entry| {
        let name = entry["topology"].as_str().unwrap_or_default();
        if !topologies.iter().any(|t| t == name) {
            return true;
        }
        for server in servers(entry) {
            let pid = server["pid"].as_u64().unwrap_or(0);
            if is_recorded_redis_alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            if let Some(dir) = server["dir"].as_str() {
                remove_server_dir(Path::new(dir));
            }
        }
        println!("{name}: stopped");
        false
    });
}

/// Removes a server dir, but only one testkit created (`aeturnis-redis-*` in the temp dir).
fn remove_server_dir(dir: &Path) {
    let ours = dir.starts_with(std::env::temp_dir())
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("aeturnis-redis-"));
    if ours {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn status(state: &Path) -> anyhow::Result<()> {
    let entries = read_state(state)?;
    if entries.is_empty() {
        println!(
            "no topologies recorded in {} (start some with `cargo xtask redis up`)",
            state.display()
        );
        return Ok(());
    }
    for entry in &entries {
        println!(
            "{}: {}",
            entry["topology"].as_str().unwrap_or("?"),
            entry["url"].as_str().unwrap_or("?")
        );
        for server in servers(entry) {
            let pid = server["pid"].as_u64().unwrap_or(0);
            let alive = if is_recorded_redis_alive(pid) {
                "alive"
            } else {
                "DEAD"
            };
            println!(
                "  {:<13} 127.0.0.1:{:<5}  pid {:<7} {alive}  {}",
                server["role"].as_str().unwrap_or("?"),
                server["port"],
                pid,
                server["dir"].as_str().unwrap_or("?")
            );
        }
    }
    print_env(&entries);
    Ok(())
}

/// Prints addresses and the `NAME=value` lines to export.
fn print_topologies(entries: &[Value], state: &Path) {
    for entry in entries {
        let ports: Vec<String> = servers(entry).map(|s| s["port"].to_string()).collect();
        println!(
            "{}: {} (ports {})",
            entry["topology"].as_str().unwrap_or("?"),
            entry["url"].as_str().unwrap_or("?"),
            ports.join(", ")
        );
    }
    println!(
        "recorded in {}; stop with `cargo xtask redis down`",
        state.display()
    );
    print_env(entries);
}

fn print_env(entries: &[Value]) {
    println!("environment for tests:");
    for (name, value) in env_pairs(entries) {
        println!("{name}={value}");
    }
}

/// The `AETURNIS_TEST_*` variables of the entries.
pub(crate) fn env_pairs(entries: &[Value]) -> Vec<(String, String)> {
    entries
        .iter()
        .filter_map(|e| e["env"].as_object())
        .flat_map(|env| {
            env.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

pub(crate) fn servers(entry: &Value) -> impl Iterator<Item = &Value> {
    entry["servers"].as_array().into_iter().flatten()
}

fn all_alive(entry: &Value) -> bool {
    servers(entry).all(|s| is_recorded_redis_alive(s["pid"].as_u64().unwrap_or(0)))
}

/// True when `pid` is a live redis process (not a zombie, not a reused pid).
fn is_recorded_redis_alive(pid: u64) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        // A zombie has an empty cmdline; a reused pid is not redis.
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("redis"),
        // No /proc (macOS): ask kill -0.
        Err(_) if !Path::new("/proc/self").exists() => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success()),
        Err(_) => false,
    }
}

fn read_state(path: &Path) -> anyhow::Result<Vec<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let state: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            Ok(state["topologies"].as_array().cloned().unwrap_or_default())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_state(path: &Path, entries: &[Value]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&json!({ "topologies": entries }))?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn should_parse_topology_lists() -> anyhow::Result<()> {
        assert_eq!(parse_topologies(&[], true)?, strings(&["standalone"]));
        assert_eq!(parse_topologies(&[], false)?, all());
        assert_eq!(
            parse_topologies(&strings(&["--topology", "cluster,sentinel"]), true)?,
            strings(&["cluster", "sentinel"])
        );
        assert_eq!(
            parse_topologies(&strings(&["--topology=all"]), true)?,
            all()
        );
        assert!(parse_topologies(&strings(&["--topology", "mesh"]), true).is_err());
        Ok(())
    }

    #[test]
    fn should_only_remove_testkit_dirs() {
        let outside = std::env::temp_dir().join("not-ours");
        std::fs::create_dir_all(&outside).ok();
        remove_server_dir(&outside);
        assert!(outside.exists());
        std::fs::remove_dir_all(&outside).ok();
    }
}
