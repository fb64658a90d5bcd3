//! Rate limiter: the admissions across a switch never exceed the quota.
//!
//! What is guaranteed (decisions taken by Redis, i.e. `FailurePolicy::Propagate`
//! or `FailClosed`; the other policies decide in-process while the switch
//! refuses writes):
//! - planned failover (`failover_paused`): the limiter state moves whole, so
//!   admitted ≤ quota within the window;
//! - killed primary: the new primary may have forgotten the admissions the
//!   old one acknowledged within `min-replicas-max-lag` (2 s) before the
//!   kill, so admitted ≤ quota + those (0 forgotten in our runs).
//!
//! With the default `LocalFallback` the checks refused during the switch
//! (`NOREPLICAS`, a closed connection) are decided by the in-process fallback,
//! which grants up to one more quota per instance, as it does for any
//! outage; `FailOpen` admits them all.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use aeturnis_ratelimit::{
    DecisionSource, FailurePolicy, LimitKey, Quota, RateLimitConfig, RateLimiter,
};

use super::support::*;

const LIMIT: u32 = 1000;

/// One key, a sliding log of [`LIMIT`] per minute, checked steadily: about a
/// third of the quota is admitted before `fault`, and after it the worker
/// makes [`LIMIT`] + [`WARM_UP`] more checks, so the quota is used up on the
/// new primary. Had the switch reset the state, the new primary would admit
/// a whole quota again.
async fn quota_holds(fault: Fault) -> anyhow::Result<()> {
    let set = sentinel_set().await?;
    let redis = connect(&set).await?;
    let quota = Quota::new(NonZeroU32::new(LIMIT).unwrap(), Duration::from_secs(60))?;
    let limiter = RateLimiter::new(
        redis.clone(),
        RateLimitConfig::new("fo", quota)
            .with_failure_policy(FailurePolicy::Propagate)
            .with_deny_cache(false),
    )?;
    let key = LimitKey::user("fo")?;
    let started = Instant::now();
    let (log, switched) = across(set, fault, u64::from(LIMIT) + WARM_UP, move |_| {
        let (limiter, key) = (limiter.clone(), key.clone());
        Box::pin(async move {
            let decision = limiter.check(&key).await.map_err(|e| e.to_string())?;
            if decision.source != DecisionSource::Redis {
                return Err(format!("decided by {:?}", decision.source));
            }
            Ok(decision.allowed)
        })
    })
    .await?;
    redis.shutdown().await?;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run outlasted the window"
    );

    let admitted = log.acked.iter().filter(|(_, allowed)| *allowed).count();
    let before = log
        .acked
        .iter()
        .filter(|(t, allowed)| *allowed && *t < switched.at)
        .count();
    let excess = admitted.saturating_sub(LIMIT as usize);
    let forgettable = log
        .acked
        .iter()
        .filter(|(t, allowed)| {
            *allowed && *t <= switched.at && switched.at.saturating_duration_since(*t) <= LAG
        })
        .count();
    report_and_check_recovery(
        "rate limiter",
        fault,
        &log,
        excess,
        &format!(
            "; admitted {admitted} of a quota of {LIMIT} ({before} before the fault, \
             {forgettable} within the lag window), denied {}",
            log.acked.len() - admitted
        ),
    );
    let denied_after = log
        .acked
        .iter()
        .filter(|(t, allowed)| !*allowed && *t > switched.at)
        .count();
    assert!(
        denied_after > 0,
        "the quota was never used up on the new primary"
    );
    match fault {
        Fault::Planned => assert!(
            admitted <= LIMIT as usize,
            "admitted {admitted} with a quota of {LIMIT}"
        ),
        Fault::Killed => assert!(
            excess <= forgettable,
            "admitted {admitted} with a quota of {LIMIT}: {excess} over, only {forgettable} \
             admissions were within the replication-lag bound before the kill"
        ),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_admit_more_than_the_quota_across_a_planned_failover() -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    quota_holds(Fault::Planned).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_exceed_the_quota_only_by_admissions_inside_the_replication_lag_when_the_primary_is_killed(
) -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    quota_holds(Fault::Killed).await
}
