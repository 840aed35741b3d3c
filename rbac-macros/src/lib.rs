//! Attribute macros that protect handlers: `#[require_permission("finance.accounts.read")]`,
//! `#[require_role]`, `#[require_module]` and `#[public]`, with permission literals checked at
//! compile time.
//!
//! Not built yet: this crate is a placeholder in the workspace until the macros issue lands.
//! Use [`rbac_core`](https://docs.rs/rbac-core) checks directly in the meantime.
