//! Session behaviour against real Redis servers: the shared standalone
//! server and 6-node cluster (every behaviour on both), and servers a test
//! owns (command counts, faults).

// a failed expectation in a test should panic with the value
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod eviction;
mod expiry;
mod fast_path;
mod faults;
mod input;
mod lifecycle;
mod props;
mod replay;
mod revocation;
mod scripts;
mod stats;
mod support;
