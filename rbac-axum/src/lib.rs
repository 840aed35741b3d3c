//! axum integration: extractors, tower layers, identity (JWT) and tenant resolution,
//! deny-by-default routers and the route coverage reporter.
//!
//! Not built yet: this crate is a placeholder in the workspace until the axum issue lands. It
//! re-exports [`rbac_core`] so that applications can depend on it already.

pub use rbac_core;
