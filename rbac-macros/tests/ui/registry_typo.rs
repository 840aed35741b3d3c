mod perms {
    rbac_axum::permissions! {
        finance.accounts.read,
        crm.leads.read,
    }
}

#[rbac_axum::require_permission("finance.acounts.read", registry = perms)]
async fn read_accounts() {}

#[rbac_axum::require_permission(any("crm.leads.read", "crm.leads.reed"), registry = perms)]
async fn leads() {}

fn main() {}
