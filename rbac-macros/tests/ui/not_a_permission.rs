const READ: &str = "finance.accounts.read";

#[rbac_axum::require_permission(READ)]
async fn read_accounts() {}

fn main() {}
