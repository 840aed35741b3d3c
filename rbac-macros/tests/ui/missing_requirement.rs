use rbac_axum::{require_module, require_permission, require_role};

#[require_permission]
async fn nothing() {}

#[require_permission(module = "finance")]
async fn only_a_key() {}

#[require_role]
async fn no_role() {}

#[require_role(admin)]
async fn not_a_string() {}

#[require_module(42)]
async fn a_number() {}

#[require_permission(42)]
async fn a_number_again() {}

fn main() {}
