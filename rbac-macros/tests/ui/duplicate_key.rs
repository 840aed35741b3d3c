use rbac_axum::{require_module, require_permission};

#[require_permission("finance.accounts.read", module = "finance", module = "crm")]
async fn read_accounts() {}

#[require_module("finance", module = "finance", module = "finance")]
async fn finance() {}

fn main() {}
