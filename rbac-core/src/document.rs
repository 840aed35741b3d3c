//! The policy document: the serde shape of a policy, as written in TOML.
//!
//! A [`PolicyDocument`] is plain data and may be invalid; [`crate::Policy`] is a validated one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole policy as data: permission registry, roles, tenants and subjects.
///
/// ```toml
/// [permissions.finance.invoices]
/// read = "Read invoices"
/// approve = "Approve invoices"
///
/// [roles.viewer]
/// grants = ["finance.invoices.read"]
///
/// [roles.accountant]
/// inherits = ["viewer"]
/// grants = ["finance.*"]
/// denies = ["finance.invoices.approve"]
///
/// [tenants.acme]
/// description = "Acme Corp"
///
/// [tenants.acme.roles.auditor]          # a custom role that exists only in acme
/// grants = ["finance.invoices.read"]
///
/// [subjects.alice.tenants]
/// acme = ["accountant"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The permission registry: every permission the application knows, with a description.
    /// In TOML, nested tables (`[permissions.finance.invoices] read = "…"`) or dotted keys.
    #[serde(default, skip_serializing_if = "Registry::is_empty")]
    pub permissions: Registry,
    /// Global roles: templates that exist in every tenant and in the global scope.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleDef>,
    /// Tenants (organizations), each with its own roles and tenant-scoped rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, TenantDef>,
    /// Subjects (users, service accounts) and the roles they hold.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, SubjectDef>,
    /// Resources (database tables) that row-level and field-level policies talk about.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ResourceDef>,
}

/// A role's rules in one scope (global, or one tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Roles whose grants and denies this role takes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    /// Permissions or wildcard patterns (`finance.*`, `*`) this role allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// Permissions or patterns this role refuses. A deny wins over any grant, at any depth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denies: Vec<String>,
    /// Row filters by resource name (`invoices = "created_by = subject.id"`); see
    /// [`crate::rows`] for the language. In a tenant layer, a filter replaces the global
    /// layer's filter of the same role and resource inside that tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows: BTreeMap<String, String>,
    /// Field rules by resource name; see [`crate::fields`]. In a tenant layer, a rule replaces
    /// the global layer's rule of the same role and resource inside that tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldRuleDef>,
}

/// A resource: a database table whose rows and fields policies restrict.
///
/// ```toml
/// [resources.invoices]
/// table = "invoices"
/// tenant_column = "tenant_id"
/// fields = ["customer.credit_limit"]    # JSON-only fields, not filterable
/// [resources.invoices.columns]
/// id = "int"
/// created_by = "text"
/// amount = "float"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDef {
    /// What the resource is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The SQL table (an identifier, optionally `schema.table`).
    pub table: String,
    /// The column holding the tenant name of each row; every filter is restricted to it.
    pub tenant_column: String,
    /// Filterable columns and their types: `int`, `float`, `text` or `bool`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
    /// Further fields of the resource's JSON records that field rules may name but filters
    /// may not (dotted paths reach into nested objects: `customer.credit_limit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Which fields of a resource a role may read and write. Each side is an allow-list or a
/// deny-list (not both); a role with a row filter or field rule for a resource and no `read`
/// list reads every field, and with no `write` list writes none. A rule written with no list
/// at all reads as `read_deny = []`, which means the same and is the form the policy store
/// keeps (it stores a rule as its lists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FieldRuleRepr")]
pub struct FieldRuleDef {
    /// Readable fields (allow-list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<String>>,
    /// Fields that may not be read (deny-list); all others may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_deny: Option<Vec<String>>,
    /// Writable fields (allow-list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Vec<String>>,
    /// Fields that may not be written (deny-list); all others may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_deny: Option<Vec<String>>,
}

impl RoleDef {
    /// Whether the layer says anything: a grant, a deny, a parent, a row filter or a field
    /// rule (a description alone says nothing).
    ///
    /// ```
    /// let mut layer = rbac_core::RoleDef::default();
    /// layer.description = Some("Acme's accountants".into());
    /// assert!(!layer.has_rules());
    /// layer.denies.push("finance.invoices.approve".into());
    /// assert!(layer.has_rules());
    /// ```
    pub fn has_rules(&self) -> bool {
        !(self.grants.is_empty()
            && self.denies.is_empty()
            && self.inherits.is_empty()
            && self.rows.is_empty()
            && self.fields.is_empty())
    }
}

/// [`FieldRuleDef`] as written, before a rule with no list is given its `read_deny = []`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldRuleRepr {
    #[serde(default)]
    read: Option<Vec<String>>,
    #[serde(default)]
    read_deny: Option<Vec<String>>,
    #[serde(default)]
    write: Option<Vec<String>>,
    #[serde(default)]
    write_deny: Option<Vec<String>>,
}

impl From<FieldRuleRepr> for FieldRuleDef {
    fn from(repr: FieldRuleRepr) -> FieldRuleDef {
        FieldRuleDef {
            read: repr.read,
            read_deny: repr.read_deny,
            write: repr.write,
            write_deny: repr.write_deny,
        }
        .stored_form()
    }
}

impl PolicyDocument {
    /// The tenants with a role (or a layer of a global role) named `role`, and that layer.
    ///
    /// ```
    /// let mut doc = rbac_core::PolicyDocument::default();
    /// doc.tenant_role_mut("acme", "clerk").grants.push("crm.*".into());
    /// let tenants: Vec<&str> = doc.tenant_layers("clerk").map(|(t, _)| t).collect();
    /// assert_eq!(tenants, ["acme"]);
    /// ```
    pub fn tenant_layers<'a>(
        &'a self,
        role: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a RoleDef)> + 'a {
        self.tenants
            .iter()
            .filter_map(move |(t, def)| def.roles.get(role).map(|layer| (t.as_str(), layer)))
    }

    /// The document in the form the policy store keeps, which means the same: every field
    /// rule in [`FieldRuleDef::stored_form`], and no empty per-tenant role list (`acme = []`
    /// holds no role; the store keeps assignments, so it reads back as no entry). A policy
    /// built in code or read from TOML then compares equal to itself read back, and importing
    /// it again changes nothing.
    pub(crate) fn normalize(&mut self) {
        for subject in self.subjects.values_mut() {
            subject.tenants.retain(|_, roles| !roles.is_empty());
        }
        self.normalize_field_rules();
    }

    /// Every field rule in [`FieldRuleDef::stored_form`].
    fn normalize_field_rules(&mut self) {
        let layers = self
            .roles
            .values_mut()
            .chain(self.tenants.values_mut().flat_map(|t| t.roles.values_mut()));
        for layer in layers {
            for rule in layer.fields.values_mut() {
                *rule = std::mem::take(rule).stored_form();
            }
        }
    }
}

impl FieldRuleDef {
    /// The rule as the policy store keeps it: a rule with no list becomes `read_deny = []`
    /// (read every field, write none, as before); any other rule is unchanged.
    pub fn stored_form(self) -> FieldRuleDef {
        if self == FieldRuleDef::default() {
            FieldRuleDef {
                read_deny: Some(Vec::new()),
                ..self
            }
        } else {
            self
        }
    }
}

/// A tenant (organization).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDef {
    /// A readable name for the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Roles in this tenant only. A name that is also a global role adds tenant-scoped inherits,
    /// grants and denies to that role in this tenant (casbin's `p, role, tenant, obj, act`); any
    /// other name is a custom role of this tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleDef>,
}

/// The roles a subject holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectDef {
    /// Global roles: they apply in the global scope and in every tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Roles held in one tenant only, by tenant name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, Vec<String>>,
}

/// The permission registry: full permission name to description, in name order.
///
/// Written in TOML as a tree (`[permissions.finance.invoices] read = "Read invoices"`), kept here
/// flat (`finance.invoices.read`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry(pub BTreeMap<String, String>);

impl Registry {
    /// Whether no permission is declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Declares (or re-describes) a permission.
    pub fn declare(&mut self, name: impl Into<String>, description: impl Into<String>) {
        self.0.insert(name.into(), description.into());
    }

    /// Whether `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Declared names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RegistryNode {
    Leaf(String),
    Branch(BTreeMap<String, RegistryNode>),
}

/// Adds the permissions under `node` to `out`, named `prefix.key…` (the root has no prefix,
/// so that an empty first segment stays in the name, and is refused as malformed, rather than
/// vanishing). A name written more than once (`"a.b" = …` beside `[a] b = …`) is added to
/// `twice`.
fn flatten(
    prefix: Option<&str>,
    node: RegistryNode,
    out: &mut BTreeMap<String, String>,
    twice: &mut BTreeSet<String>,
) {
    match node {
        RegistryNode::Leaf(description) => {
            let name = prefix.unwrap_or_default().to_owned();
            if out.insert(name.clone(), description).is_some() {
                twice.insert(name);
            }
        }
        RegistryNode::Branch(children) => {
            for (key, child) in children {
                let name = match prefix {
                    None => key,
                    Some(prefix) => format!("{prefix}.{key}"),
                };
                flatten(Some(&name), child, out, twice);
            }
        }
    }
}

impl<'de> Deserialize<'de> for Registry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tree = BTreeMap::<String, RegistryNode>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "`permissions` must be a tree of tables whose leaves are descriptions, \
                 e.g. `[permissions.finance.invoices]` then `read = \"Read invoices\"`",
            )
        })?;
        let mut out = BTreeMap::new();
        let mut twice = BTreeSet::new();
        flatten(None, RegistryNode::Branch(tree), &mut out, &mut twice);
        if !twice.is_empty() {
            let names: Vec<String> = twice.iter().map(|n| format!("`{n}`")).collect();
            return Err(serde::de::Error::custom(format!(
                "permission {} declared more than once, in different spellings of its \
                 key (`\"a.b\" = …` and `[a] b = …` are the same name)",
                names.join(", ")
            )));
        }
        Ok(Registry(out))
    }
}

impl Serialize for Registry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Build the tree back. A validated registry never has a name that is also a prefix of
        // another, so a leaf never collides with a branch; if one does, the name is written as a
        // quoted dotted key, which reads back the same.
        let mut root: BTreeMap<String, RegistryNode> = BTreeMap::new();
        for (name, description) in &self.0 {
            let segments: Vec<&str> = name.split('.').collect();
            if !insert_node(&mut root, &segments, description) {
                root.insert(name.clone(), RegistryNode::Leaf(description.clone()));
            }
        }
        root.serialize(serializer)
    }
}

fn insert_node(
    level: &mut BTreeMap<String, RegistryNode>,
    segments: &[&str],
    description: &str,
) -> bool {
    match segments {
        [] => false,
        [last] => {
            if level.contains_key(*last) {
                return false;
            }
            level.insert(
                (*last).to_owned(),
                RegistryNode::Leaf(description.to_owned()),
            );
            true
        }
        [head, rest @ ..] => {
            match level
                .entry((*head).to_owned())
                .or_insert_with(|| RegistryNode::Branch(BTreeMap::new()))
            {
                RegistryNode::Branch(children) => insert_node(children, rest, description),
                RegistryNode::Leaf(_) => false,
            }
        }
    }
}

impl PolicyDocument {
    /// Parses TOML into a document without validating it; see [`crate::Policy::from_toml_str`].
    pub fn from_toml_str(text: &str) -> Result<PolicyDocument, toml::de::Error> {
        toml::from_str(text)
    }

    /// Writes the document as TOML.
    ///
    /// # Errors
    /// [`toml::ser::Error`] if the TOML writer refuses the document. Plain maps, strings and
    /// vectors always serialise today; the error is passed on rather than hidden so that a
    /// future field type can never turn an export into an empty file.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// The global role `name`, created empty if missing.
    pub fn role_mut(&mut self, name: &str) -> &mut RoleDef {
        self.roles.entry(name.to_owned()).or_default()
    }

    /// The layer of role `role` inside `tenant`, creating the tenant and the layer if missing.
    pub fn tenant_role_mut(&mut self, tenant: &str, role: &str) -> &mut RoleDef {
        self.tenants
            .entry(tenant.to_owned())
            .or_default()
            .roles
            .entry(role.to_owned())
            .or_default()
    }

    /// Gives `subject` the role `role`, globally (`tenant` `None`) or in one tenant.
    /// Assigning a role twice is a no-op.
    pub fn assign(&mut self, subject: &str, tenant: Option<&str>, role: &str) {
        let def = self.subjects.entry(subject.to_owned()).or_default();
        let list = match tenant {
            None => &mut def.roles,
            Some(tenant) => def.tenants.entry(tenant.to_owned()).or_default(),
        };
        if !list.iter().any(|r| r == role) {
            list.push(role.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_reads_nested_and_dotted_keys_and_writes_a_tree() {
        let doc = PolicyDocument::from_toml_str(
            r#"
            [permissions]
            "crm.leads.read" = "Read leads"
            [permissions.finance.invoices]
            read = "Read invoices"
            [permissions.finance]
            journal.post = "Post journal entries"
            "#,
        )
        .unwrap();
        let names: Vec<_> = doc.permissions.names().collect();
        assert_eq!(
            names,
            [
                "crm.leads.read",
                "finance.invoices.read",
                "finance.journal.post"
            ]
        );
        let text = doc.to_toml_string().unwrap();
        assert!(text.contains("[permissions.finance.invoices]"), "{text}");
        assert_eq!(PolicyDocument::from_toml_str(&text).unwrap(), doc);
    }

    #[test]
    fn a_field_rule_with_no_list_reads_as_read_deny_empty() {
        let doc = PolicyDocument::from_toml_str(
            "[permissions]\na.b = \"x\"\n[roles.r.fields.invoices]\n[roles.s.fields.invoices]\nwrite = []\n",
        )
        .unwrap();
        let rule = |role: &str| doc.roles[role].fields["invoices"].clone();
        assert_eq!(
            rule("r"),
            FieldRuleDef {
                read_deny: Some(Vec::new()),
                ..FieldRuleDef::default()
            }
        );
        assert_eq!(rule("s").write, Some(Vec::new()));
        assert_eq!(rule("s").read_deny, None);
        let text = doc.to_toml_string().unwrap();
        assert_eq!(PolicyDocument::from_toml_str(&text).unwrap(), doc);
    }

    #[test]
    fn an_empty_first_segment_stays_in_the_name() {
        // `""."invoices"."read"` used to lose its empty first segment and load as
        // `invoices.read`; it is the name `.invoices.read`, which validation refuses.
        let doc =
            PolicyDocument::from_toml_str("[permissions]\n\"\".invoices.read = \"x\"\n").unwrap();
        assert_eq!(
            doc.permissions.names().collect::<Vec<_>>(),
            [".invoices.read"]
        );
        let err = crate::Policy::from_document(doc).unwrap_err();
        assert!(err.to_string().contains("`.invoices.read`"), "{err}");
    }

    #[test]
    fn a_permission_written_twice_in_two_spellings_is_refused() {
        // TOML refuses a key written twice in one spelling; this is the other way to write
        // the same name twice, and the second description used to replace the first.
        let err = PolicyDocument::from_toml_str(
            "[permissions]\n\"finance.invoices.read\" = \"A\"\n\
             [permissions.finance.invoices]\nread = \"B\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("permission `finance.invoices.read` declared more than once"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = PolicyDocument::from_toml_str("[roles.a]\ngrant = [\"x\"]\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `grant`"), "{err}");
    }
}
