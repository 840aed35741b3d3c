use rbac_axum::{public, require_permission, require_role};

#[require_permission("finance.accounts.read")]
#[require_role("admin")]
async fn both() {}

#[public]
#[rbac_axum::require_module("finance")]
async fn open_and_closed() {}

fn main() {}
