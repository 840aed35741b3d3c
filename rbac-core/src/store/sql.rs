//! Reading and writing the policy tables. Every statement is a constant; values are always bind
//! parameters. Multi-row inserts are built from constant templates with numbered placeholders
//! (`$1, $2, …`), which both SQLite and PostgreSQL accept.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AssertSqlSafe, Row};

use super::Conn;
use crate::document::{PolicyDocument, ResourceDef, RoleDef, SubjectDef, TenantDef};

const GLOBAL: &str = "";

pub(crate) async fn version(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM rbac_meta WHERE key = 'policy_version'")
        .fetch_one(conn)
        .await
}

/// The policy's revision: its version and the random id of the commit that made it (0 before
/// the first commit that recorded one). Two states with one version but different commits
/// exist only after the version went back (a restore, a failover) and moved on again.
pub(crate) async fn revision(conn: &mut Conn) -> Result<Revision, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT key, value FROM rbac_meta WHERE key IN ('policy_version', 'policy_commit')",
    )
    .fetch_all(conn)
    .await?;
    let value = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    Ok(Revision {
        version: value("policy_version").ok_or(sqlx::Error::RowNotFound)?,
        commit: value("policy_commit").unwrap_or(0),
    })
}

/// A policy version and the commit that made it (see [`revision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Revision {
    pub(crate) version: i64,
    pub(crate) commit: i64,
}

/// Sets the version, with a new random commit id; returns the revision written.
pub(crate) async fn set_version(conn: &mut Conn, version: i64) -> Result<Revision, sqlx::Error> {
    sqlx::query("UPDATE rbac_meta SET value = $1 WHERE key = 'policy_version'")
        .bind(version)
        .execute(&mut *conn)
        .await?;
    // Never 0, which stands for "none recorded".
    let commit = fastrand::i64(1..);
    sqlx::query(
        "INSERT INTO rbac_meta (key, value) VALUES ('policy_commit', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(commit)
    .execute(conn)
    .await?;
    Ok(Revision { version, commit })
}

/// Reads the whole policy. Lists come back in their stored order, so a round trip is exact.
pub(crate) async fn load_document(conn: &mut Conn) -> Result<PolicyDocument, sqlx::Error> {
    let mut doc = PolicyDocument::default();
    for row in sqlx::query("SELECT name, description FROM rbac_permissions")
        .fetch_all(&mut *conn)
        .await?
    {
        doc.permissions
            .declare(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
    }
    for row in sqlx::query("SELECT name, description FROM rbac_tenants")
        .fetch_all(&mut *conn)
        .await?
    {
        let def = TenantDef {
            description: row.try_get(1)?,
            roles: BTreeMap::new(),
        };
        doc.tenants.insert(row.try_get(0)?, def);
    }
    for row in sqlx::query("SELECT tenant, name, description FROM rbac_roles")
        .fetch_all(&mut *conn)
        .await?
    {
        let (tenant, name): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        layer(&mut doc, &tenant, &name).description = row.try_get(2)?;
    }
    let parents = sqlx::query(
        "SELECT tenant, role, parent FROM rbac_role_parents ORDER BY tenant, role, position",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in parents {
        let (tenant, role): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        layer(&mut doc, &tenant, &role)
            .inherits
            .push(row.try_get(2)?);
    }
    let rules = sqlx::query(
        "SELECT tenant, role, effect, pattern FROM rbac_role_rules ORDER BY tenant, role, effect, position",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in rules {
        let (tenant, role, effect): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let def = layer(&mut doc, &tenant, &role);
        let list = if effect == "deny" {
            &mut def.denies
        } else {
            &mut def.grants
        };
        list.push(row.try_get(3)?);
    }
    load_resources(conn, &mut doc).await?;
    for row in sqlx::query("SELECT name FROM rbac_subjects")
        .fetch_all(&mut *conn)
        .await?
    {
        doc.subjects.insert(row.try_get(0)?, SubjectDef::default());
    }
    let assignments = sqlx::query(
        "SELECT subject, tenant, role FROM rbac_assignments ORDER BY subject, tenant, position",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in assignments {
        let (subject, tenant, role): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let def = doc.subjects.entry(subject).or_default();
        if tenant == GLOBAL {
            def.roles.push(role);
        } else {
            def.tenants.entry(tenant).or_default().push(role);
        }
    }
    Ok(doc)
}

/// Reads resources, row filters and field rules (the second migration's tables).
async fn load_resources(conn: &mut Conn, doc: &mut PolicyDocument) -> Result<(), sqlx::Error> {
    for row in
        sqlx::query("SELECT name, description, table_name, tenant_column FROM rbac_resources")
            .fetch_all(&mut *conn)
            .await?
    {
        let def = ResourceDef {
            description: row.try_get(1)?,
            table: row.try_get(2)?,
            tenant_column: row.try_get(3)?,
            ..ResourceDef::default()
        };
        doc.resources.insert(row.try_get(0)?, def);
    }
    for row in sqlx::query("SELECT resource, name, type FROM rbac_resource_columns")
        .fetch_all(&mut *conn)
        .await?
    {
        let resource: String = row.try_get(0)?;
        if let Some(def) = doc.resources.get_mut(&resource) {
            def.columns.insert(row.try_get(1)?, row.try_get(2)?);
        }
    }
    for row in
        sqlx::query("SELECT resource, name FROM rbac_resource_fields ORDER BY resource, position")
            .fetch_all(&mut *conn)
            .await?
    {
        let resource: String = row.try_get(0)?;
        if let Some(def) = doc.resources.get_mut(&resource) {
            def.fields.push(row.try_get(1)?);
        }
    }
    for row in sqlx::query("SELECT tenant, role, resource, filter FROM rbac_role_rows")
        .fetch_all(&mut *conn)
        .await?
    {
        let (tenant, role): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        layer(doc, &tenant, &role)
            .rows
            .insert(row.try_get(2)?, row.try_get(3)?);
    }
    for row in sqlx::query("SELECT tenant, role, resource, kind, fields FROM rbac_role_fields")
        .fetch_all(&mut *conn)
        .await?
    {
        let (tenant, role, resource, kind, fields): (String, String, String, String, String) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        );
        let list: Vec<String> = serde_json::from_str(&fields).map_err(|e| {
            sqlx::Error::Decode(format!("field list of role `{role}` for `{resource}`: {e}").into())
        })?;
        let rule = layer(doc, &tenant, &role)
            .fields
            .entry(resource)
            .or_default();
        match kind.as_str() {
            "read" => rule.read = Some(list),
            "read_deny" => rule.read_deny = Some(list),
            "write" => rule.write = Some(list),
            _ => rule.write_deny = Some(list),
        }
    }
    Ok(())
}

fn layer<'a>(doc: &'a mut PolicyDocument, tenant: &str, role: &str) -> &'a mut RoleDef {
    if tenant == GLOBAL {
        doc.role_mut(role)
    } else {
        doc.tenant_role_mut(tenant, role)
    }
}

/// What a change touched, as JSON: each changed item's value before and after (`null` when it
/// did not exist).
pub(crate) struct Diff {
    pub(crate) before: serde_json::Value,
    pub(crate) after: serde_json::Value,
}

/// Role layers keyed by (tenant or "", role).
fn layers(doc: &PolicyDocument) -> BTreeMap<(&str, &str), &RoleDef> {
    let mut out: BTreeMap<(&str, &str), &RoleDef> = doc
        .roles
        .iter()
        .map(|(r, d)| ((GLOBAL, r.as_str()), d))
        .collect();
    for (t, def) in &doc.tenants {
        out.extend(def.roles.iter().map(|(r, d)| ((t.as_str(), r.as_str()), d)));
    }
    out
}

/// Keys present in exactly one map or with different values, and the keys to insert.
fn changed<K: Ord + Clone, V: PartialEq>(
    before: &BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
) -> (Vec<K>, Vec<K>) {
    let keys: BTreeSet<&K> = before.keys().chain(after.keys()).collect();
    let mut delete = Vec::new();
    let mut insert = Vec::new();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (Some(b), Some(a)) if a == b => {}
            (b, a) => {
                if b.is_some() {
                    delete.push(key.clone());
                }
                if a.is_some() {
                    insert.push(key.clone());
                }
            }
        }
    }
    (delete, insert)
}

fn json<T: serde::Serialize>(value: Option<T>) -> serde_json::Value {
    value
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Writes what differs between `before` (what the tables hold) and `after`.
pub(crate) async fn write_diff(
    conn: &mut Conn,
    before: &PolicyDocument,
    after: &PolicyDocument,
) -> Result<Diff, sqlx::Error> {
    let mut diff_before = serde_json::Map::new();
    let mut diff_after = serde_json::Map::new();
    let mut record = |section: &str, key: String, b: serde_json::Value, a: serde_json::Value| {
        for (map, value) in [(&mut diff_before, b), (&mut diff_after, a)] {
            if let serde_json::Value::Object(items) = map
                .entry(section.to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()))
            {
                items.insert(key.clone(), value);
            }
        }
    };
    let mut batch = Batch::default();

    let (delete, insert) = changed(&before.permissions.0, &after.permissions.0);
    for name in &delete {
        sqlx::query("DELETE FROM rbac_permissions WHERE name = $1")
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }
    for name in &insert {
        let description = after.permissions.0.get(name).cloned().unwrap_or_default();
        batch.row(
            Table::Permissions,
            vec![name.clone().into(), description.into()],
        );
    }
    for name in delete.iter().chain(&insert).collect::<BTreeSet<_>>() {
        record(
            "permissions",
            name.clone(),
            json(before.permissions.0.get(name)),
            json(after.permissions.0.get(name)),
        );
    }

    let tenant_meta = |doc: &PolicyDocument| -> BTreeMap<String, Option<String>> {
        doc.tenants
            .iter()
            .map(|(t, d)| (t.clone(), d.description.clone()))
            .collect()
    };
    let (tb, ta) = (tenant_meta(before), tenant_meta(after));
    let (delete, insert) = changed(&tb, &ta);
    for name in &delete {
        sqlx::query("DELETE FROM rbac_tenants WHERE name = $1")
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }
    for name in &insert {
        let description = ta.get(name).cloned().flatten();
        batch.row(
            Table::Tenants,
            vec![name.clone().into(), description.into()],
        );
    }
    for name in delete.iter().chain(&insert).collect::<BTreeSet<_>>() {
        record(
            "tenants",
            name.clone(),
            json(tb.get(name)),
            json(ta.get(name)),
        );
    }

    let (lb, la) = (layers(before), layers(after));
    let (delete, insert) = changed(&lb, &la);
    for &(tenant, role) in &delete {
        for sql in [
            "DELETE FROM rbac_roles WHERE tenant = $1 AND name = $2",
            "DELETE FROM rbac_role_parents WHERE tenant = $1 AND role = $2",
            "DELETE FROM rbac_role_rules WHERE tenant = $1 AND role = $2",
            "DELETE FROM rbac_role_rows WHERE tenant = $1 AND role = $2",
            "DELETE FROM rbac_role_fields WHERE tenant = $1 AND role = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant)
                .bind(role)
                .execute(&mut *conn)
                .await?;
        }
    }
    for key @ &(tenant, role) in &insert {
        let Some(def) = la.get(key) else { continue };
        batch.row(
            Table::Roles,
            vec![tenant.into(), role.into(), def.description.clone().into()],
        );
        for (i, parent) in def.inherits.iter().enumerate() {
            batch.row(
                Table::Parents,
                vec![
                    tenant.into(),
                    role.into(),
                    (i as i64).into(),
                    parent.clone().into(),
                ],
            );
        }
        for (effect, list) in [("grant", &def.grants), ("deny", &def.denies)] {
            for (i, pattern) in list.iter().enumerate() {
                batch.row(
                    Table::Rules,
                    vec![
                        tenant.into(),
                        role.into(),
                        effect.into(),
                        (i as i64).into(),
                        pattern.clone().into(),
                    ],
                );
            }
        }
    }
    for key @ &(tenant, role) in &insert {
        let Some(def) = la.get(key) else { continue };
        for (resource, filter) in &def.rows {
            batch.row(
                Table::RoleRows,
                vec![
                    tenant.into(),
                    role.into(),
                    resource.clone().into(),
                    filter.clone().into(),
                ],
            );
        }
        for (resource, rule) in &def.fields {
            // A rule is kept as its lists: one with none is kept as `read_deny = []`, which
            // means the same, so that it is not lost (and the global role's rule used).
            let rule = rule.clone().stored_form();
            for (kind, list) in [
                ("read", &rule.read),
                ("read_deny", &rule.read_deny),
                ("write", &rule.write),
                ("write_deny", &rule.write_deny),
            ] {
                if let Some(list) = list {
                    batch.row(
                        Table::RoleFields,
                        vec![
                            tenant.into(),
                            role.into(),
                            resource.clone().into(),
                            kind.into(),
                            json(Some(list)).to_string().into(),
                        ],
                    );
                }
            }
        }
    }
    for key in delete.iter().chain(&insert).collect::<BTreeSet<_>>() {
        let name = if key.0.is_empty() {
            key.1.to_owned()
        } else {
            format!("{}/{}", key.0, key.1)
        };
        record("roles", name, json(lb.get(key)), json(la.get(key)));
    }

    let (delete, insert) = changed(&before.resources, &after.resources);
    for name in &delete {
        for sql in [
            "DELETE FROM rbac_resources WHERE name = $1",
            "DELETE FROM rbac_resource_columns WHERE resource = $1",
            "DELETE FROM rbac_resource_fields WHERE resource = $1",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *conn).await?;
        }
    }
    for name in &insert {
        let Some(def) = after.resources.get(name) else {
            continue;
        };
        batch.row(
            Table::Resources,
            vec![
                name.clone().into(),
                def.description.clone().into(),
                def.table.clone().into(),
                def.tenant_column.clone().into(),
            ],
        );
        for (column, ty) in &def.columns {
            batch.row(
                Table::ResourceColumns,
                vec![
                    name.clone().into(),
                    column.clone().into(),
                    ty.clone().into(),
                ],
            );
        }
        for (i, field) in def.fields.iter().enumerate() {
            batch.row(
                Table::ResourceFields,
                vec![name.clone().into(), (i as i64).into(), field.clone().into()],
            );
        }
    }
    for name in delete.iter().chain(&insert).collect::<BTreeSet<_>>() {
        record(
            "resources",
            name.clone(),
            json(before.resources.get(name)),
            json(after.resources.get(name)),
        );
    }

    let (delete, insert) = changed(&before.subjects, &after.subjects);
    for subject in &delete {
        sqlx::query("DELETE FROM rbac_subjects WHERE name = $1")
            .bind(subject)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM rbac_assignments WHERE subject = $1")
            .bind(subject)
            .execute(&mut *conn)
            .await?;
    }
    for subject in &insert {
        let Some(def) = after.subjects.get(subject) else {
            continue;
        };
        batch.row(Table::Subjects, vec![subject.clone().into()]);
        let scopes = std::iter::once((GLOBAL, &def.roles))
            .chain(def.tenants.iter().map(|(t, roles)| (t.as_str(), roles)));
        for (tenant, roles) in scopes {
            for (i, role) in roles.iter().enumerate() {
                batch.row(
                    Table::Assignments,
                    vec![
                        subject.clone().into(),
                        tenant.into(),
                        (i as i64).into(),
                        role.clone().into(),
                    ],
                );
            }
        }
    }
    // A large import would make the audit record as large as the policy: past a few hundred
    // subjects, it lists who changed rather than every assignment.
    let listed = delete.iter().chain(&insert).collect::<BTreeSet<_>>();
    if listed.len() <= 500 {
        for subject in listed {
            record(
                "subjects",
                subject.clone(),
                json(before.subjects.get(subject)),
                json(after.subjects.get(subject)),
            );
        }
    } else {
        let names: Vec<&String> = listed.into_iter().collect();
        record(
            "subjects",
            "(changed)".into(),
            json(Some(names.len())),
            json(Some(names)),
        );
    }
    batch.flush(conn).await?;
    Ok(Diff {
        before: serde_json::Value::Object(diff_before),
        after: serde_json::Value::Object(diff_after),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Table {
    Permissions,
    Tenants,
    Roles,
    Parents,
    Rules,
    Subjects,
    Assignments,
    Resources,
    ResourceColumns,
    ResourceFields,
    RoleRows,
    RoleFields,
}

impl Table {
    fn insert(self) -> (&'static str, usize) {
        match self {
            Table::Permissions => (
                "INSERT INTO rbac_permissions (name, description) VALUES ",
                2,
            ),
            Table::Tenants => ("INSERT INTO rbac_tenants (name, description) VALUES ", 2),
            Table::Roles => (
                "INSERT INTO rbac_roles (tenant, name, description) VALUES ",
                3,
            ),
            Table::Parents => (
                "INSERT INTO rbac_role_parents (tenant, role, position, parent) VALUES ",
                4,
            ),
            Table::Rules => (
                "INSERT INTO rbac_role_rules (tenant, role, effect, position, pattern) VALUES ",
                5,
            ),
            Table::Subjects => ("INSERT INTO rbac_subjects (name) VALUES ", 1),
            Table::Assignments => (
                "INSERT INTO rbac_assignments (subject, tenant, position, role) VALUES ",
                4,
            ),
            Table::Resources => (
                "INSERT INTO rbac_resources (name, description, table_name, tenant_column) VALUES ",
                4,
            ),
            Table::ResourceColumns => (
                "INSERT INTO rbac_resource_columns (resource, name, type) VALUES ",
                3,
            ),
            Table::ResourceFields => (
                "INSERT INTO rbac_resource_fields (resource, position, name) VALUES ",
                3,
            ),
            Table::RoleRows => (
                "INSERT INTO rbac_role_rows (tenant, role, resource, filter) VALUES ",
                4,
            ),
            Table::RoleFields => (
                "INSERT INTO rbac_role_fields (tenant, role, resource, kind, fields) VALUES ",
                5,
            ),
        }
    }
}

/// A bound value.
pub(crate) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::OptText(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

/// Rows to insert, grouped by table and written as multi-row inserts.
#[derive(Default)]
struct Batch {
    rows: BTreeMap<Table, Vec<Vec<Value>>>,
}

/// Rows per statement: well under SQLite's and PostgreSQL's bind-parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

impl Batch {
    fn row(&mut self, table: Table, values: Vec<Value>) {
        self.rows.entry(table).or_default().push(values);
    }

    async fn flush(self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        // Table order matters for nothing (there are no foreign keys) but keeps writes stable.
        for (table, rows) in self.rows {
            let (head, width) = table.insert();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut sql = String::from(head);
                let mut n = 0;
                for (r, _) in chunk.iter().enumerate() {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for c in 0..width {
                        n += 1;
                        if c > 0 {
                            sql.push_str(", ");
                        }
                        sql.push_str(&format!("${n}"));
                    }
                    sql.push(')');
                }
                // The text is a constant head and numbered placeholders only; every value is
                // bound below, none is spliced in.
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for row in chunk {
                    for value in row {
                        query = match value {
                            Value::Text(v) => query.bind(v.as_str()),
                            Value::OptText(v) => query.bind(v.as_deref()),
                            Value::Int(v) => query.bind(*v),
                        };
                    }
                }
                query.execute(&mut *conn).await?;
            }
        }
        Ok(())
    }
}
