//! The invariants, checked once the workload has stopped and the servers
//! are quiet.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::env::Kind;
use crate::record::{Outcome, Recorder};
use crate::workload::{Layers, Logs, Rows};
use crate::{CMD_TIMEOUT, LIMIT, RECOVERY_BOUND, WINDOW};

/// One invariant's result.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) name: &'static str,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// Every invariant of one topology's run. `rows` is the write-behind's
/// source of truth; `panics` the workers that ended abnormally.
pub(crate) async fn all(
    rec: &Recorder,
    layers: &Layers,
    logs: &Logs,
    rows: &Rows,
    panics: u64,
    leaks: u64,
) -> Vec<Verdict> {
    let last_epoch = rec.epoch(rec.now());
    let mut out = Vec::new();
    let mut verdict = |name: &'static str, ok: bool, detail: String| {
        out.push(Verdict { name, ok, detail });
    };

    // cache writes: the last acknowledged value of each key, or a newer one
    let acked = logs.cache.lock().unwrap().clone();
    let (mut lost, mut before_loss, mut checked) = (0, 0, 0);
    for (k, (seq, _, epoch)) in &acked {
        let got = layers
            .cache
            .get::<u64>(&layers.key("cw", *k))
            .await
            .ok()
            .flatten();
        if got.is_some_and(|v| v >= *seq) {
            checked += 1;
        } else if *epoch < last_epoch {
            before_loss += 1;
        } else {
            lost += 1;
            rec.violation(
                "0 acknowledged cache writes lost",
                format!("key {k}: acknowledged {seq}, read {got:?}"),
            );
        }
    }
    verdict(
        "cache writes: 0 acknowledged writes lost",
        lost == 0,
        format!(
            "{checked} keys hold their last acknowledged write or newer, {lost} lost; \
             {before_loss} last written before a data-losing fault (not judged)"
        ),
    );

    // write-behind: drained, and the source holds every key's last acknowledged write
    let drained = tokio::time::timeout(Duration::from_secs(30), layers.behind.flush()).await;
    let drained_ok = matches!(drained, Ok(Ok(())));
    let acked = logs.behind.lock().unwrap().clone();
    let stored = rows.0.lock().unwrap().clone();
    let (mut lost, mut before_loss, mut checked) = (0, 0, 0);
    for (k, (seq, _, epoch)) in &acked {
        let key = layers.key("wb", *k);
        let got = stored.get(key.as_str()).map(|(_, v)| *v);
        if got.is_some_and(|v| v >= *seq) {
            checked += 1;
        } else if *epoch < last_epoch {
            before_loss += 1;
        } else {
            lost += 1;
            rec.violation(
                "0 acknowledged write-behind writes lost",
                format!("key {k}: acknowledged {seq}, source holds {got:?}"),
            );
        }
    }
    verdict(
        "write-behind: drained, 0 acknowledged writes lost",
        drained_ok && lost == 0,
        format!(
            "flush: {}; {checked} keys reached the source with their last acknowledged \
             write or newer, {lost} lost; {before_loss} last written before a data-losing \
             fault (not judged)",
            match &drained {
                Ok(Ok(())) => "drained".to_owned(),
                Ok(Err(e)) => format!("failed: {e}"),
                Err(_) => "not drained within 30 s".to_owned(),
            }
        ),
    );

    lock_checks(rec, layers, logs, last_epoch, &mut verdict).await;
    limiter_check(rec, logs, &mut verdict);

    let by_name = |name: &str| {
        rec.violations()
            .iter()
            .filter(|v| v.invariant == name)
            .count()
    };
    let faults = rec.faults();
    let revived = logs.revived.lock().unwrap().clone();
    let mut in_window = 0;
    for (revoked, seen) in &revived {
        if faults.iter().any(|f| f.may_lose(*revoked)) {
            in_window += 1;
        } else {
            rec.violation_at(
                "no revoked session readable again",
                *seen,
                format!("session revoked at {revoked:?} was returned"),
            );
        }
    }
    let n = by_name("no revoked session readable again");
    verdict(
        "sessions: no revoked session readable again",
        n == 0,
        format!(
            "{n} revoked sessions read back; {in_window} whose revoke was acknowledged within \
             a data-losing fault's window (reported per fault)"
        ),
    );
    let n = by_name("per-user session limit");
    verdict(
        "sessions: per-user limit never exceeded",
        n == 0,
        format!("{n} listings over the limit"),
    );
    let n = by_name("get_or_load returns the loaded value");
    verdict(
        "get_or_load: only the loaded value returned",
        n == 0,
        format!("{n} wrong values"),
    );

    let ops = rec.ops();
    let hung = ops.iter().filter(|o| o.outcome == Outcome::Hung).count();
    verdict(
        "no call hung",
        hung == 0,
        format!(
            "{hung} calls without an answer within {:?}",
            crate::HANG_BOUND
        ),
    );
    let untyped = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Error("Internal" | "Other")))
        .count();
    verdict(
        "only typed errors",
        untyped == 0,
        format!("{untyped} errors classed Internal (not invalid input, unavailable or contended)"),
    );
    verdict(
        "0 panics",
        panics == 0,
        format!("{panics} workers panicked"),
    );
    let slow: Vec<String> = faults
        .iter()
        .filter(|f| f.recovery.map_or(true, |r| r > recovery_bound(f.kind)))
        .map(|f| {
            format!(
                "{} at {:.1}s: {:?}",
                f.kind,
                f.start.as_secs_f64(),
                f.recovery
            )
        })
        .collect();
    verdict(
        "recovery within the reconnect ceiling + 1 s",
        slow.is_empty(),
        if slow.is_empty() {
            format!(
                "every fault recovered within {RECOVERY_BOUND:?} ({:?} after a black hole)",
                recovery_bound(Kind::BlackHole.name())
            )
        } else {
            format!("over the bound: {}", slow.join("; "))
        },
    );
    let failed: Vec<String> = faults
        .iter()
        .filter_map(|f| {
            f.injection_error
                .as_ref()
                .map(|e| format!("{}: {e}", f.kind))
        })
        .collect();
    verdict(
        "every fault injected",
        failed.is_empty(),
        if failed.is_empty() {
            format!("{} faults", faults.len())
        } else {
            failed.join("; ")
        },
    );
    verdict(
        "no password in TRACE logs",
        leaks == 0,
        format!("{leaks} log writes held the password"),
    );
    out
}

async fn lock_checks(
    rec: &Recorder,
    layers: &Layers,
    logs: &Logs,
    last_epoch: usize,
    verdict: &mut impl FnMut(&'static str, bool, String),
) {
    let grants = logs.grants.lock().unwrap().clone();
    // no overlap: within an epoch, sorted by start, each starts after every earlier one ended
    let mut by_epoch: BTreeMap<usize, Vec<(Duration, Duration)>> = BTreeMap::new();
    for g in &grants {
        by_epoch.entry(g.epoch).or_default().push(g.held);
    }
    let margin = Duration::from_millis(2);
    let mut overlaps = 0;
    for held in by_epoch.values_mut() {
        held.sort();
        let mut end = Duration::ZERO;
        for (from, to) in held.iter() {
            if *from + margin < end {
                overlaps += 1;
                rec.violation_at(
                    "no two holders overlapped",
                    *from,
                    format!("a grant from {from:?} overlaps one held until {end:?}"),
                );
            }
            end = end.max(*to);
        }
    }
    let n = rec
        .violations()
        .iter()
        .filter(|v| v.invariant == "no two holders overlapped")
        .count();
    verdict(
        "lock: no two holders overlapped",
        n == 0,
        format!(
            "{} grants, {overlaps} overlapping, {} fenced writes refused within their TTL \
             before any data-losing fault; {} refused within their TTL after one (the fence \
             counter restarted below a fenced record written with an older grant's fence)",
            grants.len(),
            n - overlaps,
            logs.regressed.lock().unwrap().len()
        ),
    );
    // no lost increment: the acknowledged values of an epoch are distinct
    let mut seen: HashMap<(usize, u64), usize> = HashMap::new();
    for g in &grants {
        if let Some(v) = g.value {
            *seen.entry((g.epoch, v)).or_default() += 1;
        }
    }
    let dup = seen.values().filter(|n| **n > 1).count();
    let acked_last = grants
        .iter()
        .filter(|g| g.epoch == last_epoch && g.value.is_some())
        .count() as u64;
    let max_last = grants
        .iter()
        .filter(|g| g.epoch == last_epoch)
        .filter_map(|g| g.value)
        .max()
        .unwrap_or(0);
    let ambiguous = logs
        .ambiguous
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| *e == last_epoch)
        .count() as u64;
    let counter = layers
        .locks
        .fenced_read::<u64>("chaos-counter")
        .await
        .ok()
        .flatten()
        .map_or(0, |(_, v)| v);
    let exact = if last_epoch == 0 {
        acked_last <= counter && counter <= acked_last + ambiguous
    } else {
        counter >= max_last
    };
    verdict(
        "lock: guarded counter == acknowledged increments",
        dup == 0 && exact,
        format!(
            "counter {counter}; {acked_last} increments acknowledged{} (+ {ambiguous} whose \
             write failed and may have landed); {dup} values acknowledged twice",
            if last_epoch == 0 {
                String::new()
            } else {
                format!(" since the last data-losing fault (counter must reach {max_last})")
            }
        ),
    );
    let n = rec
        .violations()
        .iter()
        .filter(|v| v.invariant == "stale fences refused")
        .count();
    verdict(
        "lock: stale fences refused",
        n == 0,
        format!(
            "{} writes sent with an older fence, {n} accepted",
            logs.stale_probes.load(std::sync::atomic::Ordering::Relaxed)
        ),
    );
}

fn limiter_check(
    rec: &Recorder,
    logs: &Logs,
    verdict: &mut impl FnMut(&'static str, bool, String),
) {
    let admissions = logs.admissions.lock().unwrap().clone();
    let limit = LIMIT as usize;
    let mut by_epoch: BTreeMap<usize, Vec<(Duration, Duration)>> = BTreeMap::new();
    for (sent, back, e) in &admissions {
        by_epoch.entry(*e).or_default().push((*sent, *back));
    }
    let margin = Duration::from_millis(5);
    let mut over = 0;
    for adm in by_epoch.values_mut() {
        adm.sort();
        for i in 0..adm.len().saturating_sub(limit) {
            let set = &adm[i..=i + limit];
            let last = set.iter().map(|a| a.1).max().unwrap_or_default();
            let span = last - set[0].0;
            if span + margin < WINDOW {
                over += 1;
                rec.violation_at(
                    "limiter: never more admitted than the quota",
                    set[0].0,
                    format!(
                        "{} admissions within {span:?} (quota {LIMIT} per {WINDOW:?})",
                        limit + 1
                    ),
                );
            }
        }
    }
    verdict(
        "limiter: never more admitted than the quota in any window",
        over == 0,
        format!(
            "{} admissions; {over} sets of {} within one window",
            admissions.len(),
            limit + 1
        ),
    );
}

/// The recovery bound of a fault kind: the reconnect ceiling + 1 s, and for
/// a black hole also the unresponsive timeout (the command timeout here): a
/// connection that stopped answering is only known dead once its watchdog
/// PING has gone unanswered that long, and only then is it replaced.
fn recovery_bound(kind: &str) -> Duration {
    if kind == Kind::BlackHole.name() {
        RECOVERY_BOUND + CMD_TIMEOUT
    } else {
        RECOVERY_BOUND
    }
}

/// What one data-losing fault lost of what was acknowledged within its
/// window (for a killed primary: its replication-lag window).
#[derive(Debug, Clone)]
pub(crate) struct Loss {
    pub(crate) kind: &'static str,
    pub(crate) at: Duration,
    /// A killed primary's window: from the replica in sync to the kill.
    pub(crate) lag: Option<Duration>,
    /// A killed primary: from the kill to the replica seen promoted.
    pub(crate) promotion: Option<Duration>,
    /// Ledger writes acknowledged within the window, and lost.
    pub(crate) acked: usize,
    pub(crate) lost: usize,
    /// Revokes acknowledged within the window whose session was read back.
    pub(crate) revokes: usize,
    /// Fenced writes refused within their TTL from this fault to the next
    /// data-losing one (the fence counter went back).
    pub(crate) fences: usize,
}

/// The ledger: every acknowledged write read back. A missing one is lost
/// within a data-losing fault's window (reported per fault), or a
/// violation. Returns the verdict and each data-losing fault's losses.
pub(crate) async fn ledger(rec: &Recorder, layers: &Layers, logs: &Logs) -> (Verdict, Vec<Loss>) {
    use futures::StreamExt;
    let acked = logs.ledger.lock().unwrap().clone();
    let reads: Vec<(u64, Duration, Result<Option<u64>, String>)> =
        futures::stream::iter(acked.iter().copied())
            .map(|(seq, at)| {
                let (cache, key) = (layers.cache.clone(), layers.key("ledger", seq));
                async move {
                    let got = tokio::time::timeout(CMD_TIMEOUT * 4, cache.get::<u64>(&key))
                        .await
                        .map_err(|_| "timed out".to_owned())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    (seq, at, got)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
    let faults: Vec<_> = rec.faults().into_iter().filter(|f| f.loses_data).collect();
    let mut losses: Vec<Loss> = faults
        .iter()
        .map(|f| Loss {
            kind: f.kind,
            at: f.start,
            lag: f.lag.map(|w| w.killed.saturating_sub(w.synced)),
            promotion: f.lag.map(|w| w.promoted.saturating_sub(w.killed)),
            acked: acked
                .iter()
                .filter(|(_, at)| f.lag.is_some() && f.may_lose(*at))
                .count(),
            lost: 0,
            revokes: 0,
            fences: 0,
        })
        .collect();
    let (mut outside, mut unread) = (0, 0);
    for (seq, at, got) in &reads {
        match got {
            Ok(Some(v)) if v == seq => {}
            Ok(got) => match faults.iter().position(|f| f.may_lose(*at)) {
                Some(i) => losses[i].lost += 1,
                None => {
                    outside += 1;
                    rec.violation(
                        "0 acknowledged writes lost outside a data-losing window",
                        format!("ledger {seq} acknowledged at {at:?}, read {got:?}"),
                    );
                }
            },
            Err(e) => {
                unread += 1;
                rec.violation(
                    "0 acknowledged writes lost outside a data-losing window",
                    format!("ledger {seq}: not read back: {e}"),
                );
            }
        }
    }
    for (revoked, _) in logs.revived.lock().unwrap().iter() {
        if let Some(i) = faults.iter().position(|f| f.may_lose(*revoked)) {
            losses[i].revokes += 1;
        }
    }
    for at in logs.regressed.lock().unwrap().iter() {
        if let Some(i) = faults.iter().rposition(|f| f.start <= *at) {
            losses[i].fences += 1;
        }
    }
    let in_window: usize = losses.iter().map(|l| l.lost).sum();
    let verdict = Verdict {
        name: "ledger: 0 acknowledged writes lost outside a data-losing window",
        ok: outside == 0 && unread == 0,
        detail: format!(
            "{} writes acknowledged, {outside} lost outside any window, {unread} not read \
             back; {in_window} lost within a data-losing fault's window (a killed primary's \
             replication lag, a restarted server without persistence, a plain failover)",
            acked.len()
        ),
    };
    (verdict, losses)
}
