//! The built-in `system.*` permissions that gate every admin command, and the built-in roles
//! that `init` creates.
//!
//! | permission | commands |
//! |---|---|
//! | `system.status.read` | `status` |
//! | `system.roles.read` | `perm list`, `role list/show`, `tenant list`, `matrix` (database) |
//! | `system.roles.manage` | `role create/delete/grant/revoke/deny/undeny/inherit/uninherit` |
//! | `system.permissions.manage` | `perm add/remove` |
//! | `system.tenants.manage` | `tenant create/delete` |
//! | `system.users.read` | `user list/show` |
//! | `system.users.manage` | `user assign/unassign` |
//! | `system.policy.check` | `check`, `policy test` (database) |
//! | `system.policy.import` | `policy import` |
//! | `system.policy.export` | `policy export`, `diff` (database side, any stored version) |
//! | `system.audit.read` | `audit list/export` |
//! | `system.audit.verify` | `audit verify` |
//! | `system.backup.*` | `backup ...` (create, read, verify, download, restore, delete, schedule) |
//!
//! Commands that take `--tenant` check the permission in that tenant, so a tenant's own
//! administrators (holding `admin` there) manage that tenant only; the rest check it globally.
//! `can-i` asks about the acting user itself and needs no permission; `check`, `matrix`,
//! `diff` and `policy test` on files need none either.

use rbac_core::store::Change;
use rbac_core::{Policy, PolicyDocument, RoleDef};

/// Every built-in permission, with its description.
pub const PERMISSIONS: &[(&str, &str)] = &[
    ("system.status.read", "See the policy database's status"),
    (
        "system.roles.read",
        "List permissions, roles and tenants; show the matrix",
    ),
    (
        "system.roles.manage",
        "Create and delete roles; grant, revoke, deny and inherit",
    ),
    (
        "system.permissions.manage",
        "Declare and remove permissions",
    ),
    ("system.tenants.manage", "Create and delete tenants"),
    ("system.users.read", "List users and show their access"),
    ("system.users.manage", "Assign and unassign roles"),
    (
        "system.policy.check",
        "Check other subjects' access against the stored policy",
    ),
    (
        "system.policy.import",
        "Replace the stored policy with an imported one",
    ),
    ("system.policy.export", "Export the stored policy"),
    ("system.audit.read", "List and export the audit trail"),
    (
        "system.audit.verify",
        "Verify the audit trail's hash chains",
    ),
    ("system.backup.create", "Create backups"),
    ("system.backup.read", "List and show backups"),
    ("system.backup.verify", "Verify backups"),
    ("system.backup.download", "Download backups"),
    ("system.backup.restore", "Restore backups"),
    ("system.backup.delete", "Delete and prune backups"),
    ("system.backup.schedule", "Manage backup schedules"),
];

/// The role held by the first administrator: every permission, application ones included.
pub const ROOT_ROLE: &str = "root";

/// Every built-in role: name, description, grants.
pub const ROLES: &[(&str, &str, &[&str])] = &[
    (ROOT_ROLE, "Everything, in every tenant", &["*"]),
    (
        "security_admin",
        "Every admin command (system.*), no application permission",
        &["system.*"],
    ),
    (
        "auditor",
        "Read-only: status, roles, users, checks, export and the audit trail",
        &[
            "system.status.read",
            "system.roles.read",
            "system.users.read",
            "system.policy.check",
            "system.policy.export",
            "system.audit.*",
        ],
    ),
    (
        "backup_operator",
        "Backups, schedules and status",
        &["system.backup.*", "system.status.read"],
    ),
];

/// The changes `init` applies: built-in permissions and roles, and `admin` as root.
pub fn init_changes(admin: &str) -> Vec<Change> {
    let mut changes: Vec<Change> = PERMISSIONS
        .iter()
        .map(|(name, description)| Change::DeclarePermission {
            name: (*name).to_owned(),
            description: (*description).to_owned(),
        })
        .collect();
    for (name, description, grants) in ROLES {
        changes.push(Change::CreateRole {
            tenant: None,
            name: (*name).to_owned(),
            description: Some((*description).to_owned()),
        });
        for pattern in *grants {
            changes.push(Change::Grant {
                tenant: None,
                role: (*name).to_owned(),
                pattern: (*pattern).to_owned(),
            });
        }
    }
    changes.push(Change::Assign {
        subject: admin.to_owned(),
        tenant: None,
        role: ROOT_ROLE.to_owned(),
    });
    changes
}

/// Whether a policy has been set up by `init` (or imported with administrators): it declares
/// the built-in permissions and someone holds a role.
pub fn is_initialised(policy: &Policy) -> bool {
    let doc = policy.document();
    doc.permissions.contains("system.roles.manage") && !doc.subjects.is_empty()
}

/// Adds the built-in permissions and roles a document lacks (an imported application policy
/// keeps its own definitions where it has them); returns what was added, for the report. A
/// built-in role is not added where a tenant has a role of that name of its own: as a global
/// role it would turn that role into a layer of it, and give its grants in that tenant.
pub fn merge_into(doc: &mut PolicyDocument) -> Vec<String> {
    let mut added = Vec::new();
    for (name, description) in PERMISSIONS {
        if !doc.permissions.contains(name) {
            doc.permissions.declare(*name, *description);
            added.push(format!("permission `{name}`"));
        }
    }
    for (name, description, grants) in ROLES {
        let owned: Vec<&str> = doc.tenant_layers(name).map(|(t, _)| t).collect();
        if !doc.roles.contains_key(*name) && !owned.is_empty() {
            tracing::warn!(
                role = name,
                tenants = owned.join(", "),
                "built-in role not added: tenants have a role of that name of their own"
            );
            continue;
        }
        if !doc.roles.contains_key(*name) {
            doc.roles.insert(
                (*name).to_owned(),
                RoleDef {
                    description: Some((*description).to_owned()),
                    grants: grants.iter().map(|g| (*g).to_owned()).collect(),
                    ..RoleDef::default()
                },
            );
            added.push(format!("role `{name}`"));
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_policy_is_valid_and_root_holds_every_builtin_permission() {
        let mut doc = PolicyDocument::default();
        for change in init_changes("root@example.com") {
            change
                .apply_to(&mut doc)
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
        let policy = Policy::from_document(doc).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(is_initialised(&policy));
        let snapshot = rbac_core::Snapshot::compile(&policy);
        for (name, _) in PERMISSIONS {
            assert!(snapshot.check("root@example.com", "", name).is_allowed());
            assert!(!snapshot.check("mallory", "", name).is_allowed());
        }
    }

    #[test]
    fn merging_keeps_the_files_own_definitions() {
        let mut doc = PolicyDocument::default();
        doc.role_mut("root").grants.push("x".into());
        let added = merge_into(&mut doc);
        assert_eq!(doc.roles["root"].grants, ["x"]);
        assert!(added.iter().any(|a| a == "role `auditor`"));
        assert!(!added.iter().any(|a| a == "role `root`"));
    }

    #[test]
    fn a_tenants_own_role_never_becomes_a_layer_of_a_built_in_one() {
        // erp.toml's globex has an `auditor` of its own: a global built-in `auditor` would
        // make it a layer of that role, with the built-in grants in globex.
        let mut doc = PolicyDocument::default();
        doc.tenants.entry("globex".into()).or_default();
        doc.tenant_role_mut("globex", "auditor")
            .grants
            .push("x".into());
        let added = merge_into(&mut doc);
        assert!(!added.iter().any(|a| a == "role `auditor`"), "{added:?}");
        assert!(!doc.roles.contains_key("auditor"));
        assert!(added.iter().any(|a| a == "role `security_admin`"));
    }
}
