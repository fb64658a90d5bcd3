//! What the layer failover tests share: the sentinel set and its fault, the
//! steady worker that drives a layer's public API, the figures and bounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::clients::Client;
use aeturnis_redis_core::fred::interfaces::ClientLike;
use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig};
use aeturnis_testkit::{eventually, Sentinel};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Steps acknowledged before the fault, and again after it, so the worker
/// is steady on both sides of the switch.
pub(crate) const WARM_UP: u64 = 300;
/// `min-replicas-max-lag` in `deploy/redis/sentinel-node.conf`: after a
/// killed primary, only steps acknowledged within this long before the kill
/// can be lost (the replication-lag caveat).
pub(crate) const LAG: Duration = Duration::from_secs(2);
/// Longest pause between two acknowledged steps across a planned failover:
/// the write pause, the promotion, the old primary's `REPLICAOF` and the
/// client's move (measured 1.2-1.3 s; room for a stall of the loaded CI
/// host).
pub(crate) const PLANNED_OUTAGE: Duration = Duration::from_secs(5);
/// Longest pause between two acknowledged steps across a killed primary:
/// `down-after-milliseconds` 3000 plus the election (4.3-4.5 s), then the
/// new primary refuses writes (`min-replicas-to-write 1`) until the killed
/// one rejoins as its replica, then one reconnect step (measured 2.0-3.1 s
/// with `down-after-milliseconds` 1000; 2 s more with 3000).
pub(crate) const KILLED_OUTAGE: Duration = Duration::from_secs(10);
/// At most one step per this long. A worker flat out keeps a core busy
/// (itself and its redis-server); on a loaded 2-core machine that starves
/// the sentinels into spurious `+sdown` of the new primary (a second
/// failover, onto the restarted empty server) and TILT, so the workers are
/// paced: steady, not saturating.
const PACE: Duration = Duration::from_millis(1);
/// How long to wait for the worker's steps after the fault.
const PROGRESS: Duration = Duration::from_secs(20);

/// The fault a test injects under its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `Sentinel::failover_paused`: the documented zero-loss procedure.
    Planned,
    /// `Sentinel::kill_primary`, then `Sentinel::rejoin` (with
    /// `min-replicas-to-write 1` the new primary accepts writes from then on).
    Killed,
}

impl Fault {
    pub(crate) fn outage_bound(self) -> Duration {
        match self {
            Fault::Planned => PLANNED_OUTAGE,
            Fault::Killed => KILLED_OUTAGE,
        }
    }
}

/// Starts a sentinel set (1 primary, 1 replica, 3 sentinels) off the runtime.
pub(crate) async fn sentinel_set() -> anyhow::Result<Sentinel> {
    tokio::task::spawn_blocking(Sentinel::start).await?
}

/// The handle a service would use: sentinel mode, the core failover tests'
/// timeouts and a short reconnect backoff.
pub(crate) async fn connect(set: &Sentinel) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(&set.url())?
        .with_command_timeout(Duration::from_secs(2))
        .with_reconnect(
            ReconnectConfig::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(400))
                .with_jitter(Duration::from_millis(50)),
        );
    Ok(Redis::connect(config).await?)
}

/// A plain standalone handle on one server of the set (no sentinel, never
/// moved): to read back from the new primary, or to pin a stale client.
pub(crate) async fn pinned(port: u16) -> anyhow::Result<Redis> {
    Ok(Redis::connect(RedisConfig::standalone("127.0.0.1", port)).await?)
}

/// Whether every client of `redis` is connected to `port` only.
pub(crate) fn all_on(redis: &Redis, port: u16) -> bool {
    let on = |c: &Client| {
        let servers = c.active_connections();
        !servers.is_empty() && servers.iter().all(|s| s.port == port)
    };
    match redis.pool() {
        Some(pool) => pool.clients().iter().all(on),
        None => on(redis.client()),
    }
}

/// One step of a worker: the public API call(s) for step `i`, and what to
/// remember when it was acknowledged.
pub(crate) type Step<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// What a worker saw.
#[derive(Debug)]
pub(crate) struct Log<T> {
    /// Every acknowledged step, in order, with the time of its reply.
    pub(crate) acked: Vec<(Instant, T)>,
    pub(crate) errors: u64,
    pub(crate) last_error: Option<String>,
}

impl<T> Log<T> {
    /// The longest time between two acknowledged steps.
    pub(crate) fn outage(&self) -> Duration {
        self.acked
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .unwrap_or_default()
    }

    /// Steps acknowledged within [`LAG`] before `at`.
    pub(crate) fn within_lag_before(&self, at: Instant) -> usize {
        self.acked
            .iter()
            .filter(|(t, _)| *t <= at && at.saturating_duration_since(*t) <= LAG)
            .count()
    }
}

/// A sequential worker calling `step(1)`, `step(2)`, ... until stopped, at
/// most one step per [`PACE`]; a failed step is counted and the next one
/// follows 1 ms later (refusals such as `NOREPLICAS` come back at once: do
/// not spin).
pub(crate) struct Worker<T> {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    handle: JoinHandle<Log<T>>,
}

impl<T: Send + 'static> Worker<T> {
    pub(crate) fn start<F>(step: F) -> Worker<T>
    where
        F: Fn(u64) -> Step<T> + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let (s, a) = (stop.clone(), acks.clone());
        let handle = tokio::spawn(async move {
            let mut log = Log {
                acked: Vec::new(),
                errors: 0,
                last_error: None,
            };
            let mut i = 0_u64;
            let mut pace = tokio::time::interval(PACE);
            pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
            while !s.load(Ordering::Relaxed) {
                pace.tick().await;
                i += 1;
                match step(i).await {
                    Ok(done) => {
                        log.acked.push((Instant::now(), done));
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        log.errors += 1;
                        log.last_error = Some(error);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            log
        });
        Worker { stop, acks, handle }
    }

    /// Waits until `more` further steps are acknowledged.
    pub(crate) async fn wait_acks(&self, more: u64) -> anyhow::Result<()> {
        let want = self.acks.load(Ordering::Relaxed) + more;
        eventually("the worker to make progress", PROGRESS, || {
            let got = self.acks.load(Ordering::Relaxed);
            async move {
                if got >= want {
                    Ok(())
                } else {
                    Err(format!("{got} of {want} acknowledged"))
                }
            }
        })
        .await
    }

    pub(crate) async fn finish(self) -> anyhow::Result<Log<T>> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.handle.await?)
    }
}

/// When the fault was injected, and the port of the primary after it.
#[derive(Debug)]
pub(crate) struct Switched {
    /// Kept alive until the read-back (dropping it kills the servers).
    pub(crate) _set: Sentinel,
    pub(crate) new_port: u16,
    pub(crate) at: Instant,
}

/// Injects `fault` into `set` (off the runtime) and returns once the set
/// has settled on the new primary (for [`Fault::Killed`], once the killed
/// server has rejoined as its replica).
pub(crate) async fn inject(mut set: Sentinel, fault: Fault) -> anyhow::Result<Switched> {
    let new_port = set.replica().port();
    let at = Instant::now();
    let (set, done) = tokio::task::spawn_blocking(move || {
        let done = match fault {
            Fault::Planned => set.failover_paused(),
            Fault::Killed => set.kill_primary().and_then(|promoted| {
                anyhow::ensure!(promoted == new_port, "promoted {promoted}, want {new_port}");
                set.rejoin()
            }),
        };
        (set, done)
    })
    .await?;
    if let Err(error) = done {
        // the sentinels' own account (elections, TILT) is what tells why
        let logs: Vec<String> = set.sentinels().iter().map(|s| s.log()).collect();
        anyhow::bail!(
            "{fault:?} failover: {error:#}\nsentinel logs:\n{}",
            logs.join("\n---\n")
        );
    }
    Ok(Switched {
        _set: set,
        new_port,
        at,
    })
}

/// Runs `step` steadily across `fault`: [`WARM_UP`] acknowledged steps,
/// the fault, then `after` more acknowledged steps.
pub(crate) async fn across<T, F>(
    set: Sentinel,
    fault: Fault,
    after: u64,
    step: F,
) -> anyhow::Result<(Log<T>, Switched)>
where
    T: Send + 'static,
    F: Fn(u64) -> Step<T> + Send + Sync + 'static,
{
    let worker = Worker::start(step);
    worker.wait_acks(WARM_UP).await?;
    let switched = inject(set, fault).await?;
    worker.wait_acks(after).await?;
    let log = worker.finish().await?;
    Ok((log, switched))
}

/// The common line of figures, and the recovery assertion.
pub(crate) fn report_and_check_recovery<T>(
    layer: &str,
    fault: Fault,
    log: &Log<T>,
    lost: usize,
    detail: &str,
) {
    let outage = log.outage();
    println!(
        "{layer}, {fault:?} failover: {} steps acknowledged, {lost} acknowledged lost, \
         {} failed (last: {:?}); longest pause between acknowledged steps {outage:?} \
         (bound {:?}){detail}",
        log.acked.len(),
        log.errors,
        log.last_error,
        fault.outage_bound(),
    );
    assert!(
        outage <= fault.outage_bound(),
        "{layer}: no acknowledged step for {outage:?} across the {fault:?} failover, bound {:?}",
        fault.outage_bound()
    );
}

/// The loss allowed for `fault`: none for the planned failover; for a
/// killed primary, at most the steps acknowledged within [`LAG`] before
/// the kill.
pub(crate) fn check_loss<T>(layer: &str, fault: Fault, log: &Log<T>, at: Instant, lost: usize) {
    match fault {
        Fault::Planned => assert_eq!(lost, 0, "{layer}: acknowledged steps lost"),
        Fault::Killed => {
            let window = log.within_lag_before(at);
            assert!(
                lost <= window,
                "{layer}: {lost} acknowledged steps lost, only {window} were within the \
                 replication-lag bound ({LAG:?}) before the kill"
            );
        }
    }
}
