//! [`eventually`]: the one polling helper of the test suites.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] probes.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Runs `probe` every [`POLL_EVERY`] until it returns `Ok`, and returns that
/// value; fails naming `what` and the last error once `within` has passed.
/// Every wait in a test has a deadline: this is it.
///
/// For a plain condition, answer `Err` while it does not hold:
///
/// ```no_run
/// # async fn demo(mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
/// use std::time::Duration;
/// aeturnis_testkit::eventually("the server is ready", Duration::from_secs(5), || {
///     let ok = ready();
///     async move { if ok { Ok(()) } else { Err("not yet") } }
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// The last probe error, with `what` and the deadline, once `within` has
/// passed.
pub async fn eventually<T, E, F, Fut>(
    what: &str,
    within: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL_EVERY).await,
            Err(e) => anyhow::bail!("{what}: still not done after {within:?}: {e}"),
        }
    }
}

/// Serialises the tests of one test binary that start a topology of their
/// own and fail it over: hold the guard for the whole test. Sentinel
/// failovers judge liveness by timeouts (`down-after-milliseconds`), and
/// several sets failing over at once on two cores starve each other into
/// spurious failovers and TILT mode.
pub async fn one_failover_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    GATE.lock().await
}
