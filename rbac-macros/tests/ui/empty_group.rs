use rbac_axum::require_permission;

#[require_permission(any())]
async fn nothing_at_all() {}

#[require_permission(all())]
async fn everything_of_nothing() {}

#[require_permission(any("crm.leads.read", "crm.leads.read"))]
async fn twice() {}

#[require_permission(one("crm.leads.read"))]
async fn unknown_group() {}

fn main() {}
