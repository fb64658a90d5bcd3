//! Shared topologies for behaviour tests that do not inject faults.

use std::fmt::Debug;
use std::sync::OnceLock;

use crate::cluster::Cluster;
use crate::masters::Masters;
use crate::process::random_hex8;
use crate::sentinel::Sentinel;
use crate::server::RedisServer;
use crate::{CLUSTER_URL_ENV, REDLOCK_URLS_ENV, SENTINEL_URL_ENV, STANDALONE_URL_ENV};

/// Which topology a [`TestCtx`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One standalone server.
    Standalone,
    /// A 6-node cluster (3 primaries, 3 replicas).
    Cluster,
    /// 1 primary and 1 replica behind 3 sentinels (service `mymaster`).
    Sentinel,
}

/// What a behaviour test gets: a shared topology and a key prefix of its own.
///
/// The servers are shared by every test in the process (or by the whole
/// `cargo xtask test` run), so a test must keep its keys under `prefix` and must not
/// inject faults (start its own [`RedisServer`], [`Cluster`] or [`Sentinel`] for that).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestCtx {
    /// The topology behind `url`.
    pub topology: Topology,
    /// A URL fred understands: `redis://`, `redis-cluster://` or `redis-sentinel://`.
    pub url: String,
    /// A prefix unique to this test run: `t:{test_name}:{8 random hex}:`.
    pub prefix: String,
}

impl TestCtx {
    /// The shared standalone server: from `AETURNIS_TEST_STANDALONE_URL`, or started
    /// once per test process.
    ///
    /// # Panics
    /// Panics when the server cannot be started (this is test support: the test fails
    /// with the reason and the server log).
    pub async fn standalone(test_name: &str) -> TestCtx {
        TestCtx::new(Topology::Standalone, test_name).await
    }

    /// The shared cluster: from `AETURNIS_TEST_CLUSTER_URL`, or started once per test
    /// process.
    ///
    /// # Panics
    /// Panics when the cluster cannot be started.
    pub async fn cluster(test_name: &str) -> TestCtx {
        TestCtx::new(Topology::Cluster, test_name).await
    }

    /// The shared sentinel set: from `AETURNIS_TEST_SENTINEL_URL`, or started once per
    /// test process.
    ///
    /// # Panics
    /// Panics when the sentinel set cannot be started.
    pub async fn sentinel(test_name: &str) -> TestCtx {
        TestCtx::new(Topology::Sentinel, test_name).await
    }

    async fn new(topology: Topology, test_name: &str) -> TestCtx {
        let url = shared(topology).await;
        TestCtx {
            topology,
            url,
            prefix: format!("t:{test_name}:{}:", random_hex8()),
        }
    }
}

/// URLs of 3 shared independent masters for Redlock tests that do not inject faults:
/// from `AETURNIS_TEST_REDLOCK_URLS` (comma-separated), or started once per process.
///
/// # Panics
/// Panics when the masters cannot be started.
pub async fn redlock_urls() -> Vec<String> {
    let urls = shared_or_start(REDLOCK_URLS_ENV, &REDLOCK, || {
        let masters = Masters::start(3)?;
        let urls = masters.urls().join(",");
        Ok(Shared {
            url: urls,
            _keep: Box::new(masters),
        })
    })
    .await;
    urls.split(',').map(str::to_owned).collect()
}

/// A started topology kept alive in a static (reaped when the process exits).
struct Shared {
    url: String,
    _keep: Box<dyn Debug + Send + Sync>,
}

type Slot = OnceLock<Result<Shared, String>>;

static STANDALONE: Slot = OnceLock::new();
static CLUSTER: Slot = OnceLock::new();
static SENTINEL: Slot = OnceLock::new();
static REDLOCK: Slot = OnceLock::new();

async fn shared(topology: Topology) -> String {
    match topology {
        Topology::Standalone => {
            shared_or_start(STANDALONE_URL_ENV, &STANDALONE, || {
                let server = RedisServer::start_standalone()?;
                Ok(Shared {
                    url: server.url(),
                    _keep: Box::new(server),
                })
            })
            .await
        }
        Topology::Cluster => {
            shared_or_start(CLUSTER_URL_ENV, &CLUSTER, || {
                let cluster = Cluster::start()?;
                Ok(Shared {
                    url: cluster.url(),
                    _keep: Box::new(cluster),
                })
            })
            .await
        }
        Topology::Sentinel => {
            shared_or_start(SENTINEL_URL_ENV, &SENTINEL, || {
                let set = Sentinel::start()?;
                Ok(Shared {
                    url: set.url(),
                    _keep: Box::new(set),
                })
            })
            .await
        }
    }
}

// Test support: a missing topology fails the test.
#[allow(clippy::panic)]
async fn shared_or_start(
    env: &'static str,
    slot: &'static Slot,
    start: fn() -> anyhow::Result<Shared>,
) -> String {
    if let Ok(url) = std::env::var(env) {
        if !url.is_empty() {
            return url;
        }
    }
    let started = tokio::task::spawn_blocking(move || {
        slot.get_or_init(|| start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map(|shared| shared.url.clone())
            .map_err(Clone::clone)
    })
    .await;
    match started {
        Ok(Ok(url)) => url,
        Ok(Err(e)) => panic!("could not start the shared topology ({env} is not set): {e}"),
        Err(e) => panic!("starting the shared topology panicked: {e}"),
    }
}

/// What a test body may return: `()` or a `Result` whose error fails the test.
/// Used by [`topology_tests!`](crate::topology_tests).
pub trait TestOutcome {
    /// Fails the test (panics) when the outcome is an error.
    fn report(self);
}

impl TestOutcome for () {
    fn report(self) {}
}

impl<E: Debug> TestOutcome for Result<(), E> {
    // A failed test body fails the test.
    #[allow(clippy::panic)]
    fn report(self) {
        if let Err(e) = self {
            panic!("test failed: {e:?}");
        }
    }
}
