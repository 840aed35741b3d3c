use rbac_axum::{public, require_permission, require_role};

#[require_permission("finance.accounts.read", modul = "finance")]
async fn read_accounts() {}

#[require_role("admin", registry = crate::perms)]
async fn admin() {}

#[public(module = "auth", tenant = "acme")]
async fn health() {}

#[require_permission("finance.accounts.read", registry = "perms")]
async fn registry_not_a_path() {}

fn main() {}
