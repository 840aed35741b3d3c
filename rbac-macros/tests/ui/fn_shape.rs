use rbac_axum::{require_module, require_permission, require_role};

#[require_permission("finance.accounts.read")]
const fn constant() {}

#[require_role("admin")]
async unsafe fn not_safe() {}

#[require_module("finance")]
async extern "C" fn foreign() {}

struct Api;

impl Api {
    #[require_permission("finance.accounts.read")]
    async fn method(&self) {}
}

fn main() {}
