//! Sessions: every acknowledged `create` is present on the new primary, and
//! every acknowledged `revoke` stays revoked.

use aeturnis_session::{SessionConfig, SessionId, SessionManager, SessionMetadata, UserId};
use futures::future::join_all;

use super::support::*;

/// What became of one step's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Created and kept: must be present.
    Kept,
    /// Created, then revoked with an acknowledgement: must stay gone.
    Revoked,
    /// Created, but the revoke failed: either state is allowed.
    RevokeFailed,
    /// Created, but the revoke (on the new primary) found nothing: the
    /// acknowledged create was lost.
    Vanished,
}

/// A sequential worker across `fault`: step `i` creates a session for user
/// `fo-{i}` (one user each, so no per-user eviction), and every even step
/// revokes its session at once. Read back with `get` on a manager pinned to
/// the new primary.
async fn sessions_survive(fault: Fault) -> anyhow::Result<()> {
    let set = sentinel_set().await?;
    let redis = connect(&set).await?;
    let sessions = SessionManager::new(redis.clone(), SessionConfig::default())?;
    let s = sessions.clone();
    let (log, switched) = across(set, fault, WARM_UP, move |i| {
        let s = s.clone();
        Box::pin(async move {
            let user = UserId::new(format!("fo-{i}")).map_err(|e| e.to_string())?;
            let session = s
                .create(&user, SessionMetadata::new())
                .await
                .map_err(|e| e.to_string())?;
            let fate = if i % 2 == 0 {
                match s.revoke(&session.id).await {
                    Ok(true) => Fate::Revoked,
                    Ok(false) => Fate::Vanished,
                    Err(_) => Fate::RevokeFailed,
                }
            } else {
                Fate::Kept
            };
            Ok((session.id, fate))
        })
    })
    .await?;
    redis.shutdown().await?;

    let reader = SessionManager::new(pinned(switched.new_port).await?, SessionConfig::default())?;
    let mut missing: Vec<SessionId> = Vec::new();
    let mut resurrected: Vec<SessionId> = Vec::new();
    for chunk in log.acked.chunks(200) {
        let reads = join_all(chunk.iter().map(|(_, (id, _))| reader.get(id))).await;
        for ((_, (id, fate)), read) in chunk.iter().zip(reads) {
            match (fate, read?) {
                (Fate::Kept, None) | (Fate::Vanished, _) => missing.push(id.clone()),
                (Fate::Revoked, Some(_)) => resurrected.push(id.clone()),
                _ => {}
            }
        }
    }
    reader.redis().shutdown().await?;
    let count = |f: Fate| log.acked.iter().filter(|(_, (_, x))| *x == f).count();
    report_and_check_recovery(
        "sessions create/revoke",
        fault,
        &log,
        missing.len() + resurrected.len(),
        &format!(
            "; {} kept ({} missing), {} created then not found by their revoke, \
             {} revoked ({} back), {} revokes failed",
            count(Fate::Kept),
            missing.len(),
            count(Fate::Vanished),
            count(Fate::Revoked),
            resurrected.len(),
            count(Fate::RevokeFailed),
        ),
    );
    check_loss("sessions create", fault, &log, switched.at, missing.len());
    check_loss(
        "sessions revoke",
        fault,
        &log,
        switched.at,
        resurrected.len(),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_created_sessions_and_revocations_across_a_planned_failover(
) -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    sessions_survive(Fault::Planned).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_lose_only_session_writes_inside_the_replication_lag_when_the_primary_is_killed(
) -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    sessions_survive(Fault::Killed).await
}
