//! The mixed workload: one paced, sequential worker per activity, each
//! through a layer's public API, each keeping what it needs for the
//! invariants.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_cache::{Cache, Ttl};
use aeturnis_lock::{FencingToken, LockManager};
use aeturnis_patterns::{CacheAside, Pending, Policy, WriteBehind, Writer};
use aeturnis_ratelimit::{DecisionSource, LimitKey, RateLimiter};
use aeturnis_redis_core::RedisKey;
use aeturnis_session::{SessionId, SessionManager, SessionMetadata, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::record::{Recorder, LOSING};
use crate::LOCK_TTL;

/// Keys per writing worker.
pub(crate) const KEYS: u64 = 16;
/// Users of the session worker, and their session limit.
pub(crate) const USERS: usize = 4;
pub(crate) const MAX_PER_USER: u32 = 3;
/// Each worker's pace: one step per this long.
const PACE: Duration = Duration::from_millis(8);

/// The last acknowledged value of each key, with its time and epoch.
pub(crate) type Acked = HashMap<u64, (u64, std::time::Duration, usize)>;

/// The source of truth of the write-behind: the newest write of each key
/// (by stream id, so a repeated or late batch changes nothing).
#[derive(Clone, Default)]
pub(crate) struct Rows(pub(crate) Arc<Mutex<HashMap<String, (u128, u64)>>>);

impl Writer for Rows {
    type Value = u64;
    type Error = Infallible;

    async fn write_batch(&self, batch: &[Pending<u64>]) -> Result<(), Infallible> {
        let mut rows = self.0.lock().unwrap();
        for p in batch {
            let id = p.id.as_u128();
            let row = rows.entry(p.key.clone()).or_insert((0, 0));
            if id > row.0 {
                *row = (id, p.value);
            }
        }
        Ok(())
    }
}

/// One acknowledged locked increment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    /// From the acquire's reply to the release (or the TTL from the
    /// acquire's send, if sooner).
    pub(crate) held: (Duration, Duration),
    pub(crate) value: Option<u64>,
    pub(crate) epoch: usize,
}

/// One admission of the limiter: from send to reply.
pub(crate) type Admission = (Duration, Duration, usize);

/// What the workers hand to the checks.
#[derive(Default)]
pub(crate) struct Logs {
    pub(crate) cache: Mutex<Acked>,
    pub(crate) behind: Mutex<Acked>,
    pub(crate) grants: Mutex<Vec<Grant>>,
    /// Increments whose fenced write failed (it may have landed).
    pub(crate) ambiguous: Mutex<Vec<(u64, usize)>>,
    pub(crate) admissions: Mutex<Vec<Admission>>,
    /// When fenced writes were refused within their TTL after a data-losing
    /// fault.
    pub(crate) regressed: Mutex<Vec<Duration>>,
    /// The ledger: every acknowledged write of a key written once, with
    /// its time.
    pub(crate) ledger: Mutex<Vec<(u64, Duration)>>,
    /// Revoked sessions read back: when the revoke was acknowledged, when
    /// the session was read.
    pub(crate) revived: Mutex<Vec<(Duration, Duration)>>,
    /// Writes sent with an older fence (each must be refused).
    pub(crate) stale_probes: std::sync::atomic::AtomicU64,
}

/// The layers, all on one `Redis` handle.
#[derive(Clone)]
pub(crate) struct Layers {
    pub(crate) cache: Cache,
    pub(crate) aside: CacheAside<u64>,
    pub(crate) policy: Policy,
    pub(crate) behind: WriteBehind<Rows>,
    pub(crate) sessions: SessionManager,
    pub(crate) limiter: RateLimiter,
    pub(crate) locks: LockManager,
}

impl Layers {
    pub(crate) fn key(&self, ns: &str, i: u64) -> RedisKey {
        self.cache.key(ns).id(i.to_string()).build().unwrap()
    }
}

/// The running workers.
pub(crate) struct Workload {
    stop: Arc<AtomicBool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

/// What every worker gets.
pub(crate) struct W {
    layers: Layers,
    rec: Arc<Recorder>,
    logs: Arc<Logs>,
    rng: StdRng,
    stop: Arc<AtomicBool>,
    pace: tokio::time::Interval,
}

impl W {
    /// Waits for the next step; false once stopped.
    async fn next(&mut self) -> bool {
        self.pace.tick().await;
        !self.stop.load(Ordering::Relaxed)
    }

    /// The epoch now, or `None` while a data-losing fault is in progress.
    fn epoch(&self) -> Option<usize> {
        (!LOSING.load(Ordering::Relaxed)).then(|| self.rec.epoch(self.rec.now()))
    }
}

impl Workload {
    pub(crate) fn start(layers: &Layers, rec: &Arc<Recorder>, logs: &Arc<Logs>, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let w = |n: u64| {
            let mut pace = tokio::time::interval(PACE);
            pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
            W {
                layers: layers.clone(),
                rec: rec.clone(),
                logs: logs.clone(),
                rng: StdRng::seed_from_u64(seed.wrapping_add(n)),
                stop: stop.clone(),
                pace,
            }
        };
        let handles = vec![
            ("cache", tokio::spawn(cache_worker(w(1)))),
            ("ledger", tokio::spawn(ledger_worker(w(8)))),
            ("get_or_load", tokio::spawn(aside_worker(w(2)))),
            ("write-behind", tokio::spawn(behind_worker(w(3)))),
            ("session", tokio::spawn(session_worker(w(4)))),
            ("ratelimit", tokio::spawn(limit_worker(w(5)))),
            ("lock A", tokio::spawn(lock_worker(w(6)))),
            ("lock B", tokio::spawn(lock_worker(w(7)))),
        ];
        Workload { stop, handles }
    }

    /// Stops the workers; returns how many panicked.
    pub(crate) async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let mut panics = 0;
        for (name, h) in self.handles {
            if let Err(e) = h.await {
                eprintln!("worker {name} ended abnormally: {e}");
                panics += 1;
            }
        }
        panics
    }
}

/// Plain cache writes (a growing value per key) and reads.
async fn cache_worker(mut w: W) {
    let mut seq = 0u64;
    while w.next().await {
        seq += 1;
        let k = seq % KEYS;
        let key = w.layers.key("cw", k);
        let epoch = w.epoch();
        let cache = w.layers.cache.clone();
        let done = w
            .rec
            .call("cache", async { cache.set(&key, &seq, Ttl::Default).await })
            .await;
        if done.is_some() && epoch.is_some() && epoch == w.epoch() {
            let at = w.rec.now();
            w.logs
                .cache
                .lock()
                .unwrap()
                .insert(k, (seq, at, epoch.unwrap_or(0)));
        }
        let read = w.layers.key("cw", w.rng.gen_range(0..KEYS));
        let _ = w
            .rec
            .call("cache", async { cache.get::<u64>(&read).await })
            .await;
    }
}

/// How long a ledger key lives: longer than any run.
pub(crate) const LEDGER_TTL: Duration = Duration::from_secs(4 * 3600);

/// Plain cache writes of keys written once each (`ledger:<seq>`): every
/// acknowledged one must still be there at the end, unless a data-losing
/// fault may have lost it (a killed primary: only within its lag window).
async fn ledger_worker(mut w: W) {
    let mut seq = 0u64;
    let cache = w.layers.cache.clone();
    while w.next().await {
        seq += 1;
        let key = w.layers.key("ledger", seq);
        let done = w
            .rec
            .call("cache (ledger)", async {
                cache.set(&key, &seq, Ttl::After(LEDGER_TTL)).await
            })
            .await;
        if done.is_some() {
            let at = w.rec.now();
            w.logs.ledger.lock().unwrap().push((seq, at));
        }
    }
}

/// The value `get_or_load` must return for key `k`.
pub(crate) fn loaded_value(k: u64) -> u64 {
    k * 1000 + 7
}

/// `get_or_load` over a few keys whose loader always returns the same value
/// (every 50th step invalidates one, so loads keep happening).
async fn aside_worker(mut w: W) {
    let mut i = 0u64;
    while w.next().await {
        i += 1;
        let k = w.rng.gen_range(0..KEYS);
        let key = w.layers.key("aside", k);
        let (aside, policy) = (w.layers.aside.clone(), w.layers.policy.clone());
        if i % 50 == 0 {
            let _ = w.rec.call("get_or_load", aside.invalidate(&key)).await;
            continue;
        }
        let got = w
            .rec
            .call("get_or_load", async {
                aside
                    .get_or_load(&key, &policy, move || async move {
                        Ok::<_, Infallible>(Some(loaded_value(k)))
                    })
                    .await
            })
            .await;
        if let Some(got) = got {
            if got != Some(loaded_value(k)) {
                w.rec.violation(
                    "get_or_load returns the loaded value",
                    format!("key {k}: got {got:?}, want {}", loaded_value(k)),
                );
            }
        }
    }
}

/// Write-behind writes (a growing value per key).
async fn behind_worker(mut w: W) {
    let mut seq = 0u64;
    while w.next().await {
        seq += 1;
        let k = seq % KEYS;
        let key = w.layers.key("wb", k);
        let epoch = w.epoch();
        let behind = w.layers.behind.clone();
        let done = w
            .rec
            .call("write-behind", Box::pin(behind.write(&key, &seq)))
            .await;
        if done.is_some() && epoch.is_some() && epoch == w.epoch() {
            let at = w.rec.now();
            w.logs
                .behind
                .lock()
                .unwrap()
                .insert(k, (seq, at, epoch.unwrap_or(0)));
        }
    }
}

/// Sessions: create, get (a live or a revoked one), revoke, list.
async fn session_worker(mut w: W) {
    let users: Vec<UserId> = (0..USERS)
        .map(|u| UserId::new(format!("chaos-user-{u}")).unwrap())
        .collect();
    let mut live: Vec<(SessionId, usize)> = Vec::new();
    let mut revoked: Vec<(SessionId, Duration)> = Vec::new();
    let sessions = w.layers.sessions.clone();
    while w.next().await {
        let roll = w.rng.gen_range(0..100);
        let u = w.rng.gen_range(0..USERS);
        if roll < 35 || live.is_empty() {
            let user = &users[u];
            let made = w
                .rec
                .call("session", sessions.create(user, SessionMetadata::new()))
                .await;
            if let Some(s) = made {
                live.push((s.id, u));
                if live.len() > 64 {
                    live.remove(0);
                }
            }
        } else if roll < 70 {
            let pick_revoked = !revoked.is_empty() && w.rng.gen_bool(0.5);
            let (id, revoked_at) = if pick_revoked {
                let (id, at) = &revoked[w.rng.gen_range(0..revoked.len())];
                (id.clone(), Some(*at))
            } else {
                (live[w.rng.gen_range(0..live.len())].0.clone(), None)
            };
            let got = w.rec.call("session", sessions.get(&id)).await;
            if let (Some(Some(_)), Some(at)) = (got, revoked_at) {
                // judged at the end: a revoke acknowledged within a killed
                // primary's lag window may be lost
                let seen = w.rec.now();
                w.logs.revived.lock().unwrap().push((at, seen));
            }
        } else if roll < 85 {
            let (id, _) = live.swap_remove(w.rng.gen_range(0..live.len()));
            if w.rec.call("session", sessions.revoke(&id)).await.is_some() {
                revoked.push((id, w.rec.now()));
                if revoked.len() > 64 {
                    revoked.remove(0);
                }
            }
        } else {
            let listed = w.rec.call("session", sessions.list(&users[u])).await;
            if let Some(list) = listed {
                if list.len() > MAX_PER_USER as usize {
                    w.rec.violation(
                        "per-user session limit",
                        format!("user {u} has {} sessions, limit {MAX_PER_USER}", list.len()),
                    );
                }
            }
        }
    }
}

/// Limiter checks of one client, faster than its quota.
async fn limit_worker(mut w: W) {
    let key = LimitKey::new("chaos-client").unwrap();
    let limiter = w.layers.limiter.clone();
    while w.next().await {
        let sent = w.rec.now();
        let epoch = w.epoch();
        let decision = w.rec.call("ratelimit", limiter.check(&key)).await;
        let Some(d) = decision else { continue };
        if d.source == DecisionSource::FailClosed {
            w.rec
                .op("ratelimit", crate::record::Outcome::Error("FailClosed"));
        }
        if d.allowed && d.source == DecisionSource::Redis {
            let back = w.rec.now();
            match epoch {
                Some(e) if Some(e) == w.epoch() => {
                    w.logs.admissions.lock().unwrap().push((sent, back, e));
                }
                _ => {}
            }
        }
    }
}

/// Locked increments of one counter, fenced; after each, a write with an
/// older fence of this worker must be refused.
async fn lock_worker(mut w: W) {
    const RES: &str = "chaos-counter";
    let locks = w.layers.locks.clone();
    let mut old: Option<(FencingToken, usize)> = None;
    while w.next().await {
        let sent = w.rec.now();
        let epoch = w.epoch();
        let guard =
            match tokio::time::timeout(crate::HANG_BOUND, locks.try_acquire(RES, LOCK_TTL)).await {
                Ok(Ok(g)) => {
                    w.rec.op("lock", crate::record::Outcome::Ok);
                    g
                }
                Ok(Err(e)) if aeturnis_redis_core::Classify::is_contended(&e) => {
                    w.rec.op("lock", crate::record::Outcome::Ok);
                    continue;
                }
                Ok(Err(e)) => {
                    let _ = w.rec.call("lock", async { Err::<(), _>(e) }).await;
                    continue;
                }
                Err(_) => {
                    w.rec.op("lock", crate::record::Outcome::Hung);
                    w.rec.violation(
                        "no call hung",
                        format!(
                            "lock: try_acquire gave no answer within {:?}",
                            crate::HANG_BOUND
                        ),
                    );
                    continue;
                }
            };
        let from = w.rec.now();
        let Some(fence) = w.rec.call("lock", guard.fence()).await else {
            let _ = Box::pin(w.rec.call("lock", guard.release())).await;
            continue;
        };
        let read = w.rec.call("lock", locks.fenced_read::<u64>(RES)).await;
        let mut value = None;
        if let Some(current) = read {
            let next = current.map_or(0, |(_, v)| v).saturating_add(1);
            match w
                .rec
                .call("lock", locks.fenced_write(RES, fence, &next))
                .await
            {
                Some(Ok(())) => value = Some(next),
                Some(Err(stale)) => {
                    // refused although held: only right if the grant lapsed
                    let held = w.rec.now() - sent;
                    // a data-losing fault began before the refusal: one
                    // healed or in progress when the acquire was sent, or
                    // since (an acquire sent while the server was down is
                    // answered by the emptied one)
                    let after_loss = epoch != Some(0) || w.epoch() != Some(0);
                    if held < LOCK_TTL && after_loss {
                        // after a data-losing fault the fence counter starts
                        // again from 1, below a fenced record written since
                        // with an older grant's fence: refused, not overlapped
                        w.logs.regressed.lock().unwrap().push(w.rec.now());
                    } else if held < LOCK_TTL {
                        w.rec.violation(
                            "no two holders overlapped",
                            format!(
                                "fence {} refused within its TTL (current {})",
                                fence.get(),
                                stale.current.get()
                            ),
                        );
                    }
                }
                None => {
                    if let Some(e) = epoch {
                        w.logs.ambiguous.lock().unwrap().push((next, e));
                    }
                }
            }
        }
        if let (Some(_), Some((prev, prev_epoch)), Some(e)) = (value, old, epoch) {
            if prev_epoch == e && prev.get() < fence.get() {
                w.logs.stale_probes.fetch_add(1, Ordering::Relaxed);
                let stale = w
                    .rec
                    .call("lock", locks.fenced_write(RES, prev, &u64::MAX))
                    .await;
                if let Some(Ok(())) = stale {
                    w.rec.violation(
                        "stale fences refused",
                        format!("fence {} accepted after {}", prev.get(), fence.get()),
                    );
                }
            }
        }
        let until = w.rec.now();
        let _ = Box::pin(w.rec.call("lock", guard.release())).await;
        let to = until.min(sent + LOCK_TTL);
        if let Some(e) = epoch {
            if Some(e) == w.epoch() {
                w.logs.grants.lock().unwrap().push(Grant {
                    held: (from, to),
                    value,
                    epoch: e,
                });
                old = Some((fence, e));
            }
        }
    }
}
