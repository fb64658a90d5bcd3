//! What the run saw: every operation's outcome with its time, every fault
//! with its window and recovery, and every invariant violation.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aeturnis_redis_core::Classify;

use crate::HANG_BOUND;

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    Ok,
    /// A typed error, by class (`Unavailable`, `InvalidInput`, `Contended`,
    /// `Internal`).
    Error(&'static str),
    /// No answer within [`HANG_BOUND`].
    Hung,
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub(crate) at: Duration,
    pub(crate) layer: &'static str,
    pub(crate) outcome: Outcome,
}

/// One injected fault.
#[derive(Debug, Clone)]
pub(crate) struct FaultRun {
    pub(crate) kind: &'static str,
    pub(crate) start: Duration,
    /// When the fault was lifted (the server back, the proxy passing).
    pub(crate) healed: Duration,
    /// From `healed` to the first successful probe write; `None`: never
    /// within the probe deadline.
    pub(crate) recovery: Option<Duration>,
    /// Whether the fault can lose data (a killed server without
    /// persistence, a killed primary's replication lag).
    pub(crate) loses_data: bool,
    /// A killed primary's replication-lag window.
    pub(crate) lag: Option<LagWindow>,
    /// Why the injection itself failed, if it did.
    pub(crate) injection_error: Option<String>,
}

/// A killed primary's replication-lag window: from `synced` (every write
/// acknowledged before it was on the replica) to the kill. Writes
/// acknowledged from `synced` until the promotion may be lost (none can be
/// acknowledged by the dead primary after the kill); nothing acknowledged
/// before `synced` may.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LagWindow {
    pub(crate) synced: Duration,
    /// Just before the SIGKILL was sent.
    pub(crate) killed: Duration,
    /// When the replica was seen promoted.
    pub(crate) promoted: Duration,
}

impl FaultRun {
    /// The acknowledgement times whose writes this fault may lose: a killed
    /// primary's lag window; everything before the restart of a killed
    /// server without persistence; the whole window of a plain failover.
    pub(crate) fn may_lose(&self, at: Duration) -> bool {
        match self.lag {
            Some(w) => w.synced <= at && at <= w.promoted,
            None if self.kind == crate::env::Kind::KillRestart.name() => at <= self.healed,
            None => self.loses_data && self.start <= at && at <= self.healed,
        }
    }
}

/// A broken invariant, when it was seen.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub(crate) invariant: &'static str,
    pub(crate) at: Duration,
    pub(crate) detail: String,
}

/// The run's shared log.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) start: Instant,
    ops: Mutex<Vec<Op>>,
    faults: Mutex<Vec<FaultRun>>,
    violations: Mutex<Vec<Violation>>,
    samples: Mutex<BTreeMap<&'static str, String>>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Mutex::default(),
            faults: Mutex::default(),
            violations: Mutex::default(),
            samples: Mutex::default(),
        }
    }

    /// Time since the start of the run.
    pub(crate) fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn op(&self, layer: &'static str, outcome: Outcome) {
        let at = self.now();
        self.ops.lock().unwrap().push(Op { at, layer, outcome });
    }

    pub(crate) fn fault(&self, run: FaultRun) {
        self.faults.lock().unwrap().push(run);
    }

    pub(crate) fn violation(&self, invariant: &'static str, detail: String) {
        let at = self.now();
        eprintln!("VIOLATION {invariant} at {at:?}: {detail}");
        self.violations.lock().unwrap().push(Violation {
            invariant,
            at,
            detail,
        });
    }

    pub(crate) fn violation_at(&self, invariant: &'static str, at: Duration, detail: String) {
        eprintln!("VIOLATION {invariant} at {at:?}: {detail}");
        self.violations.lock().unwrap().push(Violation {
            invariant,
            at,
            detail,
        });
    }

    pub(crate) fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    pub(crate) fn faults(&self) -> Vec<FaultRun> {
        self.faults.lock().unwrap().clone()
    }

    pub(crate) fn violations(&self) -> Vec<Violation> {
        self.violations.lock().unwrap().clone()
    }

    /// One example message per error class, for the report.
    pub(crate) fn samples(&self) -> BTreeMap<&'static str, String> {
        self.samples.lock().unwrap().clone()
    }

    /// How many data-losing faults were healed by `at`: the epoch of `at`.
    pub(crate) fn epoch(&self, at: Duration) -> usize {
        self.faults
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.loses_data && f.healed <= at)
            .count()
    }

    /// Runs `call` with the hang bound: records its outcome under `layer`
    /// and returns its value, or `None` when it failed or hung.
    pub(crate) async fn call<T, E, F>(&self, layer: &'static str, call: F) -> Option<T>
    where
        E: Classify + Display,
        F: Future<Output = Result<T, E>>,
    {
        match tokio::time::timeout(HANG_BOUND, call).await {
            Ok(Ok(v)) => {
                self.op(layer, Outcome::Ok);
                Some(v)
            }
            Ok(Err(e)) => {
                let class = class_name(&e);
                self.samples
                    .lock()
                    .unwrap()
                    .entry(class)
                    .or_insert_with(|| format!("{layer}: {e}"));
                self.op(layer, Outcome::Error(class));
                None
            }
            Err(_) => {
                self.op(layer, Outcome::Hung);
                self.violation(
                    "no call hung",
                    format!("{layer}: no answer within {HANG_BOUND:?}"),
                );
                None
            }
        }
    }
}

/// Set while a data-losing fault is being injected.
pub(crate) static LOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The error class's name.
pub(crate) fn class_name<E: Classify>(e: &E) -> &'static str {
    use aeturnis_redis_core::ErrorClass;
    match e.class() {
        ErrorClass::InvalidInput => "InvalidInput",
        ErrorClass::Unavailable => "Unavailable",
        ErrorClass::Contended { .. } => "Contended",
        ErrorClass::Internal => "Internal",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Kind;

    fn fault(kind: Kind, start: u64, healed: u64, lag: Option<LagWindow>) -> FaultRun {
        FaultRun {
            kind: kind.name(),
            start: Duration::from_millis(start),
            healed: Duration::from_millis(healed),
            recovery: Some(Duration::from_millis(1)),
            loses_data: true,
            lag,
            injection_error: None,
        }
    }

    #[test]
    fn should_let_a_killed_primary_lose_only_what_was_acknowledged_in_its_lag_window() {
        let window = LagWindow {
            synced: Duration::from_millis(1000),
            killed: Duration::from_millis(1030),
            promoted: Duration::from_millis(4000),
        };
        let f = fault(Kind::KillPrimary, 990, 6000, Some(window));
        let ms = Duration::from_millis;
        assert!(
            !f.may_lose(ms(999)),
            "acknowledged before the replica had it"
        );
        assert!(f.may_lose(ms(1000)) && f.may_lose(ms(1030)) && f.may_lose(ms(4000)));
        assert!(
            !f.may_lose(ms(4001)),
            "acknowledged by the promoted replica"
        );
    }

    #[test]
    fn should_let_a_restarted_server_lose_everything_before_it_came_back() {
        let f = fault(Kind::KillRestart, 5000, 6000, None);
        assert!(f.may_lose(Duration::ZERO) && f.may_lose(Duration::from_millis(6000)));
        assert!(!f.may_lose(Duration::from_millis(6001)));
    }

    #[test]
    fn should_let_a_plain_failover_lose_only_what_was_acknowledged_while_it_ran() {
        let f = fault(Kind::SentinelFailover, 5000, 6000, None);
        assert!(!f.may_lose(Duration::from_millis(4999)));
        assert!(f.may_lose(Duration::from_millis(5500)));
        assert!(!f.may_lose(Duration::from_millis(6001)));
    }
}
