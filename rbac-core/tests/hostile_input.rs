//! Hostile input: policies, casbin files and queries that a careless or malicious user could
//! write. Whatever comes in, loading gives a policy or a typed error (never a panic), and a
//! policy that loads decides deny-by-default: only a declared subject may be allowed a declared
//! permission in the global scope or a declared tenant, and every API agrees on each query.
//!
//! Documents are generated as TOML text: a valid policy over a small vocabulary, of which
//! about half are then spoiled by one name replaced (often by one no policy may use: empty,
//! upper case, spaces, dots, quotes, control characters, non-ASCII, over-long), a permission
//! left undeclared, an inheritance cycle, a cut or a stray line, so that the parser, the
//! validator and the compiler all see them and most documents still load. `PROPTEST_CASES`
//! sets how many documents each property tries (256 by default).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use proptest::prelude::*;
use rbac_core::casbin::{CasbinError, ModelShape};
use rbac_core::{Cause, Effect, Engine, Policy, PolicyError};

/// An odd name: one that no name of its kind may be (empty, spaces, control characters,
/// over-long, a wildcard), or one that some kinds may be and others not (upper case, dots,
/// commas, quotes, `#`, non-ASCII); subjects, for one, may hold commas and quotes.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", " ", "Finance", "fi nance", "a.b", "*", "é", "a-b", "\"", "\\", "\n", "\u{0}",
            "a\tb", "finance.", ".read", "\u{202e}evil", "finance.*.read", "**", "..", "a,b",
            "\"x\"", "\"\"", "#x", "a\"b", "\"a,b",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,6}",
        1 => (1usize..300).prop_map(|n| "s".repeat(n)),
    ]
    .boxed()
}

const MODULES: [&str; 3] = ["finance", "crm", "system"];
const RESOURCES: [&str; 3] = ["invoices", "leads", "backup"];
const ACTIONS: [&str; 4] = ["read", "create", "approve", "delete"];
const ROLES: [&str; 6] = ["root", "admin", "accountant", "viewer", "intern", "auditor"];
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const SUBJECTS: [&str; 5] = ["alice", "bob", "carol@example.com", "dave", "u1"];

/// A grant or deny: a permission, a wildcard over a resource or a module, or everything.
fn pattern() -> BoxedStrategy<String> {
    let pick = |names: &[&'static str]| prop::sample::select(names.to_vec());
    prop_oneof![
        6 => (pick(&MODULES), pick(&RESOURCES), pick(&ACTIONS))
            .prop_map(|(m, r, a)| format!("{m}.{r}.{a}")),
        2 => (pick(&MODULES), pick(&RESOURCES)).prop_map(|(m, r)| format!("{m}.{r}.*")),
        1 => pick(&MODULES).prop_map(|m| format!("{m}.*")),
        1 => Just("*".to_owned()),
    ]
    .boxed()
}

/// `s` as a TOML basic string (also a quoted key): every character allowed.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Clone)]
struct RoleSpec {
    name: &'static str,
    inherits: Vec<&'static str>,
    grants: Vec<String>,
    denies: Vec<String>,
}

/// The roles `names`: each may inherit those after it (so that they form no cycle).
fn roles(names: Vec<&'static str>) -> BoxedStrategy<Vec<RoleSpec>> {
    let specs: Vec<BoxedStrategy<RoleSpec>> = (0..names.len())
        .map(|at| {
            let (name, later) = (names[at], names[at + 1..].to_vec());
            let most = later.len().min(2);
            (
                prop::sample::subsequence(later, 0..=most),
                prop::collection::btree_set(pattern(), 0..4),
                prop::collection::btree_set(pattern(), 0..2),
            )
                .prop_map(move |(inherits, grants, denies)| RoleSpec {
                    name,
                    inherits,
                    grants: grants.into_iter().collect(),
                    denies: denies.into_iter().collect(),
                })
                .boxed()
        })
        .collect();
    specs.boxed()
}

/// How a generated document is spoiled, if at all.
#[derive(Debug, Clone)]
enum Spoil {
    None,
    /// The `n`th name the document writes (counting every name: declarations, references,
    /// rules) replaced by another, often one no policy may use.
    Rename(usize, String),
    /// The `n`th permission left undeclared.
    Undeclare(usize),
    /// The first and last roles inheriting each other.
    Cycle,
    /// Cut after this fraction of its bytes (at a character boundary).
    Cut(f64),
    /// A stray line inserted at this fraction of its lines.
    Stray(f64, String),
}

/// A subject: its name, its global roles, and its roles per tenant.
type SubjectSpec = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, Vec<&'static str>)>,
);

#[derive(Debug, Clone)]
struct DocSpec {
    roles: Vec<RoleSpec>,
    /// Tenants, each with roles of its own.
    tenants: Vec<(&'static str, Vec<RoleSpec>)>,
    subjects: Vec<SubjectSpec>,
    spoil: Spoil,
}

/// Writes names, replacing the one [`Spoil::Rename`] picks.
struct Namer {
    written: usize,
    rename: Option<(usize, String)>,
}

impl Namer {
    fn name(&mut self, name: &str) -> String {
        self.written += 1;
        match &self.rename {
            Some((n, other)) if *n == self.written => other.clone(),
            _ => name.to_owned(),
        }
    }

    fn quoted(&mut self, name: &str) -> String {
        quoted(&self.name(name))
    }

    fn list<S: AsRef<str>>(&mut self, names: &[S]) -> String {
        let items: Vec<String> = names.iter().map(|n| self.quoted(n.as_ref())).collect();
        format!("[{}]", items.join(", "))
    }

    fn role(&mut self, out: &mut String, header: &str, role: &RoleSpec, cycle: Option<&str>) {
        let mut inherits: Vec<&str> = role.inherits.to_vec();
        inherits.extend(cycle);
        let _ = writeln!(out, "[{header}]");
        let _ = writeln!(out, "inherits = {}", self.list(&inherits));
        let _ = writeln!(out, "grants = {}", self.list(&role.grants));
        let _ = writeln!(out, "denies = {}", self.list(&role.denies));
    }
}

impl DocSpec {
    fn toml(&self) -> String {
        // Written once to count the names, so that a rename always hits one.
        let (_, names) = self.write(None);
        let rename = match &self.spoil {
            Spoil::Rename(n, other) => Some((n % names.max(1) + 1, other.clone())),
            _ => None,
        };
        self.write(rename).0
    }

    /// The document, with the rename given, and how many names it wrote.
    fn write(&self, rename: Option<(usize, String)>) -> (String, usize) {
        let mut namer = Namer { written: 0, rename };
        let mut out = String::from("[permissions]\n");
        let mut declared = 0;
        for m in MODULES {
            for r in RESOURCES {
                for a in ACTIONS {
                    declared += 1;
                    if matches!(self.spoil, Spoil::Undeclare(n) if n + 1 == declared) {
                        continue;
                    }
                    let key = [m, r, a].map(|s| namer.quoted(s)).join(".");
                    let _ = writeln!(out, "{key} = \"described\"");
                }
            }
        }
        let cycle = matches!(self.spoil, Spoil::Cycle);
        let (first, last) = (self.roles.first(), self.roles.last());
        for (i, role) in self.roles.iter().enumerate() {
            let header = format!("roles.{}", namer.quoted(role.name));
            // The first role inherits the last, which inherits the first.
            let back = match (cycle, i) {
                (true, 0) => last.map(|r| r.name),
                (true, i) if i + 1 == self.roles.len() => first.map(|r| r.name),
                _ => None,
            };
            namer.role(&mut out, &header, role, back);
        }
        for (tenant, roles) in &self.tenants {
            let tenant = namer.quoted(tenant);
            let _ = writeln!(out, "[tenants.{tenant}]");
            for role in roles {
                let header = format!("tenants.{tenant}.roles.{}", namer.quoted(role.name));
                namer.role(&mut out, &header, role, None);
            }
        }
        for (subject, global, per_tenant) in &self.subjects {
            let subject = namer.quoted(subject);
            let _ = writeln!(out, "[subjects.{subject}]");
            let _ = writeln!(out, "roles = {}", namer.list(global));
            let _ = writeln!(out, "[subjects.{subject}.tenants]");
            for (tenant, roles) in per_tenant {
                let _ = writeln!(out, "{} = {}", namer.quoted(tenant), namer.list(roles));
            }
        }
        let out = match &self.spoil {
            Spoil::Cut(at) => {
                let mut end = (out.len() as f64 * at) as usize;
                while !out.is_char_boundary(end) {
                    end -= 1;
                }
                out.truncate(end);
                out
            }
            Spoil::Stray(at, line) => {
                let mut lines: Vec<&str> = out.lines().collect();
                let i = (lines.len() as f64 * at) as usize;
                lines.insert(i.min(lines.len()), line);
                lines.join("\n")
            }
            _ => out,
        };
        (out, namer.written)
    }
}

fn doc_spec() -> impl Strategy<Value = DocSpec> {
    let spoil = prop_oneof![
        8 => Just(Spoil::None),
        4 => (any::<usize>(), prop_oneof![
            3 => hostile(),
            1 => prop::sample::select([&ROLES[..], &TENANTS, &SUBJECTS, &ACTIONS].concat())
                .prop_map(String::from),
        ])
            .prop_map(|(n, other)| Spoil::Rename(n, other)),
        1 => (0..36usize).prop_map(Spoil::Undeclare),
        1 => Just(Spoil::Cycle),
        1 => (0.0..1.0f64).prop_map(Spoil::Cut),
        1 => (0.0..1.0f64, prop_oneof![
            Just("[roles]".to_owned()),
            Just("[[roles]]".to_owned()),
            Just("grants = 3".to_owned()),
            Just("inherits = [\"admin\", 1]".to_owned()),
            "\\PC{0,20}",
        ])
            .prop_map(|(at, line)| Spoil::Stray(at, line)),
    ];
    // Roles, tenants and each tenant's own roles are chosen first, so that subjects hold
    // declared roles (global ones, or the tenant's own) in declared tenants.
    let declared = (
        prop::sample::subsequence(ROLES.to_vec(), 1..=ROLES.len()),
        prop::sample::subsequence(TENANTS.to_vec(), 0..=TENANTS.len()),
    )
        .prop_flat_map(|(roles, tenants)| {
            let own: Vec<_> = tenants
                .iter()
                .map(|_| prop::sample::subsequence(ROLES.to_vec(), 0..=2))
                .collect();
            (Just(roles), Just(tenants), own)
        });
    let body = declared.prop_flat_map(|(role_names, tenant_names, own_names)| {
        let tenants: Vec<_> = tenant_names
            .iter()
            .zip(&own_names)
            .map(|(&t, own)| (Just(t), roles(own.clone())))
            .collect();
        let at_most_two = |names: Vec<&'static str>| {
            let most = names.len().min(2);
            prop::sample::subsequence(names, 0..=most)
        };
        let global = at_most_two(role_names.clone());
        // In a tenant: global roles and the tenant's own.
        let holdable: Vec<Vec<&'static str>> = own_names
            .iter()
            .map(|own| {
                let mut names = role_names.clone();
                names.extend(own.iter().filter(|r| !role_names.contains(r)));
                names
            })
            .collect();
        let n = tenant_names.len();
        let in_tenants = prop::sample::subsequence((0..n).collect::<Vec<usize>>(), 0..=n)
            .prop_flat_map(move |chosen| {
                chosen
                    .into_iter()
                    .map(|i| (Just(tenant_names[i]), at_most_two(holdable[i].clone())))
                    .collect::<Vec<_>>()
            });
        let subjects = prop::sample::subsequence(SUBJECTS.to_vec(), 0..=SUBJECTS.len())
            .prop_flat_map(move |names| {
                names
                    .into_iter()
                    .map(|s| (Just(s), global.clone(), in_tenants.clone()))
                    .collect::<Vec<_>>()
            });
        (roles(role_names), tenants, subjects)
    });
    (body, spoil).prop_map(|((roles, tenants, subjects), spoil)| DocSpec {
        roles,
        tenants,
        subjects,
        spoil,
    })
}

/// The queries asked of a loaded policy: every declared name, the spec's names (valid or
/// not) and a few strangers.
fn queries(policy: &Policy, spec: &DocSpec) -> Vec<(String, String, String)> {
    let doc = policy.document();
    let renamed = match &spec.spoil {
        Spoil::Rename(_, other) => other.as_str(),
        _ => "mallory",
    };
    let strangers = ["", renamed, "ALICE", "\u{0}é"];
    let subjects: BTreeSet<String> = doc
        .subjects
        .keys()
        .cloned()
        .chain(spec.subjects.iter().map(|(s, _, _)| s.to_string()))
        .chain(doc.roles.keys().cloned())
        .chain(strangers.iter().map(|s| s.to_string()))
        .collect();
    let tenants: BTreeSet<String> = doc
        .tenants
        .keys()
        .cloned()
        .chain(spec.tenants.iter().map(|(t, _)| t.to_string()))
        .chain(strangers.iter().map(|s| s.to_string()))
        .collect();
    let permissions: BTreeSet<String> = doc
        .permissions
        .names()
        .map(str::to_owned)
        .chain(spec.roles.iter().flat_map(|r| r.grants.iter().cloned()))
        .chain(["*", "finance.*", "finance", "finance.invoices.read"].map(String::from))
        .chain(strangers.iter().map(|s| s.to_string()))
        .collect();
    let (subjects, tenants, permissions): (Vec<_>, Vec<_>, Vec<_>) = (
        subjects.into_iter().collect(),
        tenants.into_iter().collect(),
        permissions.into_iter().collect(),
    );
    // 800 drawn at random (a fixed seed per document) from the whole product, so that no
    // subject, tenant or permission is left out by a stride.
    let mut x = spec.toml().len() as u64 | 1;
    let mut pick = |n: usize| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize % n
    };
    (0..800)
        .map(|_| {
            (
                subjects[pick(subjects.len())].clone(),
                tenants[pick(tenants.len())].clone(),
                permissions[pick(permissions.len())].clone(),
            )
        })
        .collect()
}

/// Whether a policy error says what is wrong: beyond the source name it starts with.
fn policy_error_says_what(e: &PolicyError) -> bool {
    match e {
        PolicyError::Syntax { message, .. } => !message.trim().is_empty(),
        PolicyError::Invalid(errors) => {
            !errors.issues.is_empty() && errors.issues.iter().all(|i| !i.to_string().is_empty())
        }
        _ => !e.to_string().is_empty(),
    }
}

/// Whether a casbin error says what is wrong: beyond the fixed words it starts with.
fn casbin_error_says_what(e: &CasbinError) -> bool {
    match e {
        CasbinError::Model { part, detail, .. } => !part.is_empty() && !detail.is_empty(),
        CasbinError::Line { detail, .. } => !detail.is_empty(),
        CasbinError::Invalid(errors) => !errors.issues.is_empty(),
        CasbinError::Export(detail) => !detail.is_empty(),
        _ => !e.to_string().is_empty(),
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Documents are small and checks cheap; 256 (the default) unless PROPTEST_CASES says.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any text at all is a policy or an error with a message, never a panic.
    #[test]
    fn any_text_loads_or_is_an_error(text in "\\PC{0,200}") {
        if let Err(e) = Policy::from_toml_str(&text) {
            prop_assert!(policy_error_says_what(&e), "{e:?}");
        }
    }

    /// Generated documents load or fail with a message; one that loads decides only what it
    /// declares, and every API gives each query the same answer.
    #[test]
    fn a_loaded_policy_allows_only_what_it_declares(spec in doc_spec()) {
        let text = spec.toml();
        let policy = match Policy::from_toml_str(&text) {
            Ok(policy) => policy,
            Err(e) => {
                prop_assert!(policy_error_says_what(&e), "{e:?} for\n{text}");
                return Ok(());
            }
        };
        let doc = policy.document();
        let engine = Engine::new(&policy);
        let snapshot = engine.snapshot();
        let queries = queries(&policy, &spec);
        let batch = engine.check_batch(&queries);
        let ids: Vec<_> = queries
            .iter()
            .map(|(s, t, p)| snapshot.query_ids(s, t, p))
            .collect();
        let interned = snapshot.is_allowed_batch(&ids);
        for (i, (s, t, p)) in queries.iter().enumerate() {
            let decision = engine.check(s, t, p);
            let allowed = decision.is_allowed();
            // Formatted only when an assertion fails.
            let q = || format!("({s:?}, {t:?}, {p:?}) in\n{text}");
            if allowed {
                prop_assert!(doc.subjects.contains_key(s), "undeclared subject allowed: {}", q());
                prop_assert!(
                    t.is_empty() || doc.tenants.contains_key(t),
                    "undeclared tenant allowed: {}", q()
                );
                prop_assert!(doc.permissions.contains(p), "undeclared permission allowed: {}", q());
            }
            prop_assert!(batch[i] == decision, "check_batch: {}", q());
            prop_assert!(interned[i] == allowed, "is_allowed_batch: {}", q());
            let single = match (snapshot.subject_id(s), snapshot.tenant_id(t), snapshot.permission_id(p)) {
                (Some(si), Some(ti), Some(pi)) => snapshot.is_allowed(si, ti, pi),
                _ => false,
            };
            prop_assert!(single == allowed, "is_allowed: {}", q());
            // The reason names the rule that decided: a grant for an allow, a deny for an
            // explicit deny, and none when no rule decided.
            let why = engine.explain(s, t, p);
            let rule = why.rule.as_ref().map(|r| r.effect);
            match decision.cause() {
                Cause::Granted => prop_assert!(
                    rule == Some(Effect::Grant) && !why.chain.is_empty() && !why.held_roles.is_empty(),
                    "explain of a grant: {why:?} for {}", q()
                ),
                Cause::ExplicitDeny => prop_assert!(
                    rule == Some(Effect::Deny) && !why.chain.is_empty() && !why.held_roles.is_empty(),
                    "explain of a deny: {why:?} for {}", q()
                ),
                _ => prop_assert!(rule.is_none() && why.chain.is_empty(), "explain: {why:?} for {}", q()),
            }
            if allowed {
                prop_assert!(!engine.roles_of(s, t).is_empty(), "allowed without roles: {}", q());
            }
        }
        // permissions_of lists exactly the declared permissions a check allows.
        let pairs: BTreeSet<(&String, &String)> = queries.iter().map(|(s, t, _)| (s, t)).collect();
        for (s, t) in pairs {
            let listed: BTreeSet<String> = engine.permissions_of(s, t).into_iter().collect();
            let allowed: BTreeSet<String> = doc
                .permissions
                .names()
                .filter(|p| engine.check(s, t, p).is_allowed())
                .map(str::to_owned)
                .collect();
            prop_assert!(listed == allowed, "permissions_of({s:?}, {t:?}) in\n{text}");
        }
        // A module check allows exactly when some permission of the module is allowed.
        let modules: BTreeSet<&str> = doc
            .permissions
            .names()
            .filter_map(|n| n.split('.').next())
            .chain(["", "finance", "*", "finance.invoices"])
            .collect();
        for (s, t, _) in queries.iter().step_by(12) {
            for &m in &modules {
                let any = doc
                    .permissions
                    .names()
                    .filter(|n| *n == m || n.strip_prefix(m).is_some_and(|r| r.starts_with('.')))
                    .any(|n| engine.check(s, t, n).is_allowed());
                prop_assert_eq!(
                    engine.check_module(s, t, m).is_allowed(),
                    any,
                    "check_module({:?}, {:?}, {:?}) in\n{}", s, t, m, text
                );
            }
        }
    }

    /// A policy that loads exports to casbin or says why not; an export imports again, and
    /// the two decide alike in every tenant.
    #[test]
    fn an_export_to_casbin_decides_like_the_policy(spec in doc_spec()) {
        let Ok(policy) = Policy::from_toml_str(&spec.toml()) else {
            return Ok(());
        };
        let exported = match rbac_core::casbin::export(&policy) {
            Ok(exported) => exported,
            Err(e) => {
                prop_assert!(casbin_error_says_what(&e), "{e:?}");
                return Ok(());
            }
        };
        let again = rbac_core::casbin::import(&exported.model, &exported.policy);
        let again = match again {
            Ok(again) => again,
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "an export that does not import: {e}\n{}\n{}",
                    exported.model, exported.policy
                )));
            }
        };
        let (before, after) = (Engine::new(&policy), Engine::new(&again));
        let doc = policy.document();
        // casbin gives a role's name the role's grants as a subject, and an export of a
        // policy with tenants has no global scope: compare declared subjects that are not
        // role names, in tenants.
        let roles: BTreeSet<&String> = doc
            .roles
            .keys()
            .chain(doc.tenants.values().flat_map(|t| t.roles.keys()))
            .collect();
        for (s, t, p) in queries(&policy, &spec) {
            let comparable = doc.subjects.contains_key(&s)
                && !roles.contains(&s)
                && (doc.tenants.is_empty() || doc.tenants.contains_key(&t));
            if !comparable {
                continue;
            }
            prop_assert_eq!(
                before.check(&s, &t, &p).is_allowed(),
                after.check(&s, &t, &p).is_allowed(),
                "({:?}, {:?}, {:?})\n{}\n{}", s, t, p, exported.model, exported.policy
            );
        }
    }

    /// casbin files, most of a supported shape with lines of the right and wrong lengths
    /// and names valid and odd, some not: each imports or fails with a message, never a
    /// panic, and a policy that imports answers checks, its `explain` agreeing.
    #[test]
    fn casbin_files_import_or_are_an_error((model, csv) in casbin_files()) {
        match rbac_core::casbin::import(&model, &csv) {
            Ok(policy) => {
                let engine = Engine::new(&policy);
                for s in CASBIN_NAMES {
                    for d in ["", "dom1", "dom2"] {
                        for p in ["data1.read", "data2.write", "data1", ""] {
                            let decision = engine.check(s, d, p);
                            prop_assert_eq!(engine.explain(s, d, p).decision, decision);
                        }
                    }
                }
            }
            Err(e) => prop_assert!(casbin_error_says_what(&e), "{e:?}\n{model}\n{csv}"),
        }
    }
}

const CASBIN_NAMES: [&str; 10] = [
    "alice", "bob", "admin", "editor", "data1", "data2", "read", "write", "dom1", "dom2",
];

/// A casbin model and policy CSV: most models of a supported shape (some with one line
/// replaced), policy lines `p` and `g` of that shape's length or not, and stray lines.
fn casbin_files() -> impl Strategy<Value = (String, String)> {
    let model_spoil = prop_oneof![
        6 => Just(None),
        1 => (any::<usize>(), prop_oneof![
            prop::sample::select(vec![
                "g2 = _, _", "e = priority(p.eft) || deny", "m = keyMatch(r.obj, p.obj)",
                "m = r.sub == p.sub", "r = sub, obj", "[matchers]", "p = sub, obj, act, eft",
            ])
            .prop_map(String::from),
            "\\PC{0,30}",
        ])
            .prop_map(Some),
    ];
    (any::<bool>(), any::<bool>(), any::<bool>(), model_spoil).prop_flat_map(
        |(domains, effect_field, deny_override, model_spoil)| {
            // A deny effect needs the effect field.
            let deny_override = deny_override && effect_field;
            let shape = ModelShape {
                domains,
                effect_field,
                deny_override,
            };
            let mut model: Vec<String> = shape.model_text().lines().map(String::from).collect();
            if let Some((at, line)) = model_spoil {
                let n = model.len();
                model[at % n] = line;
            }
            let name = || {
                prop_oneof![
                    30 => prop::sample::select(CASBIN_NAMES.to_vec()).prop_map(String::from),
                    1 => hostile(),
                ]
            };
            let p_line = (
                name(),
                name(),
                name(),
                name(),
                prop_oneof![
                    20 => prop::sample::select(vec!["allow", "deny"]),
                    1 => Just("maybe"),
                ],
            )
                .prop_map(move |(sub, dom, obj, act, eft)| {
                    let mut fields = vec!["p".to_owned(), sub];
                    if domains {
                        fields.push(dom);
                    }
                    fields.extend([obj, act]);
                    if effect_field {
                        fields.push(eft.to_owned());
                    }
                    fields.join(", ")
                });
            let g_line = (name(), name(), name()).prop_map(move |(a, b, dom)| {
                if domains {
                    format!("g, {a}, {b}, {dom}")
                } else {
                    format!("g, {a}, {b}")
                }
            });
            let stray = prop_oneof![
                Just("p, alice".to_owned()),
                Just("g2, alice, admin".to_owned()),
                Just("g, alice, admin, dom1, extra".to_owned()),
                "\\PC{0,30}",
            ];
            let line = prop_oneof![5 => p_line, 4 => g_line, 1 => stray];
            (Just(model.join("\n")), prop::collection::vec(line, 0..12))
                .prop_map(|(model, lines)| (model, lines.join("\n")))
        },
    )
}
