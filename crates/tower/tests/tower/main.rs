//! aeturnis-tower against real Redis: each layer driven with
//! `tower::ServiceExt::oneshot`, a real axum server on port 0 driven by a
//! real HTTP client, and Redis killed under each failure policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_ip;
mod client_ip_props;
mod e2e;
mod faults;
mod health;
mod ratelimit;
mod session;
mod support;
