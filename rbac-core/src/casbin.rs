//! Import and export of casbin RBAC policies.
//!
//! Supported models are the RBAC shapes with exact-match matchers:
//!
//! | casbin | this crate |
//! |---|---|
//! | `r = sub, obj, act`, `p = sub, obj, act` | checks in the global scope (tenant `""`) |
//! | `r = sub, dom, obj, act`, `p = sub, dom, obj, act`, `g = _, _, _` | tenant `dom` |
//! | `p = …, eft` with `some(where (p.eft == allow)) && !some(where (p.eft == deny))` | denies |
//! | `g, alice, admin[, dom]` | `alice` holds `admin` (in `dom`) |
//! | `g, admin, editor[, dom]` where `admin` is a role | `admin` inherits `editor` (in `dom`) |
//!
//! A casbin request `(sub, dom, obj, act)` is the check `(sub, dom, "obj.act")`. A name is a role
//! when it is the subject of a `p` line or the second field of a `g` line; every other name is a
//! subject. casbin lets a role name itself be a request subject (`g(r.sub, p.sub)` holds when
//! both are equal), so the import also gives each role to a subject of the same name.
//!
//! Anything else (`keyMatch`, `regexMatch`, `g2`, ABAC attributes, `priority` effects, other
//! field names) is refused with an error naming the part; so is a role graph with a cycle, which
//! casbin tolerates and this crate does not, and an action with a dot in it (the permission
//! `a.b.c` must stand for one object and action). Two differences remain by design: casbin's
//! default role manager stops following role links after 10 levels, this crate follows any depth;
//! and the model parser ignores whitespace, so it reads a few spellings casbin itself rejects.
//!
//! ```
//! let model = "
//! [request_definition]
//! r = sub, dom, obj, act
//! [policy_definition]
//! p = sub, dom, obj, act
//! [role_definition]
//! g = _, _, _
//! [policy_effect]
//! e = some(where (p.eft == allow))
//! [matchers]
//! m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
//! ";
//! let csv = "p, admin, acme, invoices, read\ng, alice, admin, acme\n";
//! let policy = rbac_core::casbin::import(model, csv)?;
//! let engine = rbac_core::Engine::new(&policy);
//! assert!(engine.check("alice", "acme", "invoices.read").is_allowed());
//! # Ok::<(), rbac_core::casbin::CasbinError>(())
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::document::PolicyDocument;
use crate::name::{self, Pattern};
use crate::policy::{Policy, ValidationErrors};

/// Why a casbin model or policy could not be imported or exported.
#[derive(Debug, thiserror::Error)]
pub enum CasbinError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The model uses something this crate cannot represent.
    #[error("{source_name}: {part}: {detail}")]
    Model {
        /// The model file, or `<model>`.
        source_name: String,
        /// The section or key (`[matchers]`).
        part: String,
        /// What is unsupported, and what is.
        detail: String,
    },
    /// A policy line is malformed or cannot be represented.
    #[error("{source_name}:{line}: {detail}")]
    Line {
        /// The policy file, or `<policy>`.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The imported policy breaks this crate's rules (most often: a cycle among roles).
    #[error("the casbin policy cannot be represented: {0}")]
    Invalid(#[from] ValidationErrors),
    /// The policy uses something casbin's exact-match RBAC cannot express.
    #[error("cannot export to casbin: {0}")]
    Export(String),
}

/// What a supported casbin model says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// Requests and rules carry a domain (tenant).
    pub domains: bool,
    /// Policy lines carry an effect field.
    pub effect_field: bool,
    /// The effect is allow-unless-denied (otherwise: allow if any allow).
    pub deny_override: bool,
}

impl ModelShape {
    /// The model text for this shape.
    pub fn model_text(&self) -> String {
        let dom = if self.domains { "dom, " } else { "" };
        let eft = if self.effect_field { ", eft" } else { "" };
        let g = if self.domains { "_, _, _" } else { "_, _" };
        let effect = if self.deny_override {
            "some(where (p.eft == allow)) && !some(where (p.eft == deny))"
        } else {
            "some(where (p.eft == allow))"
        };
        let matcher = if self.domains {
            "g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act"
        } else {
            "g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act"
        };
        format!(
            "[request_definition]\nr = sub, {dom}obj, act\n\n[policy_definition]\np = sub, {dom}obj, act{eft}\n\n\
             [role_definition]\ng = {g}\n\n[policy_effect]\ne = {effect}\n\n[matchers]\nm = {matcher}\n"
        )
    }
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Reads a casbin model (`.conf`) and says which supported shape it is.
pub fn parse_model(text: &str, source_name: &str) -> Result<ModelShape, CasbinError> {
    let err = |part: &str, detail: String| CasbinError::Model {
        source_name: source_name.to_owned(),
        part: part.to_owned(),
        detail,
    };
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = String::new();
    let mut pending: Option<(String, String)> = None;
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some((key, mut value)) = pending.take() {
            // A value continued with a trailing backslash.
            let (more, cont) = match line.strip_suffix('\\') {
                Some(m) => (m, true),
                None => (line, false),
            };
            value.push_str(more);
            if cont {
                pending = Some((key, value));
            } else {
                sections
                    .entry(current.clone())
                    .or_default()
                    .insert(key, value);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(
                &format!("[{current}]"),
                format!("cannot read the line `{line}`"),
            ));
        };
        let (key, value) = (key.trim().to_owned(), value.trim());
        match value.strip_suffix('\\') {
            Some(v) => pending = Some((key, v.to_owned())),
            None => {
                sections
                    .entry(current.clone())
                    .or_default()
                    .insert(key, value.to_owned());
            }
        }
    }
    let get = |section: &str, key: &str| -> Result<String, CasbinError> {
        sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(|v| squash(v))
            .ok_or_else(|| err(&format!("[{section}]"), format!("`{key}` is missing")))
    };
    for (section, keys) in &sections {
        let allowed: &[&str] = match section.as_str() {
            "request_definition" => &["r"],
            "policy_definition" => &["p"],
            "role_definition" => &["g"],
            "policy_effect" => &["e"],
            "matchers" => &["m"],
            _ => {
                return Err(err(
                    &format!("[{section}]"),
                    "this section is not supported".into(),
                ));
            }
        };
        if let Some(key) = keys.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(err(
                &format!("[{section}]"),
                format!(
                    "`{key}` is not supported: only one request, policy and role definition (`r`, `p`, `g`)"
                ),
            ));
        }
    }
    let request = get("request_definition", "r")?;
    let domains = match request.as_str() {
        "sub,obj,act" => false,
        "sub,dom,obj,act" => true,
        other => {
            return Err(err(
                "[request_definition]",
                format!(
                    "`r = {other}` is not supported: use `sub, obj, act` or `sub, dom, obj, act`"
                ),
            ));
        }
    };
    let dom = if domains { "dom," } else { "" };
    let policy = get("policy_definition", "p")?;
    let effect_field = if policy == format!("sub,{dom}obj,act") {
        false
    } else if policy == format!("sub,{dom}obj,act,eft") {
        true
    } else {
        return Err(err(
            "[policy_definition]",
            format!(
                "`p = {policy}` is not supported: use `sub, {dom}obj, act` (optionally `, eft`)"
            ),
        ));
    };
    let role = get("role_definition", "g")?;
    let want_role = if domains { "_,_,_" } else { "_,_" };
    if role != want_role {
        return Err(err(
            "[role_definition]",
            format!("`g = {role}` is not supported here: use `g = {want_role}`"),
        ));
    }
    let effect = get("policy_effect", "e")?;
    let deny_override = match effect.as_str() {
        "some(where(p.eft==allow))" => false,
        "some(where(p.eft==allow))&&!some(where(p.eft==deny))" => true,
        other => {
            return Err(err(
                "[policy_effect]",
                format!(
                    "`{other}` is not supported: use `some(where (p.eft == allow))` or \
                     `some(where (p.eft == allow)) && !some(where (p.eft == deny))`"
                ),
            ));
        }
    };
    if deny_override && !effect_field {
        return Err(err(
            "[policy_definition]",
            "a deny effect needs an `eft` field in `p`".into(),
        ));
    }
    let matcher = get("matchers", "m")?;
    let mut required: BTreeSet<&str> = BTreeSet::from(["r.obj==p.obj", "r.act==p.act"]);
    required.insert(if domains {
        "g(r.sub,p.sub,r.dom)"
    } else {
        "g(r.sub,p.sub)"
    });
    if domains {
        required.insert("r.dom==p.dom");
    }
    let mut seen = BTreeSet::new();
    for clause in matcher.split("&&") {
        let clause = strip_parens(clause);
        let canonical = canonical_clause(clause);
        if !required.contains(canonical.as_str()) {
            return Err(err(
                "[matchers]",
                format!(
                    "the clause `{clause}` is not supported: only exact matches of \
                     {} can be represented",
                    required
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        seen.insert(canonical);
    }
    if let Some(missing) = required.iter().find(|c| !seen.contains(**c)) {
        return Err(err(
            "[matchers]",
            format!("the clause `{missing}` is missing"),
        ));
    }
    Ok(ModelShape {
        domains,
        effect_field,
        deny_override,
    })
}

/// Removes parentheses that wrap a clause or that belong to the expression around it
/// (`(a && b)` splits into `(a` and `b)`), keeping those of calls such as `g(r.sub, p.sub)`.
fn strip_parens(mut clause: &str) -> &str {
    loop {
        let opens = clause.matches('(').count();
        let closes = clause.matches(')').count();
        let next = if opens > closes {
            clause.strip_prefix('(')
        } else if closes > opens {
            clause.strip_suffix(')')
        } else {
            clause
                .strip_prefix('(')
                .and_then(|c| c.strip_suffix(')'))
                .filter(|inner| balanced(inner))
        };
        match next {
            Some(inner) => clause = inner,
            None => return clause,
        }
    }
}

fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// `p.obj==r.obj` and `r.obj==p.obj` are the same clause.
fn canonical_clause(clause: &str) -> String {
    match clause.split_once("==") {
        Some((a, b)) if a.starts_with("p.") && b.starts_with("r.") => format!("{b}=={a}"),
        _ => clause.to_owned(),
    }
}

/// The permission a casbin request's object and action are checked as: `obj.act`.
///
/// `None` when they name no permission: the action is not one segment (`b.c` would let the
/// request `(a, b.c)` stand for `(a.b, c)`), or a segment is malformed. Deny such a request.
///
/// ```
/// use rbac_core::casbin::permission_name;
/// assert_eq!(permission_name("finance.invoices", "read").as_deref(), Some("finance.invoices.read"));
/// assert_eq!(permission_name("a", "b.c"), None);
/// assert_eq!(permission_name("/api/users", "GET"), None);
/// ```
pub fn permission_name(object: &str, action: &str) -> Option<String> {
    let name = format!("{object}.{action}");
    (!action.contains('.') && name::validate_permission(&name).is_ok()).then_some(name)
}

/// Imports a casbin model and policy CSV given as text.
pub fn import(model: &str, policy_csv: &str) -> Result<Policy, CasbinError> {
    import_named(model, "<model>", policy_csv, "<policy>")
}

/// Imports a casbin model file and policy CSV file.
pub fn import_files(
    model: impl AsRef<Path>,
    policy: impl AsRef<Path>,
) -> Result<Policy, CasbinError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| CasbinError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let (model, policy) = (model.as_ref(), policy.as_ref());
    import_named(
        &read(model)?,
        &model.display().to_string(),
        &read(policy)?,
        &policy.display().to_string(),
    )
}

/// Like [`import`], with the names used in error messages.
pub fn import_named(
    model: &str,
    model_name: &str,
    policy_csv: &str,
    policy_name: &str,
) -> Result<Policy, CasbinError> {
    let shape = parse_model(model, model_name)?;
    let line_err = |line: usize, detail: String| CasbinError::Line {
        source_name: policy_name.to_owned(),
        line,
        detail,
    };
    let dom_fields = usize::from(shape.domains);
    let p_len = 3 + dom_fields + usize::from(shape.effect_field);
    let g_len = 2 + dom_fields;
    struct PRule {
        sub: String,
        dom: Option<String>,
        perm: String,
        deny: bool,
    }
    let mut p_rules = Vec::new();
    let mut g_rules: Vec<(String, String, Option<String>)> = Vec::new();
    for row in crate::lines::records(policy_csv) {
        let row = row.map_err(|(line, detail)| line_err(line, detail))?;
        let (kind, fields) = row
            .fields
            .split_first()
            .map_or(("", &[][..]), |(k, f)| (k.as_str(), f));
        match kind {
            "p" => {
                if fields.len() != p_len {
                    return Err(line_err(
                        row.line,
                        format!(
                            "a `p` line needs {p_len} fields after `p`, this one has {}",
                            fields.len()
                        ),
                    ));
                }
                let sub = fields.first().cloned().unwrap_or_default();
                let dom = shape
                    .domains
                    .then(|| fields.get(1).cloned().unwrap_or_default());
                let obj = fields.get(1 + dom_fields).map_or("", String::as_str);
                let act = fields.get(2 + dom_fields).map_or("", String::as_str);
                if act.contains('.') {
                    return Err(line_err(
                        row.line,
                        format!(
                            "action `{act}` contains a dot: the permission `{obj}.{act}` would also \
                             stand for another object and action; actions must be one segment"
                        ),
                    ));
                }
                let perm = format!("{obj}.{act}");
                name::validate_permission(&perm).map_err(|e| {
                    line_err(
                        row.line,
                        format!(
                            "object `{obj}` and action `{act}` do not form a permission name: {e}"
                        ),
                    )
                })?;
                let deny = match fields.get(3 + dom_fields).map(String::as_str) {
                    None | Some("allow") => false,
                    Some("deny") => true,
                    Some(other) => {
                        return Err(line_err(
                            row.line,
                            format!("effect `{other}` is neither `allow` nor `deny`"),
                        ));
                    }
                };
                // With an allow-only effect casbin ignores deny lines; so does the import.
                if deny && !shape.deny_override {
                    continue;
                }
                p_rules.push(PRule {
                    sub,
                    dom,
                    perm,
                    deny,
                });
            }
            "g" => {
                if fields.len() != g_len {
                    return Err(line_err(
                        row.line,
                        format!(
                            "a `g` line needs {g_len} fields after `g`, this one has {}",
                            fields.len()
                        ),
                    ));
                }
                let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
                g_rules.push((field(0), field(1), shape.domains.then(|| field(2))));
            }
            other => {
                return Err(line_err(
                    row.line,
                    format!("the line type `{other}` is not supported: only `p` and `g`"),
                ));
            }
        }
    }
    let roles: BTreeSet<&str> = p_rules
        .iter()
        .map(|p| p.sub.as_str())
        .chain(g_rules.iter().map(|(_, b, _)| b.as_str()))
        .collect();
    let mut doc = PolicyDocument::default();
    for p in &p_rules {
        doc.permissions
            .declare(p.perm.clone(), "imported from casbin");
    }
    for role in &roles {
        doc.role_mut(role);
        doc.assign(role, None, role);
    }
    for p in &p_rules {
        let def = match &p.dom {
            Some(dom) => doc.tenant_role_mut(dom, &p.sub),
            None => doc.role_mut(&p.sub),
        };
        let list = if p.deny {
            &mut def.denies
        } else {
            &mut def.grants
        };
        if !list.contains(&p.perm) {
            list.push(p.perm.clone());
        }
    }
    for (a, b, dom) in &g_rules {
        if a == b {
            // casbin treats a name as linked to itself anyway; a self-link changes nothing.
            continue;
        }
        if roles.contains(a.as_str()) {
            let def = match dom {
                Some(dom) => doc.tenant_role_mut(dom, a),
                None => doc.role_mut(a),
            };
            if !def.inherits.contains(b) {
                def.inherits.push(b.clone());
            }
        } else {
            if let Some(dom) = dom {
                doc.tenants.entry(dom.clone()).or_default();
            }
            doc.assign(a, dom.as_deref(), b);
        }
    }
    Policy::from_document(doc).map_err(|mut errors| {
        errors.source_name = policy_name.to_owned();
        CasbinError::Invalid(errors)
    })
}

/// A policy written as a casbin model and policy CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasbinExport {
    /// The model, `model.conf`.
    pub model: String,
    /// The policy lines, `policy.csv`.
    pub policy: String,
}

/// Writes `policy` as a casbin model and CSV.
///
/// Wildcards are expanded to the permissions they cover (casbin's exact-match model has none).
/// A policy with tenants becomes a domain model in which global roles, rules and assignments are
/// repeated in every tenant; its global-scope checks have no casbin counterpart.
pub fn export(policy: &Policy) -> Result<CasbinExport, CasbinError> {
    let doc = policy.document();
    let domains = !doc.tenants.is_empty();
    let any_deny = doc.roles.values().any(|r| !r.denies.is_empty())
        || doc
            .tenants
            .values()
            .flat_map(|t| t.roles.values())
            .any(|r| !r.denies.is_empty());
    let shape = ModelShape {
        domains,
        effect_field: any_deny,
        deny_override: any_deny,
    };
    let names: Vec<&str> = doc.permissions.names().collect();
    let expand = |pattern: &str| -> Result<Vec<(String, String)>, CasbinError> {
        let pattern = Pattern::parse(pattern).map_err(|e| CasbinError::Export(e.to_string()))?;
        names
            .iter()
            .filter(|n| pattern.matches(n))
            .map(|n| {
                n.rsplit_once('.')
                    .map(|(o, a)| (o.to_owned(), a.to_owned()))
                    .ok_or_else(|| {
                        CasbinError::Export(format!(
                            "permission `{n}` has one segment; casbin needs an object and an action"
                        ))
                    })
            })
            .collect()
    };
    let roles: BTreeSet<&str> = doc
        .roles
        .keys()
        .chain(doc.tenants.values().flat_map(|t| t.roles.keys()))
        .map(String::as_str)
        .collect();
    let mut lines: BTreeSet<String> = BTreeSet::new();
    let scopes: Vec<Option<&str>> = if domains {
        doc.tenants.keys().map(|t| Some(t.as_str())).collect()
    } else {
        vec![None]
    };
    for scope in &scopes {
        let dom = scope.map(|t| format!("{t}, ")).unwrap_or_default();
        let gdom = scope.map(|t| format!(", {t}")).unwrap_or_default();
        for (role, def) in &doc.roles {
            let layer = scope
                .and_then(|t| doc.tenants.get(t))
                .and_then(|t| t.roles.get(role));
            for def in std::iter::once(def).chain(layer) {
                rules(&mut lines, role, &dom, &gdom, def, &expand, any_deny)?;
            }
        }
        if let Some(tenant) = scope.and_then(|t| doc.tenants.get(t)) {
            for (role, def) in tenant
                .roles
                .iter()
                .filter(|(r, _)| !doc.roles.contains_key(*r))
            {
                rules(&mut lines, role, &dom, &gdom, def, &expand, any_deny)?;
            }
        }
    }
    for (subject, def) in &doc.subjects {
        let is_role = roles.contains(subject.as_str());
        if is_role && (def.roles != [subject.clone()] || !def.tenants.is_empty()) {
            return Err(CasbinError::Export(format!(
                "subject `{subject}` has the name of a role and other roles; casbin does not tell subjects from roles"
            )));
        }
        if is_role {
            continue;
        }
        let field = subject_field(subject)?;
        for scope in &scopes {
            let gdom = scope.map(|t| format!(", {t}")).unwrap_or_default();
            for role in &def.roles {
                lines.insert(format!("g, {field}, {role}{gdom}"));
            }
        }
        for (tenant, held) in &def.tenants {
            for role in held {
                lines.insert(format!("g, {field}, {role}, {tenant}"));
            }
        }
    }
    let mut policy_csv: String = lines.into_iter().map(|l| l + "\n").collect();
    if policy_csv.is_empty() {
        policy_csv.push_str("# empty policy\n");
    }
    Ok(CasbinExport {
        model: shape.model_text(),
        policy: policy_csv,
    })
}

/// A subject as a field of casbin's CSV. Subjects may hold commas and quotes (role, tenant and
/// permission names may not). A subject with a comma is quoted; casbin's reader has no escape
/// for a quote inside a quoted field, and reads a field that starts with a quote as quoted, so
/// a subject that starts with a quote, or holds both a comma and a quote, cannot be written.
fn subject_field(subject: &str) -> Result<Cow<'_, str>, CasbinError> {
    let comma = subject.contains(',');
    if subject.starts_with('"') || (comma && subject.contains('"')) {
        return Err(CasbinError::Export(format!(
            "subject `{subject}` cannot be written in casbin's CSV: it would need a quote \
             inside a quoted field, which casbin cannot read"
        )));
    }
    Ok(if comma {
        Cow::Owned(format!("\"{subject}\""))
    } else {
        Cow::Borrowed(subject)
    })
}

/// Expands a grant or deny pattern to the (object, action) pairs it covers.
type Expander<'a> = dyn Fn(&str) -> Result<Vec<(String, String)>, CasbinError> + 'a;

fn rules(
    lines: &mut BTreeSet<String>,
    role: &str,
    dom: &str,
    gdom: &str,
    def: &crate::document::RoleDef,
    expand: &Expander<'_>,
    effect_field: bool,
) -> Result<(), CasbinError> {
    for (list, eft) in [(&def.grants, "allow"), (&def.denies, "deny")] {
        for pattern in list {
            for (obj, act) in expand(pattern)? {
                let eft = if effect_field {
                    format!(", {eft}")
                } else {
                    String::new()
                };
                lines.insert(format!("p, {role}, {dom}{obj}, {act}{eft}"));
            }
        }
    }
    for parent in &def.inherits {
        lines.insert(format!("g, {role}, {parent}{gdom}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_keep_call_parentheses() {
        assert_eq!(strip_parens("g(r.sub,p.sub)"), "g(r.sub,p.sub)");
        assert_eq!(strip_parens("(g(r.sub,p.sub)"), "g(r.sub,p.sub)");
        assert_eq!(strip_parens("r.act==p.act)"), "r.act==p.act");
        assert_eq!(strip_parens("((r.act==p.act))"), "r.act==p.act");
        assert_eq!(strip_parens("(a)&&(b)"), "(a)&&(b)");
    }

    #[test]
    fn models_in_other_orders_and_spacing_are_read() {
        let model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
            [role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
            [matchers]\nm = (p.obj == r.obj && g(r.sub, p.sub)) && \\\n  r.act == p.act\n";
        let shape = parse_model(model, "m.conf").unwrap();
        assert_eq!(
            shape,
            ModelShape {
                domains: false,
                effect_field: false,
                deny_override: false
            }
        );
    }
}
