//! The typed changes a store accepts.

use serde::{Deserialize, Serialize};

use crate::document::{FieldRuleDef, PolicyDocument, ResourceDef, RoleDef};

/// Who makes a change and why; recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeContext {
    /// The acting user or service.
    pub actor: String,
    /// An optional free-text reason.
    pub comment: Option<String>,
}

impl ChangeContext {
    /// A change made by `actor`.
    pub fn new(actor: impl Into<String>) -> Self {
        ChangeContext {
            actor: actor.into(),
            comment: None,
        }
    }

    /// Adds the reason for the change.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// One edit of the policy. `tenant: None` means the global scope.
///
/// Adding something already there is a no-op; removing something that is not there is a
/// [`ChangeError`]; anything that would leave the policy invalid (an unknown role, a cycle, a
/// grant of an undeclared permission, a role still in use) is refused by validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Declares a permission, or changes its description.
    DeclarePermission {
        /// The permission.
        name: String,
        /// What it allows.
        description: String,
    },
    /// Removes a permission from the registry.
    RemovePermission {
        /// The permission.
        name: String,
    },
    /// Declares a tenant, or changes its description.
    CreateTenant {
        /// The tenant.
        name: String,
        /// A readable name.
        description: Option<String>,
    },
    /// Removes a tenant with its roles and every assignment in it.
    DeleteTenant {
        /// The tenant.
        name: String,
    },
    /// Creates a global role, or a role (layer) inside a tenant.
    CreateRole {
        /// `None` for a global role.
        tenant: Option<String>,
        /// The role.
        name: String,
        /// What it is for.
        description: Option<String>,
    },
    /// Deletes a role (its layer in that scope).
    DeleteRole {
        /// `None` for a global role.
        tenant: Option<String>,
        /// The role.
        name: String,
    },
    /// Adds a grant to a role (in a tenant: a tenant-scoped grant).
    Grant {
        /// `None` for a global rule.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// A permission or wildcard.
        pattern: String,
    },
    /// Removes a grant.
    Revoke {
        /// `None` for a global rule.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// The pattern as granted.
        pattern: String,
    },
    /// Adds a deny to a role.
    Deny {
        /// `None` for a global rule.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// A permission or wildcard.
        pattern: String,
    },
    /// Removes a deny.
    Undeny {
        /// `None` for a global rule.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// The pattern as denied.
        pattern: String,
    },
    /// Makes `role` inherit `parent` (in a tenant: only there).
    Inherit {
        /// `None` for global inheritance.
        tenant: Option<String>,
        /// The inheriting role.
        role: String,
        /// The inherited role.
        parent: String,
    },
    /// Removes an inheritance.
    Uninherit {
        /// `None` for global inheritance.
        tenant: Option<String>,
        /// The inheriting role.
        role: String,
        /// The inherited role.
        parent: String,
    },
    /// Gives a subject a role, globally or in one tenant.
    Assign {
        /// The subject.
        subject: String,
        /// `None` for a global role.
        tenant: Option<String>,
        /// The role.
        role: String,
    },
    /// Takes a role away from a subject.
    Unassign {
        /// The subject.
        subject: String,
        /// `None` for a global role.
        tenant: Option<String>,
        /// The role.
        role: String,
    },
    /// Declares a resource (table, tenant column, typed columns), or replaces its declaration.
    DeclareResource {
        /// The resource.
        name: String,
        /// Its declaration.
        resource: ResourceDef,
    },
    /// Removes a resource (refused by validation while a role's rule names it).
    RemoveResource {
        /// The resource.
        name: String,
    },
    /// Sets (or replaces) a role's row filter for a resource.
    SetRowFilter {
        /// `None` for the global layer; in a tenant, a tenant-scoped filter.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// The resource.
        resource: String,
        /// The filter, in the language of [`crate::rows`].
        filter: String,
    },
    /// Removes a role's row filter for a resource.
    RemoveRowFilter {
        /// `None` for the global layer.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// The resource.
        resource: String,
    },
    /// Sets (or replaces) a role's field rule for a resource.
    SetFieldRule {
        /// `None` for the global layer; in a tenant, a tenant-scoped rule.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// The resource.
        resource: String,
        /// The rule.
        rule: FieldRuleDef,
    },
    /// Removes a role's field rule for a resource.
    RemoveFieldRule {
        /// `None` for the global layer.
        tenant: Option<String>,
        /// The role.
        role: String,
        /// The resource.
        resource: String,
    },
    /// Replaces the whole policy (an import).
    ReplaceAll(Box<PolicyDocument>),
}

/// A change that does not fit the current policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The thing to remove is not there.
    #[error("{0} does not exist")]
    Missing(String),
    /// The thing to remove is still used, and removing it would change what the users mean.
    #[error("{0}")]
    InUse(String),
}

fn scope(tenant: &Option<String>) -> String {
    tenant
        .as_ref()
        .map(|t| format!(" in tenant `{t}`"))
        .unwrap_or_default()
}

fn layer_mut<'a>(
    doc: &'a mut PolicyDocument,
    tenant: &Option<String>,
    role: &str,
) -> Result<&'a mut RoleDef, ChangeError> {
    let found = match tenant {
        None => doc.roles.get_mut(role),
        Some(t) => doc
            .tenants
            .get_mut(t)
            .and_then(|def| def.roles.get_mut(role)),
    };
    found.ok_or_else(|| ChangeError::Missing(format!("role `{role}`{}", scope(tenant))))
}

/// A role layer to add a rule to: an existing layer, or (in a tenant, for a global role) a new
/// tenant layer of that role.
fn layer_for_rule<'a>(
    doc: &'a mut PolicyDocument,
    tenant: &Option<String>,
    role: &str,
) -> Result<&'a mut RoleDef, ChangeError> {
    if let Some(t) = tenant
        && doc.roles.contains_key(role)
        && doc.tenants.contains_key(t)
    {
        return Ok(doc.tenant_role_mut(t, role));
    }
    layer_mut(doc, tenant, role)
}

fn add(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

fn remove(
    list: &mut Vec<String>,
    item: &str,
    what: impl FnOnce() -> String,
) -> Result<(), ChangeError> {
    let before = list.len();
    list.retain(|x| x != item);
    if list.len() == before {
        Err(ChangeError::Missing(what()))
    } else {
        Ok(())
    }
}

impl Change {
    /// Applies the change to a document (validation comes after, on the whole result).
    pub fn apply_to(&self, doc: &mut PolicyDocument) -> Result<(), ChangeError> {
        match self {
            Change::DeclarePermission { name, description } => {
                doc.permissions.declare(name.clone(), description.clone());
            }
            Change::RemovePermission { name } => {
                if doc.permissions.0.remove(name).is_none() {
                    return Err(ChangeError::Missing(format!("permission `{name}`")));
                }
            }
            Change::CreateTenant { name, description } => {
                let tenant = doc.tenants.entry(name.clone()).or_default();
                if description.is_some() {
                    tenant.description.clone_from(description);
                }
            }
            Change::DeleteTenant { name } => {
                if doc.tenants.remove(name).is_none() {
                    return Err(ChangeError::Missing(format!("tenant `{name}`")));
                }
                for subject in doc.subjects.values_mut() {
                    subject.tenants.remove(name);
                }
            }
            Change::CreateRole {
                tenant,
                name,
                description,
            } => {
                // A tenant's own role of that name would silently become a layer of the new
                // global role, and take its grants and denies there.
                if tenant.is_none() && !doc.roles.contains_key(name) {
                    let own: Vec<&str> = doc.tenant_layers(name).map(|(t, _)| t).collect();
                    if !own.is_empty() {
                        return Err(ChangeError::InUse(format!(
                            "tenant(s) `{}` have a role `{name}` of their own: a global role of \
                             that name would change it there; choose another name",
                            own.join("`, `")
                        )));
                    }
                }
                let role = match tenant {
                    None => doc.role_mut(name),
                    Some(t) => {
                        if !doc.tenants.contains_key(t) {
                            return Err(ChangeError::Missing(format!("tenant `{t}`")));
                        }
                        doc.tenant_role_mut(t, name)
                    }
                };
                if description.is_some() {
                    role.description.clone_from(description);
                }
            }
            Change::DeleteRole { tenant, name } => {
                // A tenant's layer of a global role changes that role there; without the
                // global role it would silently become a role of the tenant's own, its global
                // grants and denies (a deny wins) gone. Empty layers go with the role.
                if tenant.is_none() && doc.roles.contains_key(name) {
                    let layered: Vec<&str> = doc
                        .tenant_layers(name)
                        .filter(|(_, layer)| layer.has_rules())
                        .map(|(t, _)| t)
                        .collect();
                    if !layered.is_empty() {
                        return Err(ChangeError::InUse(format!(
                            "role `{name}` has rules of its own in tenant(s) `{}`: delete the \
                             role there first (`--tenant`), then globally",
                            layered.join("`, `")
                        )));
                    }
                    for def in doc.tenants.values_mut() {
                        def.roles.remove(name);
                    }
                }
                let removed = match tenant {
                    None => doc.roles.remove(name),
                    Some(t) => doc
                        .tenants
                        .get_mut(t)
                        .and_then(|def| def.roles.remove(name)),
                };
                if removed.is_none() {
                    return Err(ChangeError::Missing(format!(
                        "role `{name}`{}",
                        scope(tenant)
                    )));
                }
            }
            Change::Grant {
                tenant,
                role,
                pattern,
            } => {
                add(&mut layer_for_rule(doc, tenant, role)?.grants, pattern);
            }
            Change::Revoke {
                tenant,
                role,
                pattern,
            } => {
                remove(&mut layer_mut(doc, tenant, role)?.grants, pattern, || {
                    format!("grant `{pattern}` of role `{role}`{}", scope(tenant))
                })?;
            }
            Change::Deny {
                tenant,
                role,
                pattern,
            } => {
                add(&mut layer_for_rule(doc, tenant, role)?.denies, pattern);
            }
            Change::Undeny {
                tenant,
                role,
                pattern,
            } => {
                remove(&mut layer_mut(doc, tenant, role)?.denies, pattern, || {
                    format!("deny `{pattern}` of role `{role}`{}", scope(tenant))
                })?;
            }
            Change::Inherit {
                tenant,
                role,
                parent,
            } => {
                add(&mut layer_for_rule(doc, tenant, role)?.inherits, parent);
            }
            Change::Uninherit {
                tenant,
                role,
                parent,
            } => {
                remove(&mut layer_mut(doc, tenant, role)?.inherits, parent, || {
                    format!(
                        "inheritance of `{parent}` by role `{role}`{}",
                        scope(tenant)
                    )
                })?;
            }
            Change::Assign {
                subject,
                tenant,
                role,
            } => {
                doc.assign(subject, tenant.as_deref(), role);
            }
            Change::Unassign {
                subject,
                tenant,
                role,
            } => {
                let missing = || {
                    format!(
                        "assignment of role `{role}` to `{subject}`{}",
                        scope(tenant)
                    )
                };
                let def = doc
                    .subjects
                    .get_mut(subject)
                    .ok_or_else(|| ChangeError::Missing(missing()))?;
                match tenant {
                    None => remove(&mut def.roles, role, missing)?,
                    Some(t) => {
                        let list = def
                            .tenants
                            .get_mut(t)
                            .ok_or_else(|| ChangeError::Missing(missing()))?;
                        remove(list, role, missing)?;
                        if list.is_empty() {
                            def.tenants.remove(t);
                        }
                    }
                }
            }
            Change::DeclareResource { name, resource } => {
                doc.resources.insert(name.clone(), resource.clone());
            }
            Change::RemoveResource { name } => {
                if doc.resources.remove(name).is_none() {
                    return Err(ChangeError::Missing(format!("resource `{name}`")));
                }
            }
            Change::SetRowFilter {
                tenant,
                role,
                resource,
                filter,
            } => {
                layer_for_rule(doc, tenant, role)?
                    .rows
                    .insert(resource.clone(), filter.clone());
            }
            Change::RemoveRowFilter {
                tenant,
                role,
                resource,
            } => {
                if layer_mut(doc, tenant, role)?
                    .rows
                    .remove(resource)
                    .is_none()
                {
                    return Err(ChangeError::Missing(format!(
                        "row filter of role `{role}` for `{resource}`{}",
                        scope(tenant)
                    )));
                }
            }
            Change::SetFieldRule {
                tenant,
                role,
                resource,
                rule,
            } => {
                layer_for_rule(doc, tenant, role)?
                    .fields
                    .insert(resource.clone(), rule.clone().stored_form());
            }
            Change::RemoveFieldRule {
                tenant,
                role,
                resource,
            } => {
                if layer_mut(doc, tenant, role)?
                    .fields
                    .remove(resource)
                    .is_none()
                {
                    return Err(ChangeError::Missing(format!(
                        "field rule of role `{role}` for `{resource}`{}",
                        scope(tenant)
                    )));
                }
            }
            Change::ReplaceAll(document) => {
                // Compared with the stored policy once validated, in the form the store keeps
                // (`Store::apply`), so that replacing a policy with itself changes nothing.
                *doc = (**document).clone();
            }
        }
        Ok(())
    }

    /// A short name for the audit trail (`role.grant`).
    pub fn action(&self) -> &'static str {
        match self {
            Change::DeclarePermission { .. } => "permission.declare",
            Change::RemovePermission { .. } => "permission.remove",
            Change::CreateTenant { .. } => "tenant.create",
            Change::DeleteTenant { .. } => "tenant.delete",
            Change::CreateRole { .. } => "role.create",
            Change::DeleteRole { .. } => "role.delete",
            Change::Grant { .. } => "role.grant",
            Change::Revoke { .. } => "role.revoke",
            Change::Deny { .. } => "role.deny",
            Change::Undeny { .. } => "role.undeny",
            Change::Inherit { .. } => "role.inherit",
            Change::Uninherit { .. } => "role.uninherit",
            Change::Assign { .. } => "subject.assign",
            Change::Unassign { .. } => "subject.unassign",
            Change::DeclareResource { .. } => "resource.declare",
            Change::RemoveResource { .. } => "resource.remove",
            Change::SetRowFilter { .. } => "role.rows.set",
            Change::RemoveRowFilter { .. } => "role.rows.remove",
            Change::SetFieldRule { .. } => "role.fields.set",
            Change::RemoveFieldRule { .. } => "role.fields.remove",
            Change::ReplaceAll(_) => "policy.import",
        }
    }

    /// The change as JSON for the audit trail; an import is summarised, since its effect is in
    /// the record's before/after.
    pub(crate) fn summary(&self) -> serde_json::Value {
        match self {
            Change::ReplaceAll(_) => serde_json::json!({ "op": "replace_all" }),
            other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deleting a global role takes its empty tenant layers with it, and refuses while a
    /// layer says something.
    #[test]
    fn a_global_role_goes_with_its_empty_layers_only() {
        let mut doc = PolicyDocument::default();
        doc.role_mut("r").grants.push("a.b".into());
        doc.tenants.entry("acme".into()).or_default();
        doc.tenants.entry("globex".into()).or_default();
        doc.tenant_role_mut("acme", "r");
        doc.tenant_role_mut("globex", "r").denies.push("a.b".into());
        let delete = Change::DeleteRole {
            tenant: None,
            name: "r".into(),
        };
        let err = delete.apply_to(&mut doc.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "role `r` has rules of its own in tenant(s) `globex`: delete the role there first \
             (`--tenant`), then globally"
        );
        doc.tenants.get_mut("globex").map(|t| t.roles.remove("r"));
        delete.apply_to(&mut doc).unwrap();
        assert!(!doc.roles.contains_key("r"));
        assert!(doc.tenants.values().all(|t| !t.roles.contains_key("r")));
    }
}
