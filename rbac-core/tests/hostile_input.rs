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
use rbac_core::{Engine, Policy};

/// A name no policy may use, or an odd one: empty, upper case, spaces, dots, quotes, control
/// characters, non-ASCII, over-long.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", " ", "Finance", "fi nance", "a.b", "*", "é", "a-b", "\"", "\\", "\n", "\u{0}",
            "a\tb", "finance.", ".read", "\u{202e}evil", "finance.*.read", "**", "..",
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
                prop::collection::vec(pattern(), 0..4),
                prop::collection::vec(pattern(), 0..2),
            )
                .prop_map(move |(inherits, grants, denies)| RoleSpec {
                    name,
                    inherits,
                    grants,
                    denies,
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
        let mut inherits = role.inherits.clone();
        inherits.extend(cycle.map(|c| ROLES.iter().copied().find(|r| *r == c).unwrap_or(c)));
        let _ = writeln!(out, "[{header}]");
        let _ = writeln!(out, "inherits = {}", self.list(&inherits));
        let _ = writeln!(out, "grants = {}", self.list(&role.grants));
        let _ = writeln!(out, "denies = {}", self.list(&role.denies));
    }
}

impl DocSpec {
    fn toml(&self) -> String {
        let mut namer = Namer {
            written: 0,
            rename: match &self.spoil {
                Spoil::Rename(n, other) => Some((*n, other.clone())),
                _ => None,
            },
        };
        let mut out = String::from("[permissions]\n");
        let mut declared = 0;
        for m in MODULES {
            for r in RESOURCES {
                for a in ACTIONS {
                    declared += 1;
                    if matches!(self.spoil, Spoil::Undeclare(n) if n % 36 + 1 == declared) {
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
        match &self.spoil {
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
        }
    }
}

fn doc_spec() -> impl Strategy<Value = DocSpec> {
    let spoil = prop_oneof![
        8 => Just(Spoil::None),
        4 => (0..200usize, prop_oneof![
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
    // Subjects hold declared global roles in declared tenants.
    let declared = (
        prop::sample::subsequence(ROLES.to_vec(), 1..=ROLES.len()),
        prop::sample::subsequence(TENANTS.to_vec(), 0..=TENANTS.len()),
    );
    let body = declared.prop_flat_map(|(role_names, tenant_names)| {
        let tenants: Vec<_> = tenant_names
            .iter()
            .map(|&t| {
                let own = prop::sample::subsequence(ROLES.to_vec(), 0..=2).prop_flat_map(roles);
                (Just(t), own)
            })
            .collect();
        let most = role_names.len().min(2);
        let held = prop::sample::subsequence(role_names.clone(), 0..=most);
        let n = tenant_names.len();
        let in_tenants = prop::sample::subsequence(tenant_names, 0..=n).prop_flat_map({
            let held = held.clone();
            move |names| {
                names
                    .into_iter()
                    .map(|t| (Just(t), held.clone()))
                    .collect::<Vec<_>>()
            }
        });
        let subjects = prop::sample::subsequence(SUBJECTS.to_vec(), 0..=SUBJECTS.len())
            .prop_flat_map(move |names| {
                names
                    .into_iter()
                    .map(|s| (Just(s), held.clone(), in_tenants.clone()))
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
    let mut all = Vec::new();
    for s in &subjects {
        for t in &tenants {
            for p in &permissions {
                all.push((s.clone(), t.clone(), p.clone()));
            }
        }
    }
    // About 800 of them, spread over the whole product (an odd step, so that it does not
    // keep to a few permissions).
    let step = (all.len() / 800) | 1;
    all.into_iter().step_by(step).collect()
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
            prop_assert!(!e.to_string().is_empty());
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
                prop_assert!(!e.to_string().is_empty(), "an error without a message:\n{text}");
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
            let q = format!("({s:?}, {t:?}, {p:?}) in\n{text}");
            if allowed {
                prop_assert!(doc.subjects.contains_key(s), "undeclared subject allowed: {q}");
                prop_assert!(
                    t.is_empty() || doc.tenants.contains_key(t),
                    "undeclared tenant allowed: {q}"
                );
                prop_assert!(doc.permissions.contains(p), "undeclared permission allowed: {q}");
            }
            prop_assert_eq!(batch[i], decision, "check_batch: {}", q);
            prop_assert_eq!(interned[i], allowed, "is_allowed_batch: {}", q);
            let single = match (snapshot.subject_id(s), snapshot.tenant_id(t), snapshot.permission_id(p)) {
                (Some(si), Some(ti), Some(pi)) => snapshot.is_allowed(si, ti, pi),
                _ => false,
            };
            prop_assert_eq!(single, allowed, "is_allowed: {}", q);
            let why = engine.explain(s, t, p);
            prop_assert_eq!(why.decision, decision, "explain: {}", q);
            prop_assert!(!why.to_string().is_empty());
            if doc.permissions.contains(p) {
                let listed = engine.permissions_of(s, t).iter().any(|x| x == p);
                prop_assert_eq!(listed, allowed, "permissions_of: {}", q);
            }
            let _ = engine.roles_of(s, t);
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
                prop_assert!(!e.to_string().is_empty());
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

    /// casbin files of any content import or fail with a message, never a panic; a policy
    /// that imports answers checks.
    #[test]
    fn any_casbin_files_import_or_are_an_error(
        model_lines in prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(vec![
                    "[request_definition]", "r = sub, obj, act", "r = sub, dom, obj, act",
                    "[policy_definition]", "p = sub, obj, act", "p = sub, dom, obj, act",
                    "p = sub, obj, act, eft", "[role_definition]", "g = _, _", "g = _, _, _",
                    "g2 = _, _", "[policy_effect]", "e = some(where (p.eft == allow))",
                    "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
                    "e = priority(p.eft) || deny", "[matchers]",
                    "m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act",
                    "m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act",
                    "m = keyMatch(r.obj, p.obj)", "m = r.sub == p.sub",
                ])
                .prop_map(String::from),
                1 => "\\PC{0,30}",
            ],
            0..14,
        ),
        policy_lines in prop::collection::vec(
            (
                prop::sample::select(vec!["p", "g", "g2", "", "P", "x"]),
                prop::collection::vec(
                    prop_oneof![
                        4 => prop::sample::select(vec![
                            "alice", "admin", "data1", "read", "write", "dom1", "allow",
                            "deny", "", " ", "\"quoted, comma\"", "a.b", "Read",
                        ])
                        .prop_map(String::from),
                        1 => "\\PC{0,8}",
                    ],
                    0..6,
                ),
            ),
            0..12,
        ),
    ) {
        let model = model_lines.join("\n");
        let csv: String = policy_lines
            .iter()
            .map(|(kind, fields)| {
                let mut line = kind.to_string();
                for f in fields {
                    line.push_str(", ");
                    line.push_str(f);
                }
                line + "\n"
            })
            .collect();
        match rbac_core::casbin::import(&model, &csv) {
            Ok(policy) => {
                let engine = Engine::new(&policy);
                for (s, d, p) in [("alice", "", "data1.read"), ("alice", "dom1", "data1.read"), ("", "", "")] {
                    let _ = engine.explain(s, d, p);
                    let _ = engine.check(s, d, p);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
