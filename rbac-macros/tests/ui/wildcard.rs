use rbac_axum::require_permission;

#[require_permission("finance.*")]
async fn whole_module() {}

#[require_permission("*")]
async fn everything() {}

#[require_permission("finance.*.read")]
async fn inner_wildcard() {}

#[require_permission(any("crm.leads.read", "finance.accounts.*"))]
async fn in_a_group() {}

fn main() {}
