//! Behaviour and fault tests for aeturnis-ratelimit against real Redis
//! servers: every algorithm on standalone and the 6-node cluster, and the
//! faults (script flushes, restarts, Redis down, dropped connections) on
//! servers of their own.

// a failed expectation in a test should panic with the value
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod algorithms;
mod blocks;
mod composed;
mod faults;
mod input;
mod policies;
mod props;
mod replay;
mod scripts;
mod stats;
mod storage;
mod support;
