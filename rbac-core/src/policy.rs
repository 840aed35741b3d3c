//! A validated policy: loading from TOML, and the errors that name what is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::document::{PolicyDocument, RoleDef};
use crate::name::{self, NameError, Pattern};

/// A policy document that passed validation: every name well-formed, every reference declared,
/// no inheritance cycle. Build an [`crate::Engine`] from it.
///
/// ```
/// use rbac_core::Policy;
/// let policy = Policy::from_toml_str(r#"
///     [permissions.finance.invoices]
///     read = "Read invoices"
///     [roles.viewer]
///     grants = ["finance.invoices.read"]
///     [subjects.alice]
///     roles = ["viewer"]
/// "#)?;
/// assert_eq!(policy.document().roles.len(), 1);
/// # Ok::<(), rbac_core::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    document: PolicyDocument,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not TOML of the policy's shape.
    #[error("{source_name}: {message}")]
    Syntax {
        /// The file name, or `<string>`.
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The document is well-formed TOML but breaks the policy's rules; every problem is listed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

/// Every problem found in one document, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// The file name, or `<string>`.
    pub source_name: String,
    /// The problems, each naming its item.
    pub issues: Vec<Issue>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{}: {n} error{} in the policy",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {}: {issue}", self.source_name)?;
        }
        Ok(())
    }
}

/// One problem, and the item it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where the problem is.
    pub item: Item,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.problem)
    }
}

/// The part of a document a problem was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An entry of the permission registry.
    Permission(String),
    /// A global role.
    Role(String),
    /// A role's layer inside a tenant.
    TenantRole {
        /// The tenant.
        tenant: String,
        /// The role.
        role: String,
    },
    /// A tenant.
    Tenant(String),
    /// A subject's global roles.
    Subject(String),
    /// A subject's roles in one tenant.
    SubjectInTenant {
        /// The subject.
        subject: String,
        /// The tenant.
        tenant: String,
    },
    /// A resource declaration.
    Resource(String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Permission(p) => write!(f, "permission `{p}`"),
            Item::Role(r) => write!(f, "role `{r}`"),
            Item::TenantRole { tenant, role } => write!(f, "role `{role}` in tenant `{tenant}`"),
            Item::Tenant(t) => write!(f, "tenant `{t}`"),
            Item::Subject(s) => write!(f, "subject `{s}`"),
            Item::SubjectInTenant { subject, tenant } => {
                write!(f, "subject `{subject}` in tenant `{tenant}`")
            }
            Item::Resource(r) => write!(f, "resource `{r}`"),
        }
    }
}

/// What is wrong with an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The item's own name is malformed.
    #[error("malformed name: {0}")]
    MalformedName(NameError),
    /// A grant or deny pattern is malformed.
    #[error("malformed {rule} pattern: {error}")]
    BadPattern {
        /// `grant` or `deny`.
        rule: &'static str,
        /// What is wrong with it.
        error: NameError,
    },
    /// A grant or deny names a permission the registry does not declare.
    #[error(
        "{rule} names the undeclared permission `{name}`{}",
        did_you_mean(suggestion)
    )]
    UnknownPermission {
        /// `grant` or `deny`.
        rule: &'static str,
        /// The permission.
        name: String,
        /// A declared permission with a close name.
        suggestion: Option<String>,
    },
    /// A wildcard matches no declared permission (most often a misspelt module).
    #[error("{rule} pattern `{pattern}` matches no declared permission")]
    EmptyWildcard {
        /// `grant` or `deny`.
        rule: &'static str,
        /// The pattern.
        pattern: String,
    },
    /// A role that does not exist where it is used.
    #[error(
        "unknown role `{name}`{}{}",
        scope_hint(tenant),
        did_you_mean(suggestion)
    )]
    UnknownRole {
        /// The role.
        name: String,
        /// The tenant it was looked up in, if any.
        tenant: Option<String>,
        /// An existing role with a close name.
        suggestion: Option<String>,
    },
    /// A tenant that is not declared under `[tenants]`.
    #[error(
        "unknown tenant `{name}` (declare it under `[tenants.{name}]`){}",
        did_you_mean(suggestion)
    )]
    UnknownTenant {
        /// The tenant.
        name: String,
        /// A declared tenant with a close name.
        suggestion: Option<String>,
    },
    /// Role inheritance loops.
    #[error("inheritance cycle {}{}", path.join(" → "), scope_hint(tenant))]
    Cycle {
        /// The roles around the loop, the first repeated at the end.
        path: Vec<String>,
        /// The tenant whose scoped inherits close the loop, if any.
        tenant: Option<String>,
    },
    /// The same entry listed twice.
    #[error("`{name}` is listed twice in `{list}`")]
    Duplicate {
        /// The list (`grants`, `denies`, `inherits`, `roles`).
        list: &'static str,
        /// The repeated entry.
        name: String,
    },
    /// A resource declaration that cannot be used (a bad identifier, an unknown column type).
    #[error("{0}")]
    BadResource(String),
    /// A row filter or field rule names a resource the policy does not declare.
    #[error(
        "{kind} for the undeclared resource `{name}` (declare it under `[resources.{name}]`){}",
        did_you_mean(suggestion)
    )]
    UnknownResource {
        /// `row filter` or `field rule`.
        kind: &'static str,
        /// The resource.
        name: String,
        /// A declared resource with a close name.
        suggestion: Option<String>,
    },
    /// A row filter that does not parse or does not fit its resource.
    #[error("row filter for `{resource}`: {error}")]
    BadRowFilter {
        /// The resource.
        resource: String,
        /// What is wrong.
        error: crate::rows::FilterError,
    },
    /// A field rule that does not fit its resource.
    #[error("field rule for `{resource}`: {message}")]
    BadFieldRule {
        /// The resource.
        resource: String,
        /// What is wrong.
        message: String,
    },
    /// A permission whose name is also the parent of another permission.
    #[error(
        "`{child}` is declared too; a permission cannot also be the parent of another permission"
    )]
    PermissionIsPrefix {
        /// The longer name.
        child: String,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn scope_hint(tenant: &Option<String>) -> String {
    tenant
        .as_ref()
        .map(|t| format!(" in tenant `{t}`"))
        .unwrap_or_default()
}

impl Policy {
    /// Parses and validates a TOML policy. Errors name the source as `<string>`.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        Self::from_toml_str_named(text, "<string>")
    }

    /// Parses and validates a TOML policy; errors name `source_name` (a file name, a URL).
    pub fn from_toml_str_named(text: &str, source_name: &str) -> Result<Policy, PolicyError> {
        let document = PolicyDocument::from_toml_str(text).map_err(|e| PolicyError::Syntax {
            source_name: source_name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::from_document_named(document, source_name)
    }

    /// Reads, parses and validates a TOML policy file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml_str_named(&text, &shown)
    }

    /// Validates a document built in code. A field rule with no list is kept as
    /// `read_deny = []`, its meaning, as a TOML file reads it and the store keeps it.
    pub fn from_document(document: PolicyDocument) -> Result<Policy, ValidationErrors> {
        Self::validated(document, "<document>")
    }

    fn from_document_named(document: PolicyDocument, source: &str) -> Result<Policy, PolicyError> {
        Ok(Self::validated(document, source)?)
    }

    fn validated(mut document: PolicyDocument, source: &str) -> Result<Policy, ValidationErrors> {
        let issues = validate(&document);
        if issues.is_empty() {
            // In the form the store keeps, once validated (an empty list under an unknown
            // tenant is still an error), so that a policy compares equal to itself read back.
            document.normalize();
            Ok(Policy { document })
        } else {
            Err(ValidationErrors {
                source_name: source.to_owned(),
                issues,
            })
        }
    }

    /// The validated document.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// Gives the document back, for editing and validating again.
    pub fn into_document(self) -> PolicyDocument {
        self.document
    }

    /// Writes the policy as TOML; [`Policy::from_toml_str`] reads it back equal.
    ///
    /// # Errors
    /// [`toml::ser::Error`] if the TOML writer refuses the document (see
    /// [`PolicyDocument::to_toml_string`]).
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        self.document.to_toml_string()
    }
}

/// Checks every rule of the model and returns all problems found.
fn validate(doc: &PolicyDocument) -> Vec<Issue> {
    let mut v = Validator {
        doc,
        issues: Vec::new(),
    };
    v.registry();
    let resources = v.resources();
    for (role, def) in &doc.roles {
        v.resource_rules(&Item::Role(role.clone()), def, &resources);
    }
    for (tenant, def) in &doc.tenants {
        for (role, layer) in &def.roles {
            let item = Item::TenantRole {
                tenant: tenant.clone(),
                role: role.clone(),
            };
            v.resource_rules(&item, layer, &resources);
        }
    }
    for (role, def) in &doc.roles {
        let item = Item::Role(role.clone());
        v.name(&item, name::validate_name(role));
        v.layer(&item, def, None);
    }
    for (tenant, def) in &doc.tenants {
        v.name(&Item::Tenant(tenant.clone()), name::validate_name(tenant));
        for (role, layer) in &def.roles {
            let item = Item::TenantRole {
                tenant: tenant.clone(),
                role: role.clone(),
            };
            v.name(&item, name::validate_name(role));
            v.layer(&item, layer, Some(tenant));
        }
    }
    v.cycles();
    for (subject, def) in &doc.subjects {
        let item = Item::Subject(subject.clone());
        v.name(&item, name::validate_subject(subject));
        v.role_list(&item, &def.roles, None);
        for (tenant, roles) in &def.tenants {
            let item = Item::SubjectInTenant {
                subject: subject.clone(),
                tenant: tenant.clone(),
            };
            if doc.tenants.contains_key(tenant) {
                v.role_list(&item, roles, Some(tenant));
            } else {
                let suggestion = name::suggest(tenant, doc.tenants.keys().map(String::as_str));
                v.push(
                    &item,
                    Problem::UnknownTenant {
                        name: tenant.clone(),
                        suggestion: suggestion.map(str::to_owned),
                    },
                );
            }
        }
    }
    v.issues
}

struct Validator<'a> {
    doc: &'a PolicyDocument,
    issues: Vec<Issue>,
}

impl Validator<'_> {
    /// Checks every resource declaration and compiles them for checking rules against.
    fn resources(&mut self) -> BTreeMap<String, crate::resource::Resource> {
        let mut out = BTreeMap::new();
        for (name, def) in &self.doc.resources {
            let item = Item::Resource(name.clone());
            if !crate::resource::is_identifier(name) {
                self.push(
                    &item,
                    Problem::BadResource(format!(
                        "the name `{name}` is not an identifier (letters, digits and `_`)"
                    )),
                );
            }
            for message in crate::resource::validate(def) {
                self.push(&item, Problem::BadResource(message));
            }
            out.insert(name.clone(), crate::resource::Resource::compile(name, def));
        }
        out
    }

    /// Checks a layer's row filters and field rules against the declared resources.
    fn resource_rules(
        &mut self,
        item: &Item,
        def: &RoleDef,
        resources: &BTreeMap<String, crate::resource::Resource>,
    ) {
        let unknown = |kind: &'static str, name: &str| Problem::UnknownResource {
            kind,
            name: name.to_owned(),
            suggestion: name::suggest(name, resources.keys().map(String::as_str))
                .map(str::to_owned),
        };
        for (resource, text) in &def.rows {
            let Some(compiled) = resources.get(resource) else {
                self.push(item, unknown("row filter", resource));
                continue;
            };
            if let Err(errors) = crate::rows::compile_filter(text, compiled) {
                for error in errors {
                    self.push(
                        item,
                        Problem::BadRowFilter {
                            resource: resource.clone(),
                            error,
                        },
                    );
                }
            }
        }
        for (resource, rule) in &def.fields {
            let Some(compiled) = resources.get(resource) else {
                self.push(item, unknown("field rule", resource));
                continue;
            };
            for message in crate::fields::validate(rule, compiled) {
                self.push(
                    item,
                    Problem::BadFieldRule {
                        resource: resource.clone(),
                        message,
                    },
                );
            }
        }
    }

    fn push(&mut self, item: &Item, problem: Problem) {
        self.issues.push(Issue {
            item: item.clone(),
            problem,
        });
    }

    fn name(&mut self, item: &Item, result: Result<(), NameError>) {
        if let Err(e) = result {
            self.push(item, Problem::MalformedName(e));
        }
    }

    fn registry(&mut self) {
        let names: Vec<&String> = self.doc.permissions.0.keys().collect();
        for (i, name) in names.iter().enumerate() {
            let item = Item::Permission((*name).clone());
            self.name(&item, name::validate_permission(name));
            // Names sort with children right after their parent (`.` sorts before every
            // segment character), so one look at the next name finds a parent/child clash.
            if let Some(next) = names.get(i + 1)
                && next
                    .strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            {
                self.push(
                    &item,
                    Problem::PermissionIsPrefix {
                        child: (*next).clone(),
                    },
                );
            }
        }
    }

    fn role_exists(&self, role: &str, tenant: Option<&str>) -> bool {
        self.doc.roles.contains_key(role)
            || tenant.is_some_and(|t| {
                self.doc
                    .tenants
                    .get(t)
                    .is_some_and(|def| def.roles.contains_key(role))
            })
    }

    fn unknown_role(&mut self, item: &Item, role: &str, tenant: Option<&str>) {
        let mut candidates: Vec<&str> = self.doc.roles.keys().map(String::as_str).collect();
        if let Some(def) = tenant.and_then(|t| self.doc.tenants.get(t)) {
            candidates.extend(def.roles.keys().map(String::as_str));
        }
        let suggestion = name::suggest(role, candidates).map(str::to_owned);
        self.push(
            item,
            Problem::UnknownRole {
                name: role.to_owned(),
                tenant: tenant.map(str::to_owned),
                suggestion,
            },
        );
    }

    fn role_list(&mut self, item: &Item, roles: &[String], tenant: Option<&str>) {
        let mut seen = BTreeSet::new();
        for role in roles {
            if !seen.insert(role) {
                self.push(
                    item,
                    Problem::Duplicate {
                        list: "roles",
                        name: role.clone(),
                    },
                );
            } else if !self.role_exists(role, tenant) {
                self.unknown_role(item, role, tenant);
            }
        }
    }

    fn layer(&mut self, item: &Item, def: &RoleDef, tenant: Option<&str>) {
        let mut seen = BTreeSet::new();
        for parent in &def.inherits {
            if !seen.insert(parent) {
                self.push(
                    item,
                    Problem::Duplicate {
                        list: "inherits",
                        name: parent.clone(),
                    },
                );
            } else if !self.role_exists(parent, tenant) {
                self.unknown_role(item, parent, tenant);
            }
        }
        self.patterns(item, &def.grants, "grant", "grants");
        self.patterns(item, &def.denies, "deny", "denies");
    }

    fn patterns(&mut self, item: &Item, list: &[String], rule: &'static str, key: &'static str) {
        let mut seen = BTreeSet::new();
        for text in list {
            if !seen.insert(text) {
                self.push(
                    item,
                    Problem::Duplicate {
                        list: key,
                        name: text.clone(),
                    },
                );
                continue;
            }
            match Pattern::parse(text) {
                Err(error) => self.push(item, Problem::BadPattern { rule, error }),
                Ok(Pattern::Exact(name)) if !self.doc.permissions.contains(&name) => {
                    let suggestion =
                        name::suggest(&name, self.doc.permissions.names()).map(str::to_owned);
                    self.push(
                        item,
                        Problem::UnknownPermission {
                            rule,
                            name,
                            suggestion,
                        },
                    );
                }
                Ok(pattern @ Pattern::Prefix(_))
                    if !self.doc.permissions.names().any(|n| pattern.matches(n)) =>
                {
                    self.push(
                        item,
                        Problem::EmptyWildcard {
                            rule,
                            pattern: text.clone(),
                        },
                    );
                }
                Ok(_) => {}
            }
        }
    }

    /// Reports every inheritance cycle: those among global roles once, and those that a tenant's
    /// scoped inherits close once per tenant.
    fn cycles(&mut self) {
        let global: BTreeMap<&str, Vec<&str>> = self
            .doc
            .roles
            .iter()
            .map(|(r, d)| (r.as_str(), d.inherits.iter().map(String::as_str).collect()))
            .collect();
        let global_cycles = find_cycles(&global);
        for path in &global_cycles {
            let item = Item::Role(path.first().cloned().unwrap_or_default());
            self.push(
                &item,
                Problem::Cycle {
                    path: path.clone(),
                    tenant: None,
                },
            );
        }
        for (tenant, def) in &self.doc.tenants {
            if def.roles.values().all(|l| l.inherits.is_empty()) {
                continue;
            }
            let mut graph = global.clone();
            for (role, layer) in &def.roles {
                graph
                    .entry(role.as_str())
                    .or_default()
                    .extend(layer.inherits.iter().map(String::as_str));
            }
            for path in find_cycles(&graph) {
                if global_cycles.contains(&path) {
                    continue;
                }
                let item = Item::TenantRole {
                    tenant: tenant.clone(),
                    role: path.first().cloned().unwrap_or_default(),
                };
                self.push(
                    &item,
                    Problem::Cycle {
                        path,
                        tenant: Some(tenant.clone()),
                    },
                );
            }
        }
    }
}

/// Every elementary cycle reachable through a back edge of a depth-first search, each rotated to
/// start at its smallest name so that the same loop is reported once.
fn find_cycles(graph: &BTreeMap<&str, Vec<&str>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for &start in graph.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative DFS: (node, index of the next child to visit).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last().copied() {
            let children = graph.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&child) = children.get(next) {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                match marks.get(child) {
                    None => {
                        marks.insert(child, Mark::Open);
                        stack.push((child, 0));
                    }
                    Some(Mark::Open) => {
                        let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<String> = stack
                            .iter()
                            .skip(from)
                            .map(|(n, _)| (*n).to_owned())
                            .collect();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by(|a, b| a.1.cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        if let Some(first) = cycle.first().cloned() {
                            cycle.push(first);
                        }
                        found.insert(cycle);
                    }
                    Some(Mark::Done) => {}
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Policy::from_toml_str(text) {
            Err(PolicyError::Invalid(v)) => v.issues.iter().map(ToString::to_string).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    const REGISTRY: &str = r#"
        [permissions.finance.invoices]
        read = "r"
        approve = "a"
        [permissions.crm.leads]
        read = "r"
    "#;

    #[test]
    fn every_problem_is_reported_together() {
        let text = format!(
            "{REGISTRY}
            [roles.a]
            inherits = [\"b\", \"ghost\"]
            grants = [\"finance.invoice.read\", \"fin.*\", \"finance.*.read\", \"crm.*\", \"crm.*\"]
            [roles.b]
            inherits = [\"a\"]
            denies = [\"Finance.x\"]
            [subjects.alice]
            roles = [\"a\", \"zz\"]
            [subjects.alice.tenants]
            acme = [\"a\"]
            "
        );
        let errs = errors(&text);
        let expected = [
            "role `a`: unknown role `ghost`",
            "role `a`: grant names the undeclared permission `finance.invoice.read` (did you mean `finance.invoices.read`?)",
            "role `a`: grant pattern `fin.*` matches no declared permission",
            "role `a`: malformed grant pattern: `finance.*.read`: a wildcard may only be the whole last segment (`finance.*`, `*`)",
            "role `a`: `crm.*` is listed twice in `grants`",
            "role `b`: malformed deny pattern: `Finance.x` has the character `F`; permission segments use lowercase letters, digits and `_`",
            "role `a`: inheritance cycle a → b → a",
            "subject `alice`: unknown role `zz`",
            "subject `alice` in tenant `acme`: unknown tenant `acme` (declare it under `[tenants.acme]`)",
        ];
        assert_eq!(errs, expected);
    }

    #[test]
    fn tenant_scoped_inherits_can_close_a_cycle() {
        let text = format!(
            "{REGISTRY}
            [roles.a]
            inherits = [\"b\"]
            [roles.b]
            [tenants.t1.roles.b]
            inherits = [\"a\"]
            [tenants.t2.roles.custom]
            inherits = [\"a\", \"other_tenants_role\"]
            [tenants.t3.roles.other_tenants_role]
            "
        );
        assert_eq!(
            errors(&text),
            [
                "role `custom` in tenant `t2`: unknown role `other_tenants_role` in tenant `t2`",
                "role `a` in tenant `t1`: inheritance cycle a → b → a in tenant `t1`",
            ]
        );
    }

    #[test]
    fn permission_cannot_be_a_parent() {
        let errs = errors("[permissions]\n\"a.b\" = \"x\"\n\"a.b.c\" = \"y\"\n");
        assert_eq!(
            errs,
            [
                "permission `a.b`: `a.b.c` is declared too; a permission cannot also be the parent of another permission"
            ]
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[roles.a]\ninherits = [\"a\"]\n").unwrap();
        let err = Policy::from_toml_file(&path).unwrap_err().to_string();
        let shown = path.display().to_string();
        assert_eq!(
            err,
            format!("{shown}: 1 error in the policy\n  {shown}: role `a`: inheritance cycle a → a")
        );
        let err = Policy::from_toml_file(dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(err, PolicyError::Io { .. }), "{err}");
        std::fs::write(&path, "[roles.a\n").unwrap();
        let err = Policy::from_toml_file(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{shown}: TOML parse error at line 1")),
            "{err}"
        );
    }

    #[test]
    fn toml_round_trip_is_exact() {
        let text = format!(
            "{REGISTRY}
            [roles.viewer]
            description = \"Reads\"
            grants = [\"finance.invoices.read\", \"crm.*\"]
            [roles.boss]
            inherits = [\"viewer\"]
            grants = [\"*\"]
            denies = [\"finance.invoices.approve\"]
            [tenants.acme]
            description = \"Acme\"
            [tenants.acme.roles.viewer]
            denies = [\"crm.leads.read\"]
            [tenants.acme.roles.auditor]
            inherits = [\"viewer\"]
            [subjects.alice]
            roles = [\"boss\"]
            [subjects.bob.tenants]
            acme = [\"auditor\", \"viewer\"]
            "
        );
        let policy = Policy::from_toml_str(&text).unwrap();
        let again = Policy::from_toml_str(&policy.to_toml_string().unwrap()).unwrap();
        assert_eq!(policy, again);
    }
}
