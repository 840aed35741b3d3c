//! Loads the bundled ERP policy, checks a few requests and prints why each was decided.

use rbac_core::{Engine, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/erp.toml");
    let policy = Policy::from_toml_file(path)?;
    let engine = Engine::new(&policy);
    for (subject, tenant, permission) in [
        ("alice", "acme", "finance.invoices.approve"),
        ("bob", "acme", "finance.invoices.approve"),
        ("bob", "globex", "finance.invoices.read"),
        ("carol", "globex", "crm.leads.delete"),
    ] {
        println!("{}", engine.explain(subject, tenant, permission));
    }
    Ok(())
}
