//! The demo's API driven in-process (`tower::ServiceExt::oneshot`) against
//! real Redis, each test under its own key prefix: the shared standalone
//! server, the shared cluster (the whole flow), or a server of the test's own
//! (the outage test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

mod durability;
mod flow;
mod health;
mod input;
mod limits;
mod snapshot;
mod storage;
mod store;
mod support;
mod trade;
mod ws;
