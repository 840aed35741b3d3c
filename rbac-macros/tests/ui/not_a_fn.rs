use rbac_axum::{public, require_permission};

#[require_permission("finance.accounts.read")]
struct Accounts;

#[public]
const HEALTH: &str = "ok";

fn main() {}
