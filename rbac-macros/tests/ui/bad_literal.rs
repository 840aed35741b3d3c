use rbac_axum::require_permission;

#[require_permission("Finance.accounts.read")]
async fn uppercase() {}

#[require_permission("finance..read")]
async fn empty_segment() {}

#[require_permission("a.b.c.d.e.f.g.h.i")]
async fn too_deep() {}

#[require_permission("finance.acc-ounts.read")]
async fn dash() {}

#[require_permission("")]
async fn empty() {}

#[require_permission(any("crm.leads.read", "crm leads"))]
async fn in_a_group() {}

fn main() {}
