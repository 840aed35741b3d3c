//! Field-level policies: redaction of records, nested objects and arrays of records; writes
//! refused with the field named; the SQL projection; OR across roles and tenant overrides.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on a broken fixture"
)]

use rbac_core::fields::FieldError;
use rbac_core::{Engine, Policy, Snapshot};
use serde_json::json;
use std::sync::Arc;

const POLICY: &str = r#"
[resources.invoices]
table = "invoices"
tenant_column = "tenant_id"
fields = ["customer", "customer.name", "customer.credit_limit", "lines.sku", "lines.price", "notes"]
[resources.invoices.columns]
id = "int"
status = "text"
amount = "int"
created_by = "text"

[roles.user.rows]
invoices = "created_by = subject.id"
[roles.user.fields.invoices]
read_deny = ["amount", "customer.credit_limit", "lines.price"]
write = ["status", "notes"]

[roles.accountant.rows]
invoices = "all"
[roles.accountant.fields.invoices]
write_deny = ["id", "created_by"]

[roles.viewer.fields.invoices]
read = ["id", "status"]

[roles.auditor]

[roles.clerk.fields.invoices]
write_deny = ["customer.credit_limit"]

[tenants.acme]
[tenants.acme.roles.accountant.fields.invoices]
read_deny = ["notes"]
write = ["amount"]
[tenants.globex]

[subjects.alice.tenants]
acme = ["user"]
[subjects.anna.tenants]
acme = ["accountant"]
globex = ["accountant"]
[subjects.vic.tenants]
acme = ["viewer"]
[subjects.uv.tenants]
acme = ["user", "viewer"]
[subjects.aud.tenants]
acme = ["auditor"]
[subjects.cleo.tenants]
acme = ["clerk"]
"#;

fn snapshot() -> Arc<Snapshot> {
    Engine::new(&Policy::from_toml_str(POLICY).unwrap()).snapshot()
}

fn page() -> serde_json::Value {
    json!({
        "id": 42, "status": "open", "amount": 1250, "created_by": "alice", "notes": "late",
        "secret": "undeclared keys never leak",
        "customer": {"name": "Ann", "credit_limit": 5000, "ssn": "x"},
        "lines": [{"sku": "A", "price": 10}, {"sku": "B", "price": 20}]
    })
}

#[test]
fn redacts_records_nested_objects_and_arrays_of_records() {
    let s = snapshot();
    let shown = s
        .redact("alice", "acme", "invoices", json!([page(), [page()]]))
        .unwrap();
    let one = json!({
        "id": 42, "status": "open", "created_by": "alice", "notes": "late",
        "customer": {"name": "Ann"},
        "lines": [{"sku": "A"}, {"sku": "B"}]
    });
    assert_eq!(shown, json!([one.clone(), [one]]));
    // Not a record where one is expected: nulled, never passed through.
    assert_eq!(
        s.redact("alice", "acme", "invoices", json!([1, "x"]))
            .unwrap(),
        json!([null, null])
    );
}

#[test]
fn or_across_roles_allow_lists_and_tenant_overrides() {
    let s = snapshot();
    // viewer: an allow-list (and no rows filter: a field rule alone grants field access).
    assert_eq!(
        s.redact("vic", "acme", "invoices", page()).unwrap(),
        json!({"id": 42, "status": "open"})
    );
    // user + viewer: the union; viewer's allow-list does not hide what user may read.
    let m = s.field_mask("uv", "acme", "invoices").unwrap();
    assert!(m.can_read("notes") && !m.can_read("amount"));
    // accountant in globex: the global rule (reads all, writes all but id/created_by).
    let m = s.field_mask("anna", "globex", "invoices").unwrap();
    assert!(m.can_read("notes") && m.can_read("amount") && m.can_write("status"));
    assert!(!m.can_write("id"));
    // In acme the tenant layer's rule replaces it: notes hidden, only amount writable.
    let m = s.field_mask("anna", "acme", "invoices").unwrap();
    assert!(!m.can_read("notes") && m.can_read("amount"));
    assert!(m.can_write("amount") && !m.can_write("status"));
    // A role with neither rows nor fields for the resource, unknown subject or tenant: nothing.
    for (who, tenant) in [("aud", "acme"), ("ghost", "acme"), ("alice", "nowhere")] {
        assert_eq!(
            s.redact(who, tenant, "invoices", page()).unwrap(),
            json!({}),
            "{who}"
        );
        assert_eq!(
            s.projection(who, tenant, "invoices")
                .unwrap()
                .projection_sql(),
            "NULL"
        );
    }
}

#[test]
fn check_write_names_the_forbidden_field() {
    let s = snapshot();
    s.check_write(
        "alice",
        "acme",
        "invoices",
        &json!({"status": "paid", "notes": "ok"}),
    )
    .unwrap();
    let err = s
        .check_write(
            "alice",
            "acme",
            "invoices",
            &json!({"status": "paid", "amount": 1}),
        )
        .unwrap_err();
    assert_eq!(
        err,
        FieldError::NotWritable {
            subject: "alice".into(),
            tenant: "acme".into(),
            resource: "invoices".into(),
            field: "amount".into()
        }
    );
    // Nested: the dotted path is named.
    let anna_globex = s.field_mask("anna", "globex", "invoices").unwrap();
    anna_globex
        .check_write(&json!({"customer": {"name": "B"}, "lines": [{"sku": "C"}]}))
        .unwrap();
    let err = s
        .check_write(
            "alice",
            "acme",
            "invoices",
            &json!({"lines": [{"sku": "C"}]}),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`alice` may not write field `lines.sku` of resource `invoices` in tenant `acme`"
    );
    let err = anna_globex
        .check_write(&json!({"customer": {"ssn": "1"}}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource `invoices` has no field `customer.ssn`"
    );
    // An empty array or object under a prefix names no field but, stored in its place, would
    // clear every field under it: refused unless all are writable.
    // Values that replace what is under a field with fields of its own (as a JSON merge patch
    // reads them): all must be writable. An object is merged: only its keys are written.
    let cleo = s.field_mask("cleo", "acme", "invoices").unwrap();
    cleo.check_write(&json!({"customer": {"name": "B"}, "lines": [{"sku": "C", "price": 1}]}))
        .unwrap();
    for replacing in [
        json!({}),
        json!(null),
        json!("x"),
        json!([]),
        json!([1]),
        json!([{"name": "B"}]),
    ] {
        let err = cleo
            .check_write(&json!({ "customer": replacing }))
            .unwrap_err();
        assert!(
            matches!(err, FieldError::NotWritable { ref field, .. } if field == "customer.credit_limit"),
            "{replacing}: {err}"
        );
    }
    // A prefix that is not a field takes records only.
    for not_records in [
        json!({"lines": 1}),
        json!({"lines": [1]}),
        json!({"lines": [{}, 2]}),
    ] {
        assert!(
            matches!(
                anna_globex.check_write(&not_records),
                Err(FieldError::NotAnObject { .. })
            ),
            "{not_records}"
        );
    }
    for empty in [
        json!({"lines": []}),
        json!({"lines": {}}),
        json!({"lines": [{}]}),
    ] {
        let err = s
            .check_write("alice", "acme", "invoices", &empty)
            .unwrap_err();
        assert!(
            matches!(err, FieldError::NotWritable { ref field, .. } if field == "lines.price"),
            "{empty}: {err}"
        );
        anna_globex.check_write(&empty).unwrap();
    }
    // Arrays of records are checked record by record; anything else is refused.
    let err = s
        .check_write(
            "alice",
            "acme",
            "invoices",
            &json!([{"status": "a"}, {"id": 1}]),
        )
        .unwrap_err();
    assert!(matches!(err, FieldError::NotWritable { ref field, .. } if field == "id"));
    assert!(matches!(
        s.check_write("alice", "acme", "invoices", &json!("x")),
        Err(FieldError::NotAnObject { .. })
    ));
    assert!(matches!(
        s.check_write("alice", "acme", "bills", &json!({})),
        Err(FieldError::Row(_))
    ));
}

#[test]
fn projection_lists_readable_columns_quoted() {
    let s = snapshot();
    let m = s.projection("alice", "acme", "invoices").unwrap();
    assert_eq!(
        m.columns().collect::<Vec<_>>(),
        ["amount", "created_by", "id", "status"]
            .into_iter()
            .filter(|c| *c != "amount")
            .collect::<Vec<_>>()
    );
    assert_eq!(m.projection_sql(), r#""created_by", "id", "status""#);
    let m = s.projection("vic", "acme", "invoices").unwrap();
    assert_eq!(m.projection_sql(), r#""id", "status""#);
}

#[test]
fn a_readable_container_still_hides_its_denied_children() {
    let s = snapshot();
    // `customer` is declared and readable for alice, `customer.credit_limit` is not.
    let m = s.field_mask("alice", "acme", "invoices").unwrap();
    assert!(m.can_read("customer") && !m.can_read("customer.credit_limit"));
    let mut v = json!({"customer": {"name": "Ann", "credit_limit": 1}});
    m.redact(&mut v);
    assert_eq!(v, json!({"customer": {"name": "Ann"}}));
    // A scalar in a container's place is kept as the container's value.
    let mut v = json!({"customer": null});
    m.redact(&mut v);
    assert_eq!(v, json!({"customer": null}));
}
