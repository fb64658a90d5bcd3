//! Behaviour and fault tests for aeturnis-lock against real Redis servers.

// a failed expectation in a test should panic with the value
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod behaviour;
mod exclusion;
mod faults;
mod local;
mod redlock;
mod scripts;
mod support;
mod ttls;
