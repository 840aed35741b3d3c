//! The cedar-policy peer, in several encodings of the same policy.
//!
//! Cedar's authorizer evaluates every policy of the set on every request (there is no index by
//! principal or action), so the encodings differ mostly in how many policies they need and in
//! how much of the work they hand to the entity hierarchy, whose transitive closure cedar
//! computes once when the entities are loaded.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use rbac_core::PolicyDocument;
use rbac_core::name::Pattern;

use crate::shapes::Query;

/// Largest policy set an encoding may produce before it is skipped.
const MAX_POLICIES: usize = 200_000;
/// Largest estimated number of (entity, ancestor) pairs in the transitive closure before an
/// encoding is skipped (measured: ~220 heap bytes per pair in cedar 4.x, so ~4.4 GiB).
const MAX_CLOSURE: usize = 20_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One `permit`/`forbid` per (role, rule), wildcards as action groups.
    PerRule,
    /// One `permit` and one `forbid` per role; actions grouped per role.
    RoleGroups,
    /// Two policies; permissions are ancestors of roles in the entity hierarchy.
    PermAncestors,
    /// Per-tenant role entities and one policy per (tenant, role, rule) on `resource == Tenant`.
    TenantRoles,
}

pub const ALL: [Encoding; 4] = [
    Encoding::PerRule,
    Encoding::RoleGroups,
    Encoding::PermAncestors,
    Encoding::TenantRoles,
];

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::PerRule => "per-rule",
            Encoding::RoleGroups => "role-groups",
            Encoding::PermAncestors => "perm-ancestors",
            Encoding::TenantRoles => "tenant-roles",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Encoding::PerRule => {
                "principal User::\"alice@acme\" (one per subject and tenant) with parents Role::\"r\"; \
                 roles inherit through parents; one policy per rule: \
                 permit(principal in Role::\"r\", action == Action::\"finance.invoices.read\", resource); \
                 wildcards are action groups (action in Action::\"finance.*\"); denies are forbid"
            }
            Encoding::RoleGroups => {
                "as per-rule, but one permit and one forbid per role: \
                 permit(principal in Role::\"r\", action in Action::\"grant:r\", resource); \
                 each permission's action has the groups grant:r / deny:r of the roles naming it as parents"
            }
            Encoding::PermAncestors => {
                "two policies: permit(principal, action == Action::\"check\", resource) when { principal in resource }; \
                 forbid(...) when { resource has denied && principal in resource.denied }; \
                 resource Perm::\"p\" (attribute denied: Deny::\"p\"); roles have the Perm/Deny entities \
                 (or groups of them, for wildcards) they grant/deny as parents"
            }
            Encoding::TenantRoles => {
                "principal User::\"alice\" with parents TenantRole::\"acme/r\"; per-tenant role entities \
                 inherit per tenant; one policy per (tenant, role, rule): \
                 permit(principal in TenantRole::\"acme/r\", action == Action::\"p\", resource == Tenant::\"acme\")"
            }
        }
    }
}

/// A built cedar peer.
pub struct Cedar {
    pub encoding: Encoding,
    policies: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
    user: EntityTypeName,
    action: EntityTypeName,
    resource: EntityTypeName,
    pub n_policies: usize,
    pub n_entities: usize,
}

/// A request in string form; the uids are made per check, as an application would.
pub struct CedarQuery {
    principal: String,
    action: String,
    resource: String,
}

fn type_name(s: &str) -> EntityTypeName {
    match EntityTypeName::from_str(s) {
        Ok(t) => t,
        Err(e) => panic!("bad cedar type name {s}: {e}"),
    }
}

struct Types {
    user: EntityTypeName,
    role: EntityTypeName,
    action: EntityTypeName,
    perm: EntityTypeName,
    perm_group: EntityTypeName,
    deny: EntityTypeName,
    deny_group: EntityTypeName,
    tenant: EntityTypeName,
    tenant_role: EntityTypeName,
}

impl Types {
    fn new() -> Types {
        Types {
            user: type_name("User"),
            role: type_name("Role"),
            action: type_name("Action"),
            perm: type_name("Perm"),
            perm_group: type_name("PermGroup"),
            deny: type_name("Deny"),
            deny_group: type_name("DenyGroup"),
            tenant: type_name("Tenant"),
            tenant_role: type_name("TenantRole"),
        }
    }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn lit(id: &str) -> String {
    id.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The principal id of the per-subject-and-tenant encodings.
fn member_id(subject: &str, tenant: &str) -> String {
    if tenant.is_empty() {
        subject.to_owned()
    } else {
        format!("{subject}@{tenant}")
    }
}

fn is_wildcard(pattern: &str) -> bool {
    Pattern::parse(pattern).is_ok_and(|p| p.is_wildcard())
}

/// Memoised pattern expansion over the registry.
struct Expander<'a> {
    doc: &'a PolicyDocument,
    memo: HashMap<String, Vec<&'a str>>,
}

impl<'a> Expander<'a> {
    fn new(doc: &'a PolicyDocument) -> Self {
        Expander {
            doc,
            memo: HashMap::new(),
        }
    }

    fn expand(&mut self, pattern: &str) -> &[&'a str] {
        let doc = self.doc;
        self.memo
            .entry(pattern.to_owned())
            .or_insert_with(|| match Pattern::parse(pattern) {
                Ok(Pattern::Exact(_)) => doc
                    .permissions
                    .0
                    .get_key_value(pattern)
                    .map(|(name, _)| name.as_str())
                    .into_iter()
                    .collect(),
                Ok(p) => doc.permissions.names().filter(|n| p.matches(n)).collect(),
                Err(_) => Vec::new(),
            })
    }
}

/// The checks that apply to every encoding: no tenant-scoped rules, no tenant-only roles.
fn supported(doc: &PolicyDocument) -> Result<(), String> {
    if doc.tenants.values().any(|t| !t.roles.is_empty()) {
        return Err("tenant-scoped rules are not encoded for cedar in this benchmark".into());
    }
    Ok(())
}

/// Principals of the per-(subject, tenant) encodings: id and held roles.
fn memberships(doc: &PolicyDocument) -> Vec<(String, Vec<&str>)> {
    let mut out = Vec::new();
    for (subject, def) in &doc.subjects {
        let global: Vec<&str> = def.roles.iter().map(String::as_str).collect();
        if !global.is_empty() {
            out.push((subject.clone(), global.clone()));
            for tenant in doc.tenants.keys() {
                if !def.tenants.contains_key(tenant) {
                    out.push((member_id(subject, tenant), global.clone()));
                }
            }
        }
        for (tenant, roles) in &def.tenants {
            let mut held = global.clone();
            held.extend(roles.iter().map(String::as_str));
            out.push((member_id(subject, tenant), held));
        }
    }
    out
}

fn rule_count(doc: &PolicyDocument) -> usize {
    doc.roles
        .values()
        .map(|d| d.grants.len() + d.denies.len())
        .sum()
}

/// Why `encoding` is not built on `doc`, if it is not; decided before building anything big.
pub fn skip_reason(encoding: Encoding, doc: &PolicyDocument) -> Option<String> {
    if let Err(e) = supported(doc) {
        return Some(e);
    }
    match encoding {
        Encoding::PerRule => {
            let n = rule_count(doc);
            (n > MAX_POLICIES).then(|| format!("{n} policies > {MAX_POLICIES}"))
        }
        Encoding::RoleGroups => None,
        Encoding::PermAncestors => {
            let closure = perm_ancestor_closure(doc);
            (closure > MAX_CLOSURE).then(|| {
                format!(
                    "estimated transitive closure of {closure} (entity, ancestor) pairs > {MAX_CLOSURE} \
                     (~{} GiB at ~220 bytes a pair): every principal would carry every permission it holds",
                    closure * 220 / (1 << 30)
                )
            })
        }
        Encoding::TenantRoles => {
            if doc.tenants.is_empty() {
                return Some("no tenants: identical to per-rule".into());
            }
            let scopes = doc.tenants.len() + 1;
            let n = scopes * rule_count(doc);
            (n > MAX_POLICIES).then(|| {
                format!(
                    "{n} policies ({scopes} scopes × {} rules) > {MAX_POLICIES}",
                    rule_count(doc)
                )
            })
        }
    }
}

/// An upper bound of the closure size of the perm-ancestors encoding.
pub fn perm_ancestor_closure(doc: &PolicyDocument) -> usize {
    let mut exp = Expander::new(doc);
    let mut memo: HashMap<&str, usize> = HashMap::new();
    fn size<'a>(
        role: &'a str,
        doc: &'a PolicyDocument,
        exp: &mut Expander<'a>,
        memo: &mut HashMap<&'a str, usize>,
    ) -> usize {
        if let Some(&n) = memo.get(role) {
            return n;
        }
        let Some(def) = doc.roles.get(role) else {
            return 0;
        };
        let mut n = 1;
        for g in def.grants.iter().chain(&def.denies) {
            n += exp.expand(g).len() + usize::from(is_wildcard(g));
        }
        for p in &def.inherits {
            n += size(p, doc, exp, memo);
        }
        memo.insert(role, n);
        n
    }
    memberships(doc)
        .iter()
        .map(|(_, roles)| {
            roles
                .iter()
                .map(|r| size(r, doc, &mut exp, &mut memo))
                .sum::<usize>()
        })
        .sum()
}

fn permit_or_forbid(effect: &str, principal: &str, action: &str, resource: &str) -> String {
    format!("{effect}({principal}, {action}, {resource});\n")
}

fn action_clause(pattern: &str) -> String {
    if is_wildcard(pattern) {
        format!("action in Action::\"{}\"", lit(pattern))
    } else {
        format!("action == Action::\"{}\"", lit(pattern))
    }
}

/// Action entities for the permissions, with the wildcard patterns used anywhere as groups.
fn actions_with_pattern_groups(doc: &PolicyDocument, t: &Types, out: &mut Vec<Entity>) {
    let patterns: BTreeSet<&str> = doc
        .roles
        .values()
        .flat_map(|d| d.grants.iter().chain(&d.denies))
        .map(String::as_str)
        .filter(|p| is_wildcard(p))
        .collect();
    let parsed: Vec<(&str, Pattern)> = patterns
        .iter()
        .filter_map(|p| Pattern::parse(p).ok().map(|q| (*p, q)))
        .collect();
    for name in doc.permissions.names() {
        let parents: HashSet<EntityUid> = parsed
            .iter()
            .filter(|(_, p)| p.matches(name))
            .map(|(s, _)| uid(&t.action, s))
            .collect();
        out.push(Entity::new_no_attrs(uid(&t.action, name), parents));
    }
    for p in patterns {
        out.push(Entity::new_no_attrs(uid(&t.action, p), HashSet::new()));
    }
}

fn role_entities(doc: &PolicyDocument, t: &Types, out: &mut Vec<Entity>) {
    for (role, def) in &doc.roles {
        let parents = def.inherits.iter().map(|p| uid(&t.role, p)).collect();
        out.push(Entity::new_no_attrs(uid(&t.role, role), parents));
    }
}

fn member_entities(doc: &PolicyDocument, t: &Types, out: &mut Vec<Entity>) {
    for (id, roles) in memberships(doc) {
        let parents = roles.iter().map(|r| uid(&t.role, r)).collect();
        out.push(Entity::new_no_attrs(uid(&t.user, &id), parents));
    }
}

/// Translates the document and builds the cedar engine. `skip_reason` must be `None`.
pub fn build(encoding: Encoding, doc: &PolicyDocument) -> Result<Cedar, String> {
    supported(doc)?;
    let t = Types::new();
    let mut entities: Vec<Entity> = Vec::new();
    let mut text = String::new();
    let (user, action, resource);
    match encoding {
        Encoding::PerRule => {
            role_entities(doc, &t, &mut entities);
            actions_with_pattern_groups(doc, &t, &mut entities);
            member_entities(doc, &t, &mut entities);
            for (role, def) in &doc.roles {
                let principal = format!("principal in Role::\"{}\"", lit(role));
                for (list, effect) in [(&def.grants, "permit"), (&def.denies, "forbid")] {
                    for p in list {
                        text.push_str(&permit_or_forbid(
                            effect,
                            &principal,
                            &action_clause(p),
                            "resource",
                        ));
                    }
                }
            }
            (user, action, resource) = (t.user.clone(), t.action.clone(), t.tenant.clone());
        }
        Encoding::RoleGroups => {
            role_entities(doc, &t, &mut entities);
            member_entities(doc, &t, &mut entities);
            let mut exp = Expander::new(doc);
            let mut parents: BTreeMap<&str, HashSet<EntityUid>> = doc
                .permissions
                .names()
                .map(|n| (n, HashSet::new()))
                .collect();
            for (role, def) in &doc.roles {
                let principal = format!("principal in Role::\"{}\"", lit(role));
                for (list, kind, effect) in [
                    (&def.grants, "grant", "permit"),
                    (&def.denies, "deny", "forbid"),
                ] {
                    if list.is_empty() {
                        continue;
                    }
                    let group = format!("{kind}:{role}");
                    for p in list {
                        for name in exp.expand(p) {
                            if let Some(set) = parents.get_mut(name) {
                                set.insert(uid(&t.action, &group));
                            }
                        }
                    }
                    entities.push(Entity::new_no_attrs(uid(&t.action, &group), HashSet::new()));
                    let action = format!("action in Action::\"{}\"", lit(&group));
                    text.push_str(&permit_or_forbid(effect, &principal, &action, "resource"));
                }
            }
            for (name, ps) in parents {
                entities.push(Entity::new_no_attrs(uid(&t.action, name), ps));
            }
            (user, action, resource) = (t.user.clone(), t.action.clone(), t.tenant.clone());
        }
        Encoding::PermAncestors => {
            let mut exp = Expander::new(doc);
            let mut groups: BTreeSet<&str> = BTreeSet::new();
            for (role, def) in &doc.roles {
                let mut parents: HashSet<EntityUid> =
                    def.inherits.iter().map(|p| uid(&t.role, p)).collect();
                for (list, single, group) in [
                    (&def.grants, &t.perm, &t.perm_group),
                    (&def.denies, &t.deny, &t.deny_group),
                ] {
                    for p in list {
                        if is_wildcard(p) {
                            parents.insert(uid(group, p));
                            groups.insert(p);
                        } else {
                            parents.insert(uid(single, p));
                        }
                    }
                }
                entities.push(Entity::new_no_attrs(uid(&t.role, role), parents));
            }
            for g in groups {
                let names = exp.expand(g);
                let perms = names.iter().map(|n| uid(&t.perm, n)).collect();
                let denies = names.iter().map(|n| uid(&t.deny, n)).collect();
                entities.push(Entity::new_no_attrs(uid(&t.perm_group, g), perms));
                entities.push(Entity::new_no_attrs(uid(&t.deny_group, g), denies));
            }
            for name in doc.permissions.names() {
                let attrs = HashMap::from([(
                    "denied".to_owned(),
                    RestrictedExpression::new_entity_uid(uid(&t.deny, name)),
                )]);
                let e = Entity::new(uid(&t.perm, name), attrs, HashSet::new())
                    .map_err(|e| e.to_string())?;
                entities.push(e);
                entities.push(Entity::new_no_attrs(uid(&t.deny, name), HashSet::new()));
            }
            member_entities(doc, &t, &mut entities);
            text.push_str(
                "permit(principal, action == Action::\"check\", resource) when { principal in resource };\n\
                 forbid(principal, action == Action::\"check\", resource) \
                 when { resource has denied && principal in resource.denied };\n",
            );
            (user, action, resource) = (t.user.clone(), t.action.clone(), t.perm.clone());
        }
        Encoding::TenantRoles => {
            let mut scopes: Vec<&str> = doc.tenants.keys().map(String::as_str).collect();
            let any_global = doc.subjects.values().any(|d| !d.roles.is_empty());
            if any_global {
                scopes.push("");
            }
            let scoped = |t: &str, r: &str| format!("{t}/{r}");
            for scope in &scopes {
                for (role, def) in &doc.roles {
                    let parents = def
                        .inherits
                        .iter()
                        .map(|p| uid(&t.tenant_role, &scoped(scope, p)))
                        .collect();
                    entities.push(Entity::new_no_attrs(
                        uid(&t.tenant_role, &scoped(scope, role)),
                        parents,
                    ));
                    let principal =
                        format!("principal in TenantRole::\"{}\"", lit(&scoped(scope, role)));
                    let resource = format!("resource == Tenant::\"{}\"", lit(scope));
                    for (list, effect) in [(&def.grants, "permit"), (&def.denies, "forbid")] {
                        for p in list {
                            text.push_str(&permit_or_forbid(
                                effect,
                                &principal,
                                &action_clause(p),
                                &resource,
                            ));
                        }
                    }
                }
            }
            actions_with_pattern_groups(doc, &t, &mut entities);
            for (subject, def) in &doc.subjects {
                let mut parents = HashSet::new();
                for r in &def.roles {
                    parents.insert(uid(&t.tenant_role, &scoped("", r)));
                }
                for tenant in doc.tenants.keys() {
                    let held = def
                        .roles
                        .iter()
                        .chain(def.tenants.get(tenant).into_iter().flatten());
                    for r in held {
                        parents.insert(uid(&t.tenant_role, &scoped(tenant, r)));
                    }
                }
                entities.push(Entity::new_no_attrs(uid(&t.user, subject), parents));
            }
            (user, action, resource) = (t.user.clone(), t.action.clone(), t.tenant.clone());
        }
    }
    let policies = PolicySet::from_str(&text).map_err(|e| format!("cedar policies: {e}"))?;
    drop(text);
    let n_entities = entities.len();
    let entities =
        Entities::from_entities(entities, None).map_err(|e| format!("cedar entities: {e}"))?;
    let n_policies = policies.policies().count();
    Ok(Cedar {
        encoding,
        policies,
        entities,
        authorizer: Authorizer::new(),
        user,
        action,
        resource,
        n_policies,
        n_entities,
    })
}

impl Cedar {
    pub fn query(&self, q: &Query) -> CedarQuery {
        match self.encoding {
            Encoding::PerRule | Encoding::RoleGroups => CedarQuery {
                principal: member_id(&q.subject, &q.tenant),
                action: q.permission.clone(),
                resource: q.tenant.clone(),
            },
            Encoding::PermAncestors => CedarQuery {
                principal: member_id(&q.subject, &q.tenant),
                action: "check".to_owned(),
                resource: q.permission.clone(),
            },
            Encoding::TenantRoles => CedarQuery {
                principal: q.subject.clone(),
                action: q.permission.clone(),
                resource: q.tenant.clone(),
            },
        }
    }

    #[inline]
    pub fn check(&self, q: &CedarQuery) -> bool {
        let request = Request::new(
            uid(&self.user, &q.principal),
            uid(&self.action, &q.action),
            uid(&self.resource, &q.resource),
            Context::empty(),
            None,
        );
        let request = match request {
            Ok(r) => r,
            Err(e) => panic!("cedar request: {e}"),
        };
        self.authorizer
            .is_authorized(&request, &self.policies, &self.entities)
            .decision()
            == Decision::Allow
    }
}
