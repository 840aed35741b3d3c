//! Policy history: for every committed version, the items it changed as they were before it.
//!
//! The audit trail says who changed what, but to stay small it summarises large changes, so it
//! cannot rebuild a past policy. The history keeps, per version, a [`Reverse`] delta: each
//! permission, tenant, role layer, resource and subject the version touched, with its previous
//! value (or "absent"). Walking back from the current policy through the deltas of the versions
//! after N gives version N exactly ([`crate::store::Store::policy_at`]). A delta is as large as
//! the change, not as the policy: granting one permission stores one role layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Conn, StoreError};
use crate::GLOBAL;
use crate::document::{PolicyDocument, ResourceDef, RoleDef, SubjectDef, TenantDef};

/// A tenant's own attributes (its roles are role layers of their own in the delta).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TenantMeta {
    description: Option<String>,
}

/// One role layer's previous definition (`tenant` empty: the global layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoleLayer {
    tenant: String,
    role: String,
    before: Option<RoleDef>,
}

/// What the items a version changed were before it; `None`: the item did not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reverse {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    permissions: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tenants: BTreeMap<String, Option<TenantMeta>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<RoleLayer>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    resources: BTreeMap<String, Option<ResourceDef>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    subjects: BTreeMap<String, Option<SubjectDef>>,
}

/// Records, for every key whose value differs between `before` and `after`, its value in
/// `before`.
fn differing<V: Clone + PartialEq>(
    before: &BTreeMap<String, V>,
    after: &BTreeMap<String, V>,
    out: &mut BTreeMap<String, Option<V>>,
) {
    for (key, value) in before {
        if after.get(key) != Some(value) {
            out.insert(key.clone(), Some(value.clone()));
        }
    }
    for key in after.keys() {
        if !before.contains_key(key) {
            out.insert(key.clone(), None);
        }
    }
}

/// Puts `value` at `key`, or removes the key when the item did not exist.
fn restore<V: Clone>(map: &mut BTreeMap<String, V>, key: &str, value: &Option<V>) {
    match value {
        Some(v) => {
            map.insert(key.to_owned(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

fn layers(doc: &PolicyDocument) -> BTreeMap<(&str, &str), &RoleDef> {
    let global = doc.roles.iter().map(|(r, d)| ((GLOBAL, r.as_str()), d));
    let scoped = doc.tenants.iter().flat_map(|(t, def)| {
        def.roles
            .iter()
            .map(move |(r, d)| ((t.as_str(), r.as_str()), d))
    });
    global.chain(scoped).collect()
}

impl Reverse {
    /// The delta that turns `after` back into `before`.
    pub(crate) fn between(before: &PolicyDocument, after: &PolicyDocument) -> Reverse {
        let mut out = Reverse::default();
        differing(
            &before.permissions.0,
            &after.permissions.0,
            &mut out.permissions,
        );
        let meta = |doc: &PolicyDocument| -> BTreeMap<String, TenantMeta> {
            doc.tenants
                .iter()
                .map(|(t, d)| {
                    let description = d.description.clone();
                    (t.clone(), TenantMeta { description })
                })
                .collect()
        };
        differing(&meta(before), &meta(after), &mut out.tenants);
        let (lb, la) = (layers(before), layers(after));
        for (&(tenant, role), &def) in &lb {
            if la.get(&(tenant, role)) != Some(&def) {
                out.roles.push(RoleLayer {
                    tenant: tenant.to_owned(),
                    role: role.to_owned(),
                    before: Some(def.clone()),
                });
            }
        }
        for &(tenant, role) in la.keys() {
            if !lb.contains_key(&(tenant, role)) {
                out.roles.push(RoleLayer {
                    tenant: tenant.to_owned(),
                    role: role.to_owned(),
                    before: None,
                });
            }
        }
        differing(&before.resources, &after.resources, &mut out.resources);
        differing(&before.subjects, &after.subjects, &mut out.subjects);
        out
    }

    /// Turns the version this delta was recorded for back into the version before it.
    pub(crate) fn undo(&self, doc: &mut PolicyDocument) {
        for (name, description) in &self.permissions {
            restore(&mut doc.permissions.0, name, description);
        }
        for (name, meta) in &self.tenants {
            match meta {
                Some(meta) => {
                    let tenant = doc.tenants.entry(name.clone()).or_default();
                    tenant.description = meta.description.clone();
                }
                // A tenant that did not exist had no roles either.
                None => {
                    doc.tenants.remove(name);
                }
            }
        }
        for layer in &self.roles {
            if layer.tenant == GLOBAL {
                restore(&mut doc.roles, &layer.role, &layer.before);
            } else if let Some(tenant) = doc.tenants.get_mut(&layer.tenant) {
                restore(&mut tenant.roles, &layer.role, &layer.before);
            } else if let Some(def) = &layer.before {
                let tenant: &mut TenantDef = doc.tenants.entry(layer.tenant.clone()).or_default();
                tenant.roles.insert(layer.role.clone(), def.clone());
            }
        }
        for (name, def) in &self.resources {
            restore(&mut doc.resources, name, def);
        }
        for (name, def) in &self.subjects {
            restore(&mut doc.subjects, name, def);
        }
    }
}

/// The first version the history can rebuild (0 for a store created with it).
pub(crate) async fn since(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    let since: Option<i64> =
        sqlx::query_scalar("SELECT value FROM rbac_meta WHERE key = 'history_since'")
            .fetch_optional(conn)
            .await?;
    Ok(since.unwrap_or(0))
}

/// Stores the delta that undoes `version`.
pub(crate) async fn record(
    conn: &mut Conn,
    version: i64,
    reverse: &Reverse,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(reverse)
        .map_err(|e| StoreError::Corrupt(format!("cannot write the policy history: {e}")))?;
    sqlx::query("INSERT INTO rbac_policy_history (version, reverse) VALUES ($1, $2)")
        .bind(version)
        .bind(text)
        .execute(conn)
        .await?;
    Ok(())
}

/// The deltas of every version after `version`, newest first.
pub(crate) async fn after(
    conn: &mut Conn,
    version: i64,
) -> Result<Vec<(i64, Reverse)>, StoreError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, reverse FROM rbac_policy_history WHERE version > $1 ORDER BY version DESC",
    )
    .bind(version)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(v, text)| {
            let reverse = serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the history of policy version {v} is unreadable: {e}"
                ))
            })?;
            Ok((v, reverse))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(toml: &str) -> PolicyDocument {
        match toml::from_str(toml) {
            Ok(doc) => doc,
            Err(e) => unreachable!("fixture: {e}"),
        }
    }

    #[test]
    fn undo_of_between_gives_the_old_document_back() {
        let v1 = doc(r#"
            [permissions.finance.invoices]
            read = "Read"
            write = "Write"
            [roles.viewer]
            grants = ["finance.invoices.read"]
            [tenants.acme]
            description = "Acme"
            [tenants.acme.roles.viewer]
            grants = ["finance.invoices.write"]
            [tenants.beta.roles.custom]
            grants = ["finance.*"]
            [subjects.alice]
            roles = ["viewer"]
            [subjects.alice.tenants]
            beta = ["custom"]
        "#);
        let v2 = doc(r#"
            [permissions.finance.invoices]
            read = "Read them"
            [permissions.hr.staff]
            read = "Staff"
            [roles.viewer]
            grants = ["finance.invoices.read", "hr.staff.read"]
            [roles.auditor]
            grants = ["*"]
            [tenants.acme]
            description = "Acme Corp"
            [tenants.gamma.roles.viewer]
            denies = ["hr.*"]
            [subjects.bob]
            roles = ["auditor"]
        "#);
        for (before, after) in [(&v1, &v2), (&v2, &v1), (&v1, &v1)] {
            let reverse = Reverse::between(before, after);
            let mut rebuilt = after.clone();
            reverse.undo(&mut rebuilt);
            assert_eq!(&rebuilt, before);
            // The delta survives its storage form.
            let stored = serde_json::to_string(&reverse).unwrap_or_default();
            let read: Reverse = serde_json::from_str(&stored).unwrap_or_default();
            assert_eq!(read, reverse);
        }
        assert_eq!(Reverse::between(&v1, &v1), Reverse::default());
    }

    #[test]
    fn a_small_change_stores_a_small_delta() {
        let before = doc(r#"
            [permissions.a.b]
            c = ""
            d = ""
            [roles.r]
            grants = ["a.b.c"]
            [subjects.s1]
            roles = ["r"]
            [subjects.s2]
            roles = ["r"]
        "#);
        let mut after = before.clone();
        if let Some(role) = after.roles.get_mut("r") {
            role.grants.push("a.b.d".into());
        }
        let reverse = Reverse::between(&before, &after);
        assert_eq!(reverse.roles.len(), 1);
        assert!(reverse.subjects.is_empty() && reverse.permissions.is_empty());
    }
}
