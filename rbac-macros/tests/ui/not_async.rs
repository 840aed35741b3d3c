use rbac_axum::{public, require_permission};

#[require_permission("finance.accounts.read")]
fn read_accounts() -> &'static str {
    "accounts"
}

#[public]
fn health() -> &'static str {
    "ok"
}

fn main() {}
