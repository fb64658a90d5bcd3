//! Issue 22, every layer that writes: a steady worker through the layer's
//! public API across a planned sentinel failover (`failover_paused`, the
//! documented zero-loss procedure) and across a killed primary, each on a
//! sentinel set the test starts itself. Acknowledged writes are read back from
//! the new primary; the figures are printed (`--nocapture`).
//!
//! | module | checks |
//! |---|---|
//! | `cache` | acknowledged `set`s readable |
//! | `session` | created sessions present, revoked ones stay gone |
//! | `ratelimit` | admissions never exceed the quota |
//! | `lock` | held grants and fences survive; a second holder granted by the old primary is refused by fencing |
//!
//! Planned: nothing acknowledged is lost. Killed: at most what was
//! acknowledged within `min-replicas-max-lag` (2 s) before the kill.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure
#![allow(clippy::print_stdout)] // the figures are this binary's report

mod cache;
mod lock;
mod ratelimit;
mod session;
mod support;
