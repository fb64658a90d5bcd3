//! Behaviour and fault tests for aeturnis-cache against real Redis
//! servers: every behaviour on the shared standalone server and the shared
//! 6-node cluster, faults on servers of their own.

// a failed expectation in a test should panic with the value
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod bulk;
mod collections;
mod commands;
mod counters;
mod faults;
mod leaderboards;
mod pattern;
mod props;
mod scripts;
mod stats;
mod support;
mod values;
