mod perms {
    rbac_axum::permissions! {
        finance.accounts.read,
        crm.leads.read,
    }
}

#[rbac_axum::require_permission(perms::FINANCE_ACOUNTS_READ)]
async fn read_accounts() {}

#[rbac_axum::require_permission(any(perms::CRM_LEADS_READ, perms::CRM_LEAD_READ))]
async fn leads() {}

fn main() {}
