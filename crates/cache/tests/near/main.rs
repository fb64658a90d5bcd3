//! Near-cache tests (feature `near`) against real Redis servers: coherence
//! between two processes on the shared standalone server and cluster, and
//! faults (killed tracking connection, restart, `FLUSHALL`, eviction) on
//! servers of their own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod coherence;
mod faults;
mod support;
