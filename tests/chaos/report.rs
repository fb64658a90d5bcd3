//! The report: a console summary, and the markdown of `docs/reliability.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::record::{FaultRun, Op, Outcome};
use crate::secrets::Scan;
use crate::{
    TopologyRun, CMD_TIMEOUT, HANG_BOUND, LIMIT, LOCK_TTL, RECONNECT_MAX, RECOVERY_BOUND, WINDOW,
};

pub(crate) fn print(run: &TopologyRun) {
    for v in &run.verdicts {
        println!(
            "  [{}] {}: {}",
            if v.ok { "ok" } else { "FAILED" },
            v.name,
            v.detail
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The fault whose window (start .. recovered + 1 s) holds `at`.
fn window_of(faults: &[FaultRun], at: Duration) -> Option<&'static str> {
    faults
        .iter()
        .find(|f| {
            let end =
                f.healed + f.recovery.unwrap_or(Duration::from_secs(30)) + Duration::from_secs(1);
            f.start <= at && at <= end
        })
        .map(|f| f.kind)
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Error(class) => class,
        Outcome::Hung => "hung",
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[i])
}

fn topology_section(out: &mut String, run: &TopologyRun) {
    let ops = run.rec.ops();
    let faults = run.rec.faults();
    let violations = run.rec.violations();
    let _ = writeln!(
        out,
        "\n## {} ({:.0} s, {} operations, {} faults)\n",
        run.topology.name(),
        run.seconds,
        ops.len(),
        faults.len()
    );

    // faults by kind
    let _ = writeln!(out, "### Faults\n");
    let _ = writeln!(
        out,
        "| fault | injected | operations in its windows | errors in its windows | recovery p50 | recovery max | violations |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---:|");
    let mut kinds: Vec<&'static str> = faults.iter().map(|f| f.kind).collect();
    kinds.dedup();
    let mut seen = Vec::new();
    for kind in kinds {
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        let of_kind: Vec<&FaultRun> = faults.iter().filter(|f| f.kind == kind).collect();
        let mut rec: Vec<Duration> = of_kind.iter().filter_map(|f| f.recovery).collect();
        rec.sort();
        let never = of_kind.iter().filter(|f| f.recovery.is_none()).count();
        let in_window: Vec<&Op> = ops
            .iter()
            .filter(|o| window_of(&faults, o.at) == Some(kind))
            .collect();
        let mut errors: BTreeMap<&'static str, usize> = BTreeMap::new();
        for o in &in_window {
            if o.outcome != Outcome::Ok {
                *errors.entry(outcome_name(o.outcome)).or_default() += 1;
            }
        }
        let errors = if errors.is_empty() {
            "none".to_owned()
        } else {
            errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let v = violations
            .iter()
            .filter(|v| window_of(&faults, v.at) == Some(kind))
            .count();
        let _ = writeln!(
            out,
            "| {kind} | {} | {} | {errors} | {} | {}{} | {v} |",
            of_kind.len(),
            in_window.len(),
            percentile(&rec, 0.5).map_or("-".into(), ms),
            rec.last().copied().map_or("-".into(), ms),
            if never > 0 {
                format!(" ({never} never)")
            } else {
                String::new()
            },
        );
    }

    if !run.losses.is_empty() {
        losses_table(out, run);
    }

    // operations by layer
    let _ = writeln!(out, "\n### Operations\n");
    let _ = writeln!(out, "| layer | operations | ok | errors by class | hung |");
    let _ = writeln!(out, "|---|---:|---:|---|---:|");
    let mut layers: BTreeMap<&'static str, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for o in &ops {
        *layers
            .entry(o.layer)
            .or_default()
            .entry(outcome_name(o.outcome))
            .or_default() += 1;
    }
    for (layer, counts) in &layers {
        let total: usize = counts.values().sum();
        let ok = counts.get("ok").copied().unwrap_or(0);
        let hung = counts.get("hung").copied().unwrap_or(0);
        let errors: Vec<String> = counts
            .iter()
            .filter(|(k, _)| !matches!(**k, "ok" | "hung"))
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let errors = if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        };
        let _ = writeln!(out, "| {layer} | {total} | {ok} | {errors} | {hung} |");
    }
    let samples = run.rec.samples();
    if !samples.is_empty() {
        let _ = writeln!(out, "\nOne error of each class, as the caller saw it:\n");
        for (class, text) in samples {
            let _ = writeln!(out, "- {class}: `{}`", text.replace('`', "'"));
        }
    }

    // invariants
    let _ = writeln!(out, "\n### Invariants\n");
    let _ = writeln!(out, "| invariant | result | detail |");
    let _ = writeln!(out, "|---|---|---|");
    for v in &run.verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            v.name,
            if v.ok { "pass" } else { "**FAIL**" },
            v.detail.replace('|', "\\|")
        );
    }
    if !violations.is_empty() {
        let _ = writeln!(out, "\nViolations (first 20):\n");
        for v in violations.iter().take(20) {
            let _ = writeln!(
                out,
                "- {:.1}s {}: {}",
                v.at.as_secs_f64(),
                v.invariant,
                v.detail
            );
        }
    }
}

pub(crate) fn markdown(
    runs: &[TopologyRun],
    seed: u64,
    minutes: Option<f64>,
    scan: &Scan,
) -> String {
    let mut out = String::new();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = write!(
        out,
        "# Reliability: the chaos run\n\n\
         <!-- written by `cargo xtask chaos`; do not edit by hand -->\n\n\
         `cargo xtask chaos [--minutes N] [--seed S] [--topology standalone|cluster|sentinel|all|every]` \
         runs a mixed workload over every layer (plain cache writes and reads, a ledger of \
         keys written once each, `get_or_load`, \
         write-behind, session create/get/revoke/list, limiter checks, locked increments with \
         fenced writes: one paced worker each, two for the lock) while it injects faults, then \
         checks each layer's invariant. It connects as a least-privilege ACL user \
         (`aeturnis_redis_core::acl::acl_rules`) with a password, and captures every log line at \
         TRACE (`tracing` and fred's `log`) to check that the password never appears. Without \
         `--minutes` it runs the short mode: every fault kind of each topology once, in an order \
         drawn from the seed (17 by default); `cargo xtask ci` runs it on `--topology all`, \
         standalone and cluster (the default; its budget is 4 minutes). `--topology every` adds \
         the sentinel set, `sentinel` runs it alone: its failovers wait for the sentinels' \
         `down-after-milliseconds` (3000) and a full resync, too slow for CI. With `--minutes N` it \
         injects faults drawn at random for N minutes per topology. The seed is printed and \
         makes the schedule reproducible (the timing of a loaded machine does not repeat \
         exactly). A broken invariant makes the command exit non-zero. The run also writes \
         `reliability.json` (recovery per fault kind) and `cargo xtask chaos` draws it as \
         `reliability.svg`:\n\n\
         ![Recovery after each fault: p50 and max per topology and fault kind](reliability.svg)\n\n\
         **This run:** {date}, seed {seed}, {}, {}, {} cores shared with other jobs (load \
         average {} at the end: the machine was busy, so latencies and recoveries are \
         pessimistic). The client: command \
         timeout {}, reconnect backoff 50 ms to {} (the reconnect ceiling), unresponsive-connection \
         check {}.\n\n\
         **Faults.** Standalone: the server sits behind testkit's `FaultProxy` (300 ms latency, \
         black hole, connection resets, replies cut in half), and gets SIGKILL + restart (no \
         persistence, as in `deploy/redis`: a data-losing fault; the restarted server is hidden \
         behind proxy resets until its ACL user is made again), SIGSTOP/SIGCONT, `DEBUG SLEEP`, \
         `CLIENT KILL USER`, `CLIENT PAUSE WRITE`, `SCRIPT FLUSH`, and OOM (`maxmemory` at the \
         memory in use, `noeviction`). Cluster (3 primaries, 3 replicas; fred connects to the \
         addresses the cluster announces, so no proxy): `CLUSTER FAILOVER`, a killed primary \
         (replica promoted after `cluster-node-timeout` 2 s, then the old one restarted as a \
         replica: data-losing within the replication lag), and the server faults above on one \
         primary (held at most 1 s, under the node timeout). Sentinel (1 primary with \
         `min-replicas-to-write 1`, 1 replica, 3 sentinels, quorum 2, `down-after-milliseconds` \
         3000; the client in sentinel mode, the ACL user also on the sentinels): testkit's \
         planned `SENTINEL FAILOVER` (`failover_paused`: `CLIENT PAUSE WRITE` until the replica \
         has the whole stream), a plain `SENTINEL FAILOVER` (data-losing: what is on the \
         replication link at the promotion), a killed primary (`kill_primary`, then `rejoin`: \
         the old one restarted empty as a replica, its ACL user made again), `CLIENT KILL USER` \
         and `SCRIPT FLUSH` on both data nodes. Faults are held 0.6 to 1.5 s.\n\n\
         **A killed primary's replication-lag window, measured.** Just before each kill \
         (cluster and sentinel) the run notes the time, reads the primary's \
         `master_repl_offset`, and waits until the replica's `slave_repl_offset` has reached it: \
         every write acknowledged before that time is on the replica. The window runs from \
         then to the kill (the SIGKILL is sent within a query of it). What was acknowledged in \
         it and lost is reported per kill (ledger writes, revokes whose session was read back, \
         fenced writes refused after it because the fence counter went back); anything \
         acknowledged before it and lost fails the ledger invariant.\n\n\
         **Invariants.** Locks: the fenced counter reaches every acknowledged increment (without \
         a data-losing fault: acknowledged ≤ counter ≤ acknowledged + increments whose write \
         failed and may have landed; no value acknowledged twice), no two grants overlapped (a \
         grant runs from the acquire's reply to the release, or to its send + TTL {}), a write \
         with an older fence is refused. A fenced write refused while its grant is within its \
         TTL counts as an overlap before any data-losing fault; after one it is counted apart: \
         the fence counter starts again from 1 on the emptied server, below a fenced record \
         written since with an older grant's fence, so new holders' writes are refused (safe, \
         not live) until the counter passes it. Limiter (sliding log, {LIMIT} per {}, fail closed): no \
         {} admissions whose send-to-reply span is shorter than the window. Sessions (at most 3 \
         per user): no session whose revoke was acknowledged is read back, no listing over the \
         limit (a revoke acknowledged within a data-losing fault's window and read back is \
         counted under that fault). Ledger: every acknowledged write is read back at the end; \
         one missing is allowed only within a data-losing fault's window (a killed primary's \
         lag window, anything before the restart of a server without persistence, the span of \
         a plain failover). Cache writes and write-behind: every key holds its last acknowledged value or a \
         newer one (for write-behind: in the source of truth, after `flush`); writes \
         acknowledged before a data-losing fault are counted apart, not judged. Everything: no \
         panic, no call without an answer within {} (three command timeouts + 1 s), no error \
         classed `Internal`, and after each fault a probe write succeeds within {} of the fault \
         being lifted (the reconnect ceiling + 1 s; after a black hole also the unresponsive \
         timeout, {}, since only then is the silent connection known dead). Errors and violations are attributed to \
         the fault whose window (start to recovery + 1 s) they fall in.\n",
        minutes.map_or("short mode".to_owned(), |m| format!("{m} minutes per topology")),
        runs.iter()
            .map(|r| r.topology.name())
            .collect::<Vec<_>>()
            .join(" + "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into()),
        ms(CMD_TIMEOUT),
        ms(RECONNECT_MAX),
        ms(CMD_TIMEOUT),
        ms(LOCK_TTL),
        ms(WINDOW),
        LIMIT + 1,
        ms(HANG_BOUND),
        ms(RECOVERY_BOUND),
        ms(CMD_TIMEOUT),
    );
    let _ = writeln!(
        out,
        "\nLog capture: {} lines ({} bytes) at TRACE, {} holding the password.",
        scan.lines.load(Ordering::Relaxed),
        scan.bytes.load(Ordering::Relaxed),
        scan.leaks.load(Ordering::Relaxed)
    );
    for run in runs {
        topology_section(&mut out, run);
    }
    out
}

/// Each data-losing fault: what was acknowledged within its window and lost.
fn losses_table(out: &mut String, run: &TopologyRun) {
    let _ = writeln!(
        out,
        "\n### Data-losing faults: acknowledged within the window, lost\n"
    );
    let _ = writeln!(
        out,
        "A killed primary's window runs from the moment its replica had processed the \
         primary's replication offset (read just then) to the kill; a restarted server \
         without persistence loses everything before its restart; a plain failover, what \
         was acknowledged while it ran. Nothing acknowledged outside these windows may be \
         lost (the ledger invariant below).\n"
    );
    let _ = writeln!(
        out,
        "| fault | at | lag window (synced → kill) | kill → replica promoted | ledger writes acknowledged in the window (all shards) | lost | revokes lost (session read back) | fenced writes refused after it |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for l in &run.losses {
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {} | {} | {} | {} | {} | {} |",
            l.kind,
            l.at.as_secs_f64(),
            l.lag.map_or("-".into(), ms),
            l.promotion.map_or("-".into(), ms),
            if l.lag.is_some() {
                l.acked.to_string()
            } else {
                "-".into()
            },
            l.lost,
            l.revokes,
            l.fences
        );
    }
}

/// Recovery per fault kind and topology, for `cargo xtask chaos`'s chart:
/// `[{"topology", "fault", "p50_ms", "max_ms", "injected"}]`.
pub(crate) fn recovery_json(runs: &[TopologyRun]) -> serde_json::Value {
    let mut rows = Vec::new();
    for run in runs {
        let faults = run.rec.faults();
        let mut kinds: Vec<&'static str> = Vec::new();
        for f in &faults {
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind);
            }
        }
        for kind in kinds {
            let mut rec: Vec<Duration> = faults
                .iter()
                .filter(|f| f.kind == kind)
                .filter_map(|f| f.recovery)
                .collect();
            rec.sort();
            let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
            rows.push(serde_json::json!({
                "topology": run.topology.name(),
                "fault": kind,
                "injected": faults.iter().filter(|f| f.kind == kind).count(),
                "p50_ms": ms(percentile(&rec, 0.5)),
                "max_ms": ms(rec.last().copied()),
            }));
        }
    }
    serde_json::Value::Array(rows)
}
