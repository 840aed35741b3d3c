//! Resources, row filters and field rules through the store on SQLite and (when
//! `RBAC_TEST_POSTGRES_URL` is set at build time) PostgreSQL, each test in a fresh database:
//! import/export round trips, typed changes, validation of changes, and live engines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on a broken fixture"
)]

use rbac_core::document::FieldRuleDef;
use rbac_core::resource::{SubjectAttributes, Value};
use rbac_core::store::{Change, ChangeContext, Store, StoreError};
use rbac_core::{Policy, PolicyDocument};
use std::collections::BTreeMap;

const POLICY: &str = r#"
[resources.invoices]
description = "Customer invoices"
table = "billing.invoices"
tenant_column = "tenant_id"
fields = ["customer.credit_limit", "customer.name"]
[resources.invoices.columns]
id = "int"
created_by = "text"
amount = "float"
paid = "bool"

[roles.user]
grants = []
[roles.user.rows]
invoices = "created_by = subject.id and not paid = true"
[roles.user.fields.invoices]
read_deny = ["amount"]
write = []
[roles.accountant.fields.invoices]
read = ["id", "amount", "customer.credit_limit"]
write_deny = ["id"]

[tenants.acme]
[tenants.acme.roles.user.rows]
invoices = "all"
[tenants.acme.roles.auditor.fields.invoices]
read = []

[subjects.alice.tenants]
acme = ["user"]
"#;

use rbac_test_support::TestDb;

rbac_test_support::on_both_databases_async!(
    file = "rbac.db", prefix = "rbac_rows_store";
    import_export_round_trip_is_exact,
    typed_changes_edit_rows_and_fields,
    invalid_changes_are_refused_and_nothing_is_written,
);

fn admin() -> ChangeContext {
    ChangeContext::new("root")
}

async fn import_export_round_trip_is_exact(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let policy = Policy::from_toml_str(POLICY).unwrap();
    store.import(&admin(), &policy).await.unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded, policy);
    // Empty lists stay distinct from absent ones.
    let rule = &loaded.document().roles["user"].fields["invoices"];
    assert_eq!(rule.write, Some(vec![]));
    assert_eq!(rule.read, None);
    let exported = store.export_toml().await.unwrap();
    assert_eq!(Policy::from_toml_str(&exported).unwrap(), policy);
    // Importing it again changes nothing.
    let applied = store
        .import(&admin(), &Policy::from_toml_str(&exported).unwrap())
        .await
        .unwrap();
    assert!(!applied.changed);
}

async fn typed_changes_edit_rows_and_fields(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let mut resource = rbac_core::document::ResourceDef {
        table: "invoices".into(),
        tenant_column: "tenant_id".into(),
        ..Default::default()
    };
    resource.columns.insert("created_by".into(), "text".into());
    resource.columns.insert("amount".into(), "int".into());
    store
        .apply(
            &admin(),
            &[
                Change::CreateTenant {
                    name: "acme".into(),
                    description: None,
                },
                Change::DeclareResource {
                    name: "invoices".into(),
                    resource,
                },
                Change::CreateRole {
                    tenant: None,
                    name: "user".into(),
                    description: None,
                },
                Change::SetRowFilter {
                    tenant: None,
                    role: "user".into(),
                    resource: "invoices".into(),
                    filter: "created_by = subject.id".into(),
                },
                Change::SetFieldRule {
                    tenant: Some("acme".into()),
                    role: "user".into(),
                    resource: "invoices".into(),
                    rule: FieldRuleDef {
                        read_deny: Some(vec!["amount".into()]),
                        ..Default::default()
                    },
                },
                Change::Assign {
                    subject: "alice".into(),
                    tenant: Some("acme".into()),
                    role: "user".into(),
                },
            ],
        )
        .await
        .unwrap();
    let live = store.live_engine(Default::default()).await.unwrap();
    let snapshot = live.engine().snapshot();
    let alice = SubjectAttributes::new("alice");
    let row = BTreeMap::from([
        ("tenant_id".to_owned(), Value::from("acme")),
        ("created_by".to_owned(), Value::from("alice")),
    ]);
    assert!(
        snapshot
            .row_filter(&alice, "acme", "invoices")
            .unwrap()
            .admits(&row)
    );
    assert!(
        !snapshot
            .field_mask("alice", "acme", "invoices")
            .unwrap()
            .can_read("amount")
    );

    store
        .apply_one(
            &admin(),
            Change::RemoveRowFilter {
                tenant: None,
                role: "user".into(),
                resource: "invoices".into(),
            },
        )
        .await
        .unwrap();
    // The live engine of this process sees the change before `apply` returns.
    let snapshot = live.engine().snapshot();
    assert!(
        !snapshot
            .row_filter(&alice, "acme", "invoices")
            .unwrap()
            .admits(&row)
    );
    let audit = store.audit(&Default::default()).await.unwrap();
    assert!(
        audit.iter().any(|r| r.action == "role.rows.remove"),
        "{audit:?}"
    );

    // A rule with no list (read every field, write none) over a global rule that lets `user`
    // write `amount`: kept as `read_deny = []`, so that another instance loading the policy
    // from the database refuses the write too, rather than fall back to the global rule.
    store
        .apply(
            &admin(),
            &[
                Change::SetFieldRule {
                    tenant: None,
                    role: "user".into(),
                    resource: "invoices".into(),
                    rule: FieldRuleDef {
                        write: Some(vec!["amount".into()]),
                        ..Default::default()
                    },
                },
                Change::SetFieldRule {
                    tenant: Some("acme".into()),
                    role: "user".into(),
                    resource: "invoices".into(),
                    rule: FieldRuleDef::default(),
                },
            ],
        )
        .await
        .unwrap();
    let write = serde_json::json!({"amount": 1});
    let other_instance = Store::connect(&db.url).await.unwrap();
    let reloaded = rbac_core::Engine::new(&other_instance.load().await.unwrap()).snapshot();
    for snapshot in [live.engine().snapshot(), reloaded] {
        assert!(
            snapshot
                .check_write("alice", "acme", "invoices", &write)
                .is_err()
        );
        let mask = snapshot.field_mask("alice", "acme", "invoices").unwrap();
        assert!(mask.can_read("amount"));
    }
    // A policy built in code with such a rule reads back equal, so importing it again
    // changes nothing.
    let mut doc = store.load().await.unwrap().into_document();
    doc.role_mut("user")
        .fields
        .insert("invoices".into(), FieldRuleDef::default());
    let policy = rbac_core::Policy::from_document(doc).unwrap();
    assert!(store.import(&admin(), &policy).await.unwrap().changed);
    assert_eq!(store.load().await.unwrap(), policy);
    assert!(!store.import(&admin(), &policy).await.unwrap().changed);
    // The same through a raw document.
    let mut raw = store.load().await.unwrap().into_document();
    raw.role_mut("user")
        .fields
        .insert("invoices".into(), FieldRuleDef::default());
    let replaced = store
        .apply_one(&admin(), Change::ReplaceAll(Box::new(raw)))
        .await
        .unwrap();
    assert!(
        !replaced.changed,
        "replacing a policy with itself changes nothing"
    );
    live.shutdown().await;
}

async fn invalid_changes_are_refused_and_nothing_is_written(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    store
        .import(&admin(), &Policy::from_toml_str(POLICY).unwrap())
        .await
        .unwrap();
    let before = store.load().await.unwrap();
    let err = store
        .apply_one(
            &admin(),
            Change::SetRowFilter {
                tenant: None,
                role: "user".into(),
                resource: "invoices".into(),
                filter: "amount < 'x'".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("`amount` is float"), "{err}");
    // A resource still used by role rules cannot be removed.
    let err = store
        .apply_one(
            &admin(),
            Change::RemoveResource {
                name: "invoices".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("undeclared resource `invoices`"),
        "{err}"
    );
    let err = store
        .apply_one(
            &admin(),
            Change::RemoveFieldRule {
                tenant: None,
                role: "user".into(),
                resource: "nothing".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Change(_)), "{err}");
    assert_eq!(store.load().await.unwrap(), before);
    let _: PolicyDocument = before.into_document();
}
