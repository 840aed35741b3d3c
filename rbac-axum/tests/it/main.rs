//! Behaviour of rbac-axum through real axum applications driven with `tower::ServiceExt::oneshot`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

mod attribute;
mod coverage;
mod deny_by_default;
mod jwt;
mod live;
mod middleware;
mod rows;
mod support;
mod tenant;
