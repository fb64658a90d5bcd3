//! Near-cache tests (feature `near`) against real Redis servers: coherence
//! between two processes on the shared standalone server and cluster, and
//! faults (killed tracking connection, restart, `FLUSHALL`, eviction, and
//! on a cluster a slot moved to another primary) on servers of their own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod cluster_faults;
mod coherence;
mod faults;
mod support;
