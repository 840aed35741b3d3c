//! Field-level policies: which fields of a resource a subject may read and write.
//!
//! A role's layer holds, per resource, a read side and a write side, each an allow-list
//! (`read`, `write`) or a deny-list (`read_deny`, `write_deny`) of declared fields (the
//! resource's columns and its JSON-only `fields`, dotted paths reaching into nested objects).
//! A role with a row filter or a field rule for a resource reads every field unless its rule
//! says otherwise, and writes none unless its rule says otherwise; a role with neither has no
//! access to the resource's fields. A subject may read (write) a field if any of its roles
//! effective in the tenant may (OR across roles, like rows). A tenant layer's rule replaces the
//! global layer's rule of the same role and resource inside that tenant.
//!
//! ```
//! use rbac_core::{Engine, Policy};
//! use serde_json::json;
//!
//! let policy = Policy::from_toml_str(r#"
//!     [resources.invoices]
//!     table = "invoices"
//!     tenant_column = "tenant_id"
//!     fields = ["customer.name", "customer.credit_limit"]
//!     [resources.invoices.columns]
//!     id = "int"
//!     status = "text"
//!     amount = "int"
//!     [roles.user.rows]
//!     invoices = "all"
//!     [roles.user.fields.invoices]
//!     read_deny = ["amount", "customer.credit_limit"]
//!     write = ["status"]
//!     [tenants.acme]
//!     [subjects.alice.tenants]
//!     acme = ["user"]
//! "#)?;
//! let snapshot = Engine::new(&policy).snapshot();
//!
//! let shown = snapshot.redact("alice", "acme", "invoices", json!([
//!     {"id": 1, "status": "open", "amount": 120, "customer": {"name": "Ann", "credit_limit": 9}},
//! ]))?;
//! assert_eq!(shown, json!([{"id": 1, "status": "open", "customer": {"name": "Ann"}}]));
//!
//! let err = snapshot.check_write("alice", "acme", "invoices", &json!({"status": "paid", "amount": 1}))
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "`alice` may not write field `amount` of resource `invoices` in tenant `acme`");
//! assert_eq!(snapshot.projection("alice", "acme", "invoices")?.columns().collect::<Vec<_>>(), ["id", "status"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use serde_json::Value as Json;

use crate::document::FieldRuleDef;
use crate::resource::{FieldNode, Resource, quoted};
use crate::rows::RowError;

/// One side (read or write) of a compiled field rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    All,
    Only(Vec<usize>),
    Except(Vec<usize>),
    Nothing,
}

impl Access {
    fn of(
        allow: &Option<Vec<String>>,
        deny: &Option<Vec<String>>,
        default: Access,
        r: &Resource,
    ) -> Access {
        let indexes = |list: &[String]| {
            list.iter()
                .filter_map(|f| r.field_index(f))
                .collect::<Vec<_>>()
        };
        match (allow, deny) {
            (Some(allow), _) => Access::Only(indexes(allow)),
            (None, Some(deny)) => Access::Except(indexes(deny)),
            (None, None) => default,
        }
    }

    fn apply(&self, mask: &mut [bool]) {
        match self {
            Access::All => mask.iter_mut().for_each(|m| *m = true),
            Access::Nothing => {}
            Access::Only(list) => {
                for &i in list {
                    if let Some(m) = mask.get_mut(i) {
                        *m = true;
                    }
                }
            }
            Access::Except(list) => {
                for (i, m) in mask.iter_mut().enumerate() {
                    if !list.contains(&i) {
                        *m = true;
                    }
                }
            }
        }
    }
}

/// A role's field rule for one resource, compiled at policy load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldRule {
    read: Access,
    write: Access,
}

impl FieldRule {
    pub(crate) fn compile(def: &FieldRuleDef, resource: &Resource) -> FieldRule {
        FieldRule {
            read: Access::of(&def.read, &def.read_deny, Access::All, resource),
            write: Access::of(&def.write, &def.write_deny, Access::Nothing, resource),
        }
    }

    /// The rule of a role that has a row filter but no field rule.
    fn default_rule() -> FieldRule {
        FieldRule {
            read: Access::All,
            write: Access::Nothing,
        }
    }
}

/// Problems of a field rule, reported through [`crate::ValidationErrors`].
pub(crate) fn validate(def: &FieldRuleDef, resource: &Resource) -> Vec<String> {
    let mut out = Vec::new();
    for (side, allow, deny) in [
        ("read", &def.read, &def.read_deny),
        ("write", &def.write, &def.write_deny),
    ] {
        if allow.is_some() && deny.is_some() {
            out.push(format!(
                "`{side}` and `{side}_deny` are both given; use an allow-list or a deny-list"
            ));
        }
        for (key, list) in [(side.to_owned(), allow), (format!("{side}_deny"), deny)] {
            for field in list.iter().flatten() {
                if resource.field_index(field).is_none() {
                    let suggestion = crate::name::suggest(
                        field,
                        resource.field_names.iter().map(String::as_str),
                    )
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                    out.push(format!(
                        "`{key}` names `{field}`, which resource `{}` does not declare{suggestion}",
                        resource.name
                    ));
                }
            }
        }
    }
    out
}

/// A write refused by [`FieldMask::check_write`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The subject may not write this field.
    #[error(
        "`{subject}` may not write field `{field}` of resource `{resource}` in tenant `{tenant}`"
    )]
    NotWritable {
        /// The subject.
        subject: String,
        /// The tenant.
        tenant: String,
        /// The resource.
        resource: String,
        /// The field, as a dotted path.
        field: String,
    },
    /// The write names a field the resource does not declare.
    #[error("resource `{resource}` has no field `{field}`")]
    UnknownField {
        /// The resource.
        resource: String,
        /// The field, as a dotted path.
        field: String,
    },
    /// The write is not a JSON object (or array of objects).
    #[error("a write to resource `{resource}` must be a JSON object of fields")]
    NotAnObject {
        /// The resource.
        resource: String,
    },
    /// The resource is not declared.
    #[error(transparent)]
    Row(#[from] RowError),
}

/// An object, or an array of objects only (empty included).
fn is_records(value: &Json) -> bool {
    match value {
        Json::Object(_) => true,
        Json::Array(items) => items.iter().all(Json::is_object),
        _ => false,
    }
}

fn is_record(value: &Json) -> bool {
    match value {
        Json::Object(_) => true,
        Json::Array(items) => items.iter().any(is_record),
        _ => false,
    }
}

/// What a subject may read and write of one resource in one tenant.
#[derive(Debug, Clone)]
pub struct FieldMask {
    resource: Arc<Resource>,
    subject: String,
    tenant: String,
    readable: Vec<bool>,
    writable: Vec<bool>,
}

impl FieldMask {
    pub(crate) fn new(
        resource: Arc<Resource>,
        subject: &str,
        tenant: &str,
        rules: &[Option<Arc<FieldRule>>],
    ) -> FieldMask {
        let n = resource.field_names.len();
        let (mut readable, mut writable) = (vec![false; n], vec![false; n]);
        let default = FieldRule::default_rule();
        for rule in rules {
            let rule = rule.as_deref().unwrap_or(&default);
            rule.read.apply(&mut readable);
            rule.write.apply(&mut writable);
        }
        FieldMask {
            resource,
            subject: subject.to_owned(),
            tenant: tenant.to_owned(),
            readable,
            writable,
        }
    }

    /// Whether the declared field (a dotted path) may be read.
    pub fn can_read(&self, field: &str) -> bool {
        self.resource
            .field_index(field)
            .and_then(|i| self.readable.get(i).copied())
            .unwrap_or(false)
    }

    /// Whether the declared field (a dotted path) may be written.
    pub fn can_write(&self, field: &str) -> bool {
        self.resource
            .field_index(field)
            .and_then(|i| self.writable.get(i).copied())
            .unwrap_or(false)
    }

    /// Removes from `value` every field the subject may not read. `value` is a record (a JSON
    /// object), or an array of records (nested arrays too); inside a record, a nested object or
    /// array of objects under a declared prefix (`customer` for `customer.credit_limit`) is
    /// redacted the same way. Undeclared keys are removed (deny by default); anything that is
    /// not a record where a record is expected is replaced by `null`.
    pub fn redact(&self, value: &mut Json) {
        match value {
            Json::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            Json::Object(_) => self.redact_record(value, &self.resource.field_tree),
            other => *other = Json::Null,
        }
    }

    fn redact_record(&self, value: &mut Json, node: &FieldNode) {
        match value {
            Json::Object(map) => map.retain(|key, v| match node.children.get(key) {
                None => false,
                Some(child) => match child.index {
                    Some(i) if !self.readable.get(i).copied().unwrap_or(false) => false,
                    // A readable leaf, or a readable value that is not a record.
                    Some(_) if child.children.is_empty() || !is_record(v) => true,
                    // A prefix of declared fields none of which is readable: hidden whole.
                    None if !self.any_readable(child) => false,
                    // A container (declared or a prefix): its own fields decide.
                    _ => {
                        self.redact_record(v, child);
                        true
                    }
                },
            }),
            Json::Array(items) => items.iter_mut().for_each(|v| self.redact_record(v, node)),
            other => *other = Json::Null,
        }
    }

    fn any_readable(&self, node: &FieldNode) -> bool {
        node.index
            .is_some_and(|i| self.readable.get(i).copied().unwrap_or(false))
            || node.children.values().any(|c| self.any_readable(c))
    }

    /// Refuses a write (a JSON object of fields, or an array of them) that touches a field the
    /// subject may not write, naming the field.
    ///
    /// A write is read as a JSON merge patch (RFC 7396) reads it: an object under a field with
    /// fields of its own writes only the keys it names, and anything else there (an array, an
    /// empty object, a scalar, `null`) replaces all of them, so all must be writable. Under a
    /// path that is only a prefix of fields (`lines` of `lines.sku`), not a field itself, only
    /// records (objects, arrays of them) are taken. Apply writes that way, or refuse partial
    /// objects yourself.
    ///
    /// # Errors
    /// [`FieldError::NotWritable`] or [`FieldError::UnknownField`] naming the first offending
    /// field (in key order), [`FieldError::NotAnObject`] for anything but objects.
    pub fn check_write(&self, value: &Json) -> Result<(), FieldError> {
        match value {
            Json::Array(items) => items.iter().try_for_each(|v| self.check_write(v)),
            Json::Object(_) => self.check_record(value, &self.resource.field_tree, ""),
            _ => Err(FieldError::NotAnObject {
                resource: self.resource.name.clone(),
            }),
        }
    }

    fn check_record(&self, value: &Json, node: &FieldNode, prefix: &str) -> Result<(), FieldError> {
        let items: Vec<&serde_json::Map<String, Json>> = match value {
            Json::Object(map) => vec![map],
            Json::Array(items) => items
                .iter()
                .map(|v| match v {
                    Json::Object(map) => Ok(map),
                    _ => Err(FieldError::NotAnObject {
                        resource: self.resource.name.clone(),
                    }),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(FieldError::NotAnObject {
                    resource: self.resource.name.clone(),
                });
            }
        };
        for map in items {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match node.children.get(key) {
                    None => {
                        return Err(FieldError::UnknownField {
                            resource: self.resource.name.clone(),
                            field: path,
                        });
                    }
                    Some(child) => match child.index {
                        Some(i) if self.writable.get(i).copied().unwrap_or(false) => {
                            if !child.children.is_empty() {
                                self.check_under(v, child, &path)?;
                            }
                        }
                        Some(_) => {
                            return Err(FieldError::NotWritable {
                                subject: self.subject.clone(),
                                tenant: self.tenant.clone(),
                                resource: self.resource.name.clone(),
                                field: path,
                            });
                        }
                        // A prefix only: its value must be records (an object, or an array of
                        // objects only); check_record refuses anything else.
                        None if is_records(v) => self.check_under(v, child, &path)?,
                        None => self.check_record(v, child, &path)?,
                    },
                }
            }
        }
        Ok(())
    }

    /// A value written at `node`, which has fields under it. A non-empty object is merged key
    /// by key, as a JSON merge patch merges it: only the keys it names are written. Anything
    /// else (an array, an empty object, a scalar, null) replaces what is under the node, so
    /// every field under it must be writable; an array's records are checked first, so that
    /// the field a write names is the one an error names.
    fn check_under(&self, v: &Json, node: &FieldNode, path: &str) -> Result<(), FieldError> {
        if matches!(v, Json::Object(map) if !map.is_empty()) {
            return self.check_record(v, node, path);
        }
        if let Json::Array(items) = v {
            for record in items.iter().filter(|item| item.is_object()) {
                self.check_record(record, node, path)?;
            }
        }
        match self.first_unwritable(node, path) {
            Some(field) => Err(FieldError::NotWritable {
                subject: self.subject.clone(),
                tenant: self.tenant.clone(),
                resource: self.resource.name.clone(),
                field,
            }),
            None => Ok(()),
        }
    }

    /// The first field under `node` (at `path`, in key order) the subject may not write.
    fn first_unwritable(&self, node: &FieldNode, path: &str) -> Option<String> {
        let mut children: Vec<_> = node.children.iter().collect();
        children.sort_unstable_by_key(|(key, _)| *key);
        children.into_iter().find_map(|(key, child)| {
            let path = format!("{path}.{key}");
            match child.index {
                Some(i) if !self.writable.get(i).copied().unwrap_or(false) => Some(path),
                _ => self.first_unwritable(child, &path),
            }
        })
    }

    /// The readable columns (declared, filterable columns only), in declaration order: the SQL
    /// projection of what the subject may see.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.resource
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| self.readable.get(*i).copied().unwrap_or(false))
            .map(|(_, (c, _))| c.as_str())
    }

    /// The projection as SQL: quoted readable column names separated by `, `, or `NULL` when
    /// none is readable (so the statement stays valid and returns no data).
    pub fn projection_sql(&self) -> String {
        let list: Vec<String> = self.columns().map(quoted).collect();
        if list.is_empty() {
            "NULL".to_owned()
        } else {
            list.join(", ")
        }
    }
}

impl crate::Snapshot {
    /// What `subject` may read and write of `resource` in `tenant`. An unknown subject or
    /// tenant gets a mask that allows nothing.
    ///
    /// # Errors
    /// [`RowError::UnknownResource`] if the policy declares no such resource.
    pub fn field_mask(
        &self,
        subject: &str,
        tenant: &str,
        resource: &str,
    ) -> Result<FieldMask, RowError> {
        let policies = self.resource_policies();
        let compiled = policies.resource(resource)?.clone();
        let mut rules = Vec::new();
        if let Some((t, roles)) = self.role_ids_in(subject, tenant) {
            for role in roles {
                let effective = policies.effective(t, role, resource);
                if effective.rows.is_some() || effective.fields.is_some() {
                    rules.push(effective.fields);
                }
            }
        }
        Ok(FieldMask::new(compiled, subject, tenant, &rules))
    }

    /// `value` without what `subject` may not read of `resource` in `tenant`; see
    /// [`FieldMask::redact`].
    ///
    /// # Errors
    /// [`RowError::UnknownResource`] if the policy declares no such resource.
    pub fn redact(
        &self,
        subject: &str,
        tenant: &str,
        resource: &str,
        mut value: Json,
    ) -> Result<Json, RowError> {
        self.field_mask(subject, tenant, resource)?
            .redact(&mut value);
        Ok(value)
    }

    /// Refuses a write that touches a field `subject` may not write; see
    /// [`FieldMask::check_write`].
    ///
    /// # Errors
    /// A [`FieldError`] naming the field.
    pub fn check_write(
        &self,
        subject: &str,
        tenant: &str,
        resource: &str,
        value: &Json,
    ) -> Result<(), FieldError> {
        self.field_mask(subject, tenant, resource)?
            .check_write(value)
    }

    /// The readable columns of `resource`; see [`FieldMask::columns`].
    ///
    /// # Errors
    /// [`RowError::UnknownResource`] if the policy declares no such resource.
    pub fn projection(
        &self,
        subject: &str,
        tenant: &str,
        resource: &str,
    ) -> Result<FieldMask, RowError> {
        self.field_mask(subject, tenant, resource)
    }
}
