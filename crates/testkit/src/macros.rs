//! `topology_tests!`: one behaviour body, one test per topology.

/// Runs each `async fn name(ctx: TestCtx)` as a test on the shared standalone server
/// and the shared cluster, and with the `sentinel:` form also on the sentinel set.
///
/// For each name it generates `mod name { standalone, cluster [, sentinel] }`, so the
/// tests are called `name::standalone`, `name::cluster`, ... and can be filtered by
/// behaviour or by topology. Each is a
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` (the calling crate
/// needs `tokio` with the `macros` and `rt-multi-thread` features) and gets a
/// [`TestCtx`](crate::TestCtx) with its own key prefix. A body may return `()` or
/// `Result<(), E: Debug>`.
///
/// ```no_run
/// use aeturnis_testkit::TestCtx;
///
/// async fn should_round_trip(ctx: TestCtx) -> anyhow::Result<()> {
///     # let _ = ctx;
///     Ok(())
/// }
/// async fn should_follow_failover(ctx: TestCtx) {
///     # let _ = ctx;
/// }
///
/// aeturnis_testkit::topology_tests!(should_round_trip);            // standalone + cluster
/// aeturnis_testkit::topology_tests!(sentinel: should_follow_failover); // + sentinel
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! topology_tests {
    (sentinel: $($name:ident),+ $(,)?) => {
        $( $crate::__topology_test!($name: standalone, cluster, sentinel); )+
    };
    ($($name:ident),+ $(,)?) => {
        $( $crate::__topology_test!($name: standalone, cluster); )+
    };
}

/// Implementation detail of [`topology_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __topology_test {
    ($name:ident: $($topology:ident),+) => {
        mod $name {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $topology() {
                    let ctx = $crate::TestCtx::$topology(stringify!($name)).await;
                    $crate::TestOutcome::report(super::$name(ctx).await);
                }
            )+
        }
    };
}
