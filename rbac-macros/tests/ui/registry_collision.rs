mod perms {
    rbac_axum::permissions! {
        finance.accounts.read,
    }
}

// Maps to the constant `FINANCE_ACCOUNTS_READ`, whose name is `finance.accounts.read`.
#[rbac_axum::require_permission("finance.accounts_read", registry = perms)]
async fn read_accounts() {}

fn main() {}
