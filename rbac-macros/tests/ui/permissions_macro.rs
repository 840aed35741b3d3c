mod bad_names {
    rbac_axum::permissions! {
        finance.accounts.read,
        Finance.accounts.write,
        "finance..read",
        "finance.*",
    }
}

mod duplicates {
    rbac_axum::permissions! {
        finance.accounts.read,
        finance.accounts.read,
        crm.lead_source.read,
        crm.lead.source_read,
        all,
    }
}

mod syntax {
    rbac_axum::permissions! {
        finance.accounts.read;
        crm.leads.read,
    }
}

fn main() {}
