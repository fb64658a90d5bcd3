//! Test support for Aeturnis: real `redis-server` processes on free loopback ports.
//!
//! Every topology the Aeturnis crates are tested on is started from the configs in
//! `deploy/redis/`, each server in its own temporary directory, with a readiness
//! loop that fails with the server log when a server does not come up:
//!
//! | Type | What it starts |
//! |------|----------------|
//! | [`RedisServer`] | one standalone server, with fault helpers ([`kill`](RedisServer::kill), [`restart`](RedisServer::restart), [`pause`](RedisServer::pause), [`resume`](RedisServer::resume)) |
//! | [`Masters`] | N independent masters, for Redlock |
//! | [`Cluster`] | a 6-node cluster: 3 primaries, 3 replicas, with [`failover`](Cluster::failover), [`migrate_slot`](Cluster::migrate_slot), [`restart_node`](Cluster::restart_node) |
//! | [`Sentinel`] | 1 primary, 1 replica, 3 sentinels watching `mymaster`, with [`failover`](Sentinel::failover) |
//! | [`TlsRedis`] | a standalone server that also serves TLS, with a CA and certificates generated at start |
//! | [`FaultProxy`] | a TCP proxy in front of a server that adds latency, black-holes, resets or cuts replies ([`Fault`]), switchable at run time |
//! | [`HeldClient`] | a command held in flight on a server ([`pause_writes`](RedisServer::pause_writes), [`kill_held`](RedisServer::kill_held)): the replay-safety tests drop its connection |
//! | [`eventually`] | the one polling helper: probe until `Ok`, with a deadline |
//! | [`TestCtx`] | a shared topology for behaviour tests, reused from `cargo xtask test` when it exported one |
//!
//! Servers a test starts itself are SIGKILLed and their directories removed on drop.
//! Shared servers live in statics, which are never dropped, so a small reaper process
//! kills them when the test process exits.
//!
//! Write a behaviour once and run it on every topology with [`topology_tests!`]:
//!
//! ```no_run
//! use aeturnis_testkit::TestCtx;
//!
//! async fn should_answer_ping(ctx: TestCtx) -> anyhow::Result<()> {
//!     // connect to `ctx.url`, put every key under `ctx.prefix`
//!     # let _ = ctx;
//!     Ok(())
//! }
//!
//! aeturnis_testkit::topology_tests!(should_answer_ping);
//! # fn main() {}
//! ```
//!
//! [`bench`](mod@bench) holds the measuring helpers used by `cargo xtask bench`.

pub mod bench;
mod cluster;
mod hold;
mod http;
mod lifetime;
mod macros;
mod masters;
mod poll;
mod process;
mod proxy;
mod reshard;
mod resp;
mod sentinel;
mod server;
mod shared;
mod tls;

pub use cluster::Cluster;
pub use hold::HeldClient;
pub use http::{http_request, strip_ansi};
pub use lifetime::{set_lifetime, Lifetime, ServerRecord};
pub use masters::Masters;
pub use poll::{eventually, one_failover_at_a_time, POLL_EVERY};
pub use proxy::{Fault, FaultProxy};
pub use sentinel::Sentinel;
pub use server::RedisServer;
pub use shared::{redlock_urls, TestCtx, TestOutcome, Topology};
pub use tls::TlsRedis;

/// Environment variable holding the URL of a running standalone server to reuse.
pub const STANDALONE_URL_ENV: &str = "AETURNIS_TEST_STANDALONE_URL";
/// Environment variable holding the `redis-cluster://` URL of a running cluster to reuse.
pub const CLUSTER_URL_ENV: &str = "AETURNIS_TEST_CLUSTER_URL";
/// Environment variable holding the `redis-sentinel://` URL of a running sentinel set to reuse.
pub const SENTINEL_URL_ENV: &str = "AETURNIS_TEST_SENTINEL_URL";
/// Environment variable holding comma-separated URLs of running Redlock masters to reuse.
pub const REDLOCK_URLS_ENV: &str = "AETURNIS_TEST_REDLOCK_URLS";
