//! Failovers on topologies each test starts itself: a sentinel switch (planned
//! and a killed primary) loses no acknowledged write (paused, or with a write
//! concern) and the client follows within the documented bound; a killed
//! cluster primary leaves every shard serving again within a backoff step of
//! the promotion. The figures are
//! printed (`--nocapture`); see the core guide's "Failover" section.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure
#![allow(clippy::print_stdout)] // the figures are this binary's report

mod cluster;
mod sentinel;
mod support;
mod watcher;
