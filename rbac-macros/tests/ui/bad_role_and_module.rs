use rbac_axum::{public, require_module, require_role};

#[require_role("super admin")]
async fn space() {}

#[require_module("finance.accounts")]
async fn two_segments() {}

#[require_module("Finance")]
async fn uppercase() {}

#[public(module = "Auth")]
async fn health() {}

#[require_role("admin", module = auth)]
async fn module_not_a_string() {}

fn main() {}
