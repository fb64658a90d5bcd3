//! `cargo xtask bench [LAYER]`: bench targets against a fresh Redis, side by side with
//! their baselines, into `target/bench/results.json` and `docs/bench/results.md`.

use std::fmt::Write as _;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::redis::{self, servers};
use crate::util::{self, step};

/// Bench layers, in report order; each is `tests/benches/<layer>.rs` when it exists.
const LAYERS: [&str; 7] = [
    "core",
    "cache",
    "session",
    "lock",
    "ratelimit",
    "patterns",
    "tower",
];

/// Runs the bench target of `LAYER`, or of every layer that has one.
pub(crate) fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let root = util::root();
    if args == ["--chart-only"] {
        for path in crate::chart::from_results(&root.join("docs/bench"))? {
            println!("wrote {}", path.display());
        }
        // and the chaos run's recovery chart, from its committed figures
        let (json, svg) = (
            root.join("docs/reliability.json"),
            root.join("docs/reliability.svg"),
        );
        if json.exists() {
            crate::chart::write_recovery(&json, &svg)?;
            println!("wrote {}", svg.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let existing: Vec<&str> = LAYERS
        .iter()
        .copied()
        .filter(|l| root.join("tests/benches").join(format!("{l}.rs")).exists())
        .collect();
    let layers: Vec<&str> = match args {
        [] => existing.clone(),
        [layer] if existing.contains(&layer.as_str()) => vec![layer.as_str()],
        [layer] => {
            bail!("no bench target for layer {layer:?}; existing: {existing:?} (of {LAYERS:?})")
        }
        _ => bail!("usage: cargo xtask bench [LAYER]"),
    };
    if layers.is_empty() {
        bail!("no bench targets in tests/benches/");
    }
    step(
        "check redis-server/redis-cli/redis-benchmark >= 7",
        util::ensure_redis,
    )?;

    let out_dir = root.join("target/bench");
    // Per run, so that concurrent bench runs do not mix their records.
    let records_path = out_dir.join(format!("records-{}.jsonl", std::process::id()));
    std::fs::create_dir_all(&out_dir)?;
    let _ = std::fs::remove_file(&records_path);

    // the rate-limit bench's Node peer, when node and npm are installed
    let node_modules = if layers.contains(&"ratelimit") {
        node_peer(&root.join("tests/benches/peer"), &out_dir.join("node"))?
    } else {
        None
    };

    let topologies = vec!["standalone".to_owned(), "redlock".to_owned()];
    redis::with_topologies("bench", &topologies, |entries| {
        let mut env = vec![(
            "AETURNIS_BENCH_OUT".to_owned(),
            records_path.display().to_string(),
        )];
        if let Some(modules) = &node_modules {
            env.push((
                "AETURNIS_BENCH_NODE_MODULES".to_owned(),
                modules.display().to_string(),
            ));
        }
        for entry in entries {
            match entry["topology"].as_str() {
                Some("standalone") => {
                    let port = servers(entry)
                        .next()
                        .map(|s| s["port"].to_string())
                        .unwrap_or_default();
                    env.push((
                        "AETURNIS_BENCH_REDIS_URL".into(),
                        entry["url"].as_str().unwrap_or_default().into(),
                    ));
                    env.push(("AETURNIS_BENCH_REDIS_PORT".into(), port));
                }
                Some("redlock") => {
                    env.push((
                        "AETURNIS_BENCH_REDLOCK_URLS".into(),
                        entry["url"].as_str().unwrap_or_default().into(),
                    ));
                }
                _ => {}
            }
        }
        for layer in &layers {
            step(
                &format!("cargo bench -p aeturnis-tests --bench {layer}"),
                || {
                    util::run(
                        util::cargo()
                            .args(["bench", "--package", "aeturnis-tests", "--bench", layer])
                            .envs(env.iter().cloned()),
                    )
                },
            )?;
        }
        Ok(())
    })?;

    let text = std::fs::read_to_string(&records_path).with_context(|| {
        format!(
            "reading {} (did the benches append records?)",
            records_path.display()
        )
    })?;
    let records = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()
        .context("parsing bench records")?;
    let _ = std::fs::remove_file(&records_path);
    let results = out_dir.join("results.json");
    std::fs::write(&results, serde_json::to_string_pretty(&records)?)?;

    // docs/bench keeps every layer's latest run: this run's layers replace
    // their old rows, the other layers' rows stay as they were measured
    let (date, load) = (utc_now(), load_average());
    let stamped: Vec<Value> = records
        .into_iter()
        .map(|mut r| {
            if let Value::Object(map) = &mut r {
                map.insert("measured_at".into(), Value::from(date.clone()));
                map.insert("load_average".into(), Value::from(load.clone()));
            }
            r
        })
        .collect();
    let docs_json = root.join("docs/bench/results.json");
    let previous: Vec<Value> = match std::fs::read_to_string(&docs_json) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", docs_json.display()))?,
        Err(_) => Vec::new(),
    };
    let merged = merge(previous, stamped, &layers);

    let table = markdown_table(&merged);
    println!("\n{table}");
    let doc = format!("{}\n{table}", header(&layers, &merged, &date, &load));
    let doc_path = root.join("docs/bench/results.md");
    std::fs::create_dir_all(root.join("docs/bench"))?;
    std::fs::write(&doc_path, doc)?;
    std::fs::write(&docs_json, serde_json::to_string_pretty(&merged)? + "\n")?;
    let charts = crate::chart::write(&merged, &root.join("docs/bench"))?;
    println!(
        "wrote {}",
        charts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "wrote {}, {} and {}",
        results.display(),
        doc_path.display(),
        docs_json.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Installs the Node peer's packages (`tests/benches/peer/package.json`,
/// pinned versions) into `dir` with `npm install` and returns its
/// `node_modules`, or `None` (saying so) when `node` or `npm` is missing:
/// the rate-limit bench then skips the rate-limiter-flexible rows.
fn node_peer(
    peer: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let (Some(node), Some(npm)) = (util::version_of("node"), util::version_of("npm")) else {
        println!(
            "node or npm not found: the rate-limiter-flexible rows of the ratelimit bench are skipped"
        );
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    std::fs::copy(peer.join("package.json"), dir.join("package.json"))
        .context("copying the Node peer's package.json")?;
    step(
        &format!("npm install the Node peer (node {node}, npm {npm})"),
        || {
            util::run(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--no-package-lock"])
                    .current_dir(dir),
            )
        },
    )?;
    Ok(Some(dir.join("node_modules")))
}

/// The previous records of the layers not run now, then this run's, in
/// [`LAYERS`] order (each layer's rows in the order they were written).
fn merge(previous: Vec<Value>, fresh: Vec<Value>, layers: &[&str]) -> Vec<Value> {
    let layer_of = |r: &Value| r["layer"].as_str().unwrap_or_default().to_owned();
    let mut merged: Vec<Value> = previous
        .into_iter()
        .filter(|r| !layers.contains(&layer_of(r).as_str()))
        .chain(fresh)
        .collect();
    let rank = |r: &Value| {
        let layer = layer_of(r);
        LAYERS
            .iter()
            .position(|l| *l == layer)
            .unwrap_or(LAYERS.len())
    };
    // stable: keeps each layer's rows in their written order
    merged.sort_by_key(rank);
    merged
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Other work on the machine skews every figure; say how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Names the machine and versions that produced the figures, and when
/// each layer's rows were measured.
fn header(layers: &[&str], records: &[Value], date: &str, load: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let redis = util::version_of("redis-server").unwrap_or_else(|| "unknown".into());
    let rustc = util::version_of("rustc").unwrap_or_else(|| "unknown".into());
    let mut measured = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for r in records {
        let layer = r["layer"].as_str().unwrap_or("?");
        if seen.contains(&layer) {
            continue;
        }
        seen.push(layer);
        let when = r["measured_at"].as_str().unwrap_or("an earlier run");
        let load = r["load_average"].as_str().map_or_else(String::new, |l| {
            format!(", 1-minute load average {l} at its end")
        });
        let _ = writeln!(measured, "  - `{layer}`: {when}{load}");
    }
    format!(
        "# Benchmark results\n\n\
         Last written by `cargo xtask bench` (layers: {}) on {date}; 1-minute load average \
         {load} when the run ended. A run replaces the rows of the layers it ran and keeps \
         the others; each layer's rows come from one run:\n\n\
         {measured}\n\
         - Machine: {cores} cores, {cpu}; client and Redis on the same machine over loopback\n\
         - Redis: {redis}\n\
         - Rust: {rustc}\n\
         - session, lock, ratelimit: the sides of a row run interleaved after one \
         unrecorded warm-up run each, in five rounds of one run per side (alternating which \
         goes first), and the row gives the round whose ratio is the median; core, cache: \
         the median of 3 runs (cache alternating raw and typed runs). Ratio = ops_per_sec / \
         baseline_ops_per_sec (higher is better). Latencies are per operation, in \
         microseconds.\n",
        layers.join(", ")
    )
}

fn markdown_table(records: &[Value]) -> String {
    let mut table = String::from(
        "| layer | case | c | runtime | ops/s | p50 µs | p99 µs | baseline | baseline ops/s | ratio | bytes/item |\n\
         |---|---|---:|---|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for r in records {
        let num = |key: &str, digits: usize| {
            r[key]
                .as_f64()
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["layer"].as_str().unwrap_or("?"),
            r["case"].as_str().unwrap_or("?"),
            r["concurrency"],
            r["runtime"].as_str().unwrap_or("?"),
            num("ops_per_sec", 0),
            num("p50_us", 1),
            num("p99_us", 1),
            r["baseline"].as_str().unwrap_or("?"),
            num("baseline_ops_per_sec", 0),
            num("ratio", 2),
            num("redis_bytes_per_item", 0),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_replace_only_the_layers_run() {
        let row = |layer: &str, case: &str| serde_json::json!({"layer": layer, "case": case});
        let previous = vec![
            row("core", "GET"),
            row("lock", "old"),
            row("ratelimit", "gcra"),
        ];
        let fresh = vec![row("lock", "new 1"), row("lock", "new 2")];
        let merged = merge(previous, fresh, &["lock"]);
        let cases: Vec<&str> = merged.iter().filter_map(|r| r["case"].as_str()).collect();
        assert_eq!(cases, ["GET", "new 1", "new 2", "gcra"]);
    }

    #[test]
    fn should_render_one_row_per_record() -> anyhow::Result<()> {
        let record: Value = serde_json::from_str(
            r#"{"layer":"core","case":"GET 100B","concurrency":50,"runtime":"multi_thread(2)",
                "ops_per_sec":300000.4,"p50_us":150.0,"p99_us":400.0,"baseline":"redis-benchmark -c 50 -d 100",
                "baseline_ops_per_sec":120000.0,"ratio":2.5,"redis_bytes_per_item":null}"#,
        )?;
        let table = markdown_table(&[record]);
        assert_eq!(table.lines().count(), 3);
        assert!(
            table.contains("| core | GET 100B | 50 | multi_thread(2) | 300000 | 150.0 | 400.0 |")
        );
        assert!(table.contains("| 2.50 | – |"));
        Ok(())
    }
}
