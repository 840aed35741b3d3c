//! The workloads: policies and query sets, generated deterministically.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rbac_core::PolicyDocument;
use rbac_core::name::Pattern;

use crate::rng::Rng;

/// One check: `(subject, tenant, permission)`; the tenant `""` is the global scope.
#[derive(Debug, Clone)]
pub struct Query {
    pub subject: String,
    pub tenant: String,
    pub permission: String,
}

impl Query {
    fn new(
        subject: impl Into<String>,
        tenant: impl Into<String>,
        permission: impl Into<String>,
    ) -> Query {
        Query {
            subject: subject.into(),
            tenant: tenant.into(),
            permission: permission.into(),
        }
    }

    /// casbin's object and action: the permission split at its last dot.
    pub fn object_action(&self) -> (&str, &str) {
        self.permission
            .rsplit_once('.')
            .unwrap_or((self.permission.as_str(), ""))
    }
}

/// A query set's names back to back in one buffer, in query order, the way a server holds
/// the bytes of the requests it answers. Engines that take the three names as strings read them
/// from here while they are timed: reading them is then one sequential stream, as it is for a
/// server. Each query's three `String`s were separate heap blocks, scattered by the allocator
/// over the 17 MB a 100,000-query set takes; a check then waited on memory for its own
/// input, which measured the benchmark's heap, not the engine.
pub struct PackedQueries {
    text: String,
    /// Where each query's subject, tenant and permission start, and where it ends.
    bounds: Vec<[u32; 4]>,
}

impl PackedQueries {
    pub fn new(queries: &[Query]) -> PackedQueries {
        let mut text = String::new();
        let mut bounds = Vec::with_capacity(queries.len());
        let at = |text: &String| u32::try_from(text.len()).expect("query texts under 4 GiB");
        for q in queries {
            let s = at(&text);
            text.push_str(&q.subject);
            let t = at(&text);
            text.push_str(&q.tenant);
            let p = at(&text);
            text.push_str(&q.permission);
            bounds.push([s, t, p, at(&text)]);
        }
        PackedQueries { text, bounds }
    }

    /// Query `i`: (subject, tenant, permission).
    pub fn get(&self, i: usize) -> (&str, &str, &str) {
        let [s, t, p, end] = self.bounds[i].map(|b| b as usize);
        (&self.text[s..t], &self.text[t..p], &self.text[p..end])
    }
}

/// Queries timed together.
pub struct QuerySet {
    pub name: String,
    pub note: String,
    pub queries: Vec<Query>,
}

/// Where our policy comes from.
pub enum Source {
    /// A casbin model and CSV, imported with `rbac_core::casbin::import`.
    Casbin { model: String, csv: String },
    /// A document built in code.
    Document(Box<PolicyDocument>),
}

/// What the casbin peers load.
pub struct CasbinText {
    pub model: String,
    pub csv: String,
    pub how: String,
}

pub struct Shape {
    pub name: String,
    pub description: String,
    pub source: Source,
    /// `None`: written by `rbac_core::casbin::export` from the validated policy.
    pub casbin: Option<CasbinText>,
    pub query_sets: Vec<QuerySet>,
}

/// casbin's `examples/rbac_model.conf`, the model of its published RBAC benchmarks.
pub const RBAC_MODEL: &str = "[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
";

pub const MIX_QUERIES: usize = 100_000;

/// casbin's `BenchmarkRBACModelSmall/Medium/Large` (model_b_test.go): `roles` groups, `users`
/// users, one `p, group{i}, data{i/10}, read` per group and one `g, user{i}, group{i/10}` per
/// user.
pub fn casbin_shape(name: &str, roles: usize, users: usize, deny: (&str, &str, &str)) -> Shape {
    let mut csv = String::with_capacity((roles + users) * 28);
    for i in 0..roles {
        let _ = writeln!(csv, "p, group{i}, data{}, read", i / 10);
    }
    for i in 0..users {
        let _ = writeln!(csv, "g, user{i}, group{}", i / 10);
    }
    let objects = roles.div_ceil(10);
    let allow_user = users / 2 + 1;
    let mut rng = Rng::new(0x5EED_0000 + roles as u64);
    let mut mix = Vec::with_capacity(MIX_QUERIES);
    for _ in 0..MIX_QUERIES {
        let r = rng.below(100);
        let u = rng.below(users);
        let q = if r < 50 {
            // A user's own group's object: allowed.
            Query::new(format!("user{u}"), "", format!("data{}.read", u / 100))
        } else if r < 85 {
            Query::new(
                format!("user{u}"),
                "",
                format!("data{}.read", rng.below(objects)),
            )
        } else if r < 95 {
            // An action no rule names.
            Query::new(
                format!("user{u}"),
                "",
                format!("data{}.write", rng.below(objects)),
            )
        } else {
            // A user the policy does not know.
            Query::new(
                format!("user{}", users + u),
                "",
                format!("data{}.read", rng.below(objects)),
            )
        };
        mix.push(q);
    }
    let (ds, dobj, dact) = deny;
    let deny_note = if dobj
        .strip_prefix("data")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n >= objects)
    {
        "casbin's published query; its object exists in no rule (unknown permission for us)"
    } else {
        "casbin's published query; the user's group grants another object"
    };
    Shape {
        name: name.to_owned(),
        description: format!(
            "casbin RBAC benchmark: {roles} roles, {users} users, {} rules (model_b_test.go)",
            roles + users
        ),
        source: Source::Casbin {
            model: RBAC_MODEL.to_owned(),
            csv: csv.clone(),
        },
        casbin: Some(CasbinText {
            model: RBAC_MODEL.to_owned(),
            csv,
            how: "the same model and CSV".to_owned(),
        }),
        query_sets: vec![
            QuerySet {
                name: "deny-path".to_owned(),
                note: format!("({ds}, {dobj}, {dact}): {deny_note}"),
                queries: vec![Query::new(ds, "", format!("{dobj}.{dact}"))],
            },
            QuerySet {
                name: "allow-path".to_owned(),
                note: format!(
                    "(user{allow_user}, data{}, read): own group's object",
                    allow_user / 100
                ),
                queries: vec![Query::new(
                    format!("user{allow_user}"),
                    "",
                    format!("data{}.read", allow_user / 100),
                )],
            },
            QuerySet {
                name: "mix".to_owned(),
                note: format!(
                    "{MIX_QUERIES} random: 50% own object, 35% random object, 10% unknown action, 5% unknown user"
                ),
                queries: mix,
            },
        ],
    }
}

const ERP_MODULES: [(&str, [&str; 4]); 5] = [
    ("finance", ["invoices", "payments", "ledger", "budgets"]),
    ("sales", ["orders", "quotes", "customers", "pricing"]),
    ("inventory", ["items", "warehouses", "transfers", "counts"]),
    ("hr", ["employees", "salaries", "leave", "reviews"]),
    ("crm", ["leads", "contacts", "campaigns", "tickets"]),
];
const ERP_ACTIONS: [&str; 5] = ["read", "create", "update", "delete", "approve"];
const ERP_TENANTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];

/// A realistic ERP: 5 tenants, 100 permissions, 5 roles with inheritance, wildcards and denies,
/// 1,000 users holding roles per tenant (every 100th also holds a global role).
pub fn erp() -> Shape {
    let mut doc = PolicyDocument::default();
    for (module, resources) in ERP_MODULES {
        for resource in resources {
            for action in ERP_ACTIONS {
                doc.permissions.declare(
                    format!("{module}.{resource}.{action}"),
                    format!("{action} {resource}"),
                );
            }
        }
    }
    let viewer = doc.role_mut("viewer");
    for (module, resources) in ERP_MODULES {
        for resource in resources {
            if resource != "salaries" {
                viewer.grants.push(format!("{module}.{resource}.read"));
            }
        }
    }
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let clerk = doc.role_mut("clerk");
    clerk.inherits = strings(&["viewer"]);
    clerk.grants = strings(&[
        "sales.*",
        "crm.*",
        "inventory.items.create",
        "inventory.items.update",
        "inventory.transfers.create",
    ]);
    clerk.denies = strings(&[
        "sales.pricing.update",
        "sales.orders.approve",
        "crm.campaigns.delete",
    ]);
    let accountant = doc.role_mut("accountant");
    accountant.inherits = strings(&["viewer"]);
    accountant.grants = strings(&["finance.*", "hr.salaries.read"]);
    accountant.denies = strings(&["finance.ledger.delete"]);
    let manager = doc.role_mut("manager");
    manager.inherits = strings(&["clerk", "accountant"]);
    // `sales.pricing.update` stays denied: clerk denies it, and a deny wins at any depth.
    manager.grants = strings(&["hr.*", "inventory.*", "sales.pricing.update"]);
    manager.denies = strings(&["hr.salaries.delete"]);
    let admin = doc.role_mut("admin");
    admin.grants = strings(&["*"]);
    admin.denies = strings(&["finance.ledger.delete"]);
    for t in ERP_TENANTS {
        doc.tenants.entry(t.to_owned()).or_default().description = Some(format!("{t} Corp"));
    }
    let weighted = [
        ("viewer", 40),
        ("clerk", 25),
        ("accountant", 15),
        ("manager", 15),
        ("admin", 5),
    ];
    let mut rng = Rng::new(0xE4_9000);
    let pick_role = |rng: &mut Rng| {
        let mut x = rng.below(100);
        for (role, w) in weighted {
            if x < w {
                return role;
            }
            x -= w;
        }
        "viewer"
    };
    for u in 0..1000 {
        let subject = format!("user{u}");
        let k = 1 + rng.below(3);
        let mut tenants = BTreeSet::new();
        while tenants.len() < k {
            tenants.insert(*rng.pick(&ERP_TENANTS));
        }
        for t in tenants {
            doc.assign(&subject, Some(t), pick_role(&mut rng));
            if rng.chance(0.25) {
                doc.assign(&subject, Some(t), pick_role(&mut rng));
            }
        }
        if u % 100 == 0 {
            doc.assign(&subject, None, "viewer");
        }
    }
    let queries = mixed_queries(&doc, MIX_QUERIES, 0xE4_9001, "finance.invoices.export");
    Shape {
        name: "erp".to_owned(),
        description: "ERP: 5 tenants, 100 permissions, 5 roles (inheritance, wildcards, denies), \
                      1,000 users with per-tenant roles"
            .to_owned(),
        source: Source::Document(Box::new(doc)),
        casbin: None,
        query_sets: vec![QuerySet {
            name: "mix".to_owned(),
            note: mix_note(),
            queries,
        }],
    }
}

fn mix_note() -> String {
    format!(
        "{MIX_QUERIES} random: 55% own tenant + a permission one of the user's roles names, \
         25% own tenant + any permission, 12% any tenant, 4% unknown user, 4% unknown permission"
    )
}

/// Mixed queries drawn from a document's subjects, tenants and permissions.
fn mixed_queries(
    doc: &PolicyDocument,
    n: usize,
    seed: u64,
    unknown_permission: &str,
) -> Vec<Query> {
    let mut rng = Rng::new(seed);
    let subjects: Vec<(&String, &rbac_core::SubjectDef)> = doc.subjects.iter().collect();
    let tenants: Vec<&String> = doc.tenants.keys().collect();
    let perms: Vec<&str> = doc.permissions.names().collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = rng.below(100);
        let (subject, def) = *rng.pick(&subjects);
        let own: Vec<(&String, &Vec<String>)> = def.tenants.iter().collect();
        let (tenant, held) = if own.is_empty() || r >= 80 {
            ((*rng.pick(&tenants)).clone(), def.roles.clone())
        } else {
            let (t, roles) = *rng.pick(&own);
            let mut held = def.roles.clone();
            held.extend(roles.iter().cloned());
            (t.clone(), held)
        };
        let permission = if r < 55 {
            // A permission named (exactly) by one of the held roles, when there is one.
            let exact: Vec<&String> = held
                .get(rng.below(held.len().max(1)))
                .and_then(|role| doc.roles.get(role))
                .map(|def| {
                    def.grants
                        .iter()
                        .filter(|g| matches!(Pattern::parse(g), Ok(Pattern::Exact(_))))
                        .collect()
                })
                .unwrap_or_default();
            if exact.is_empty() {
                (*rng.pick(&perms)).to_owned()
            } else {
                (*rng.pick(&exact)).clone()
            }
        } else if r < 96 {
            (*rng.pick(&perms)).to_owned()
        } else {
            unknown_permission.to_owned()
        };
        let subject = if (92..96).contains(&r) {
            format!("ghost{}", rng.below(1_000_000))
        } else {
            subject.clone()
        };
        out.push(Query::new(subject, tenant, permission));
    }
    out
}

const SCALE_ACTIONS: [&str; 10] = [
    "read", "create", "update", "delete", "approve", "export", "import", "archive", "share",
    "audit",
];

/// The scale shape: `users` users, `tenants` tenants, 1,000 global roles, 10,000 permissions
/// (100 modules × 10 resources × 10 actions). Each user is in 1–3 tenants (70/20/10%) with 1–2
/// roles there (80/20%); popular roles are drawn more often (index = 1000·x², x uniform).
pub fn scale(users: usize, tenants: usize) -> Shape {
    const ROLES: usize = 1000;
    let mut rng = Rng::new(0x5CA1E);
    let mut doc = PolicyDocument::default();
    let perm = |m: usize, r: usize, a: usize| format!("mod{m:02}.res{r}.{}", SCALE_ACTIONS[a]);
    for m in 0..100 {
        for r in 0..10 {
            for a in 0..10 {
                doc.permissions.declare(perm(m, r, a), "");
            }
        }
    }
    let role_name = |i: usize| format!("role{i:03}");
    for i in 0..ROLES {
        let home = i % 100;
        let mut grants = BTreeSet::new();
        while grants.len() < 15 {
            let m = if rng.chance(0.7) {
                home
            } else {
                rng.below(100)
            };
            grants.insert(perm(m, rng.below(10), rng.below(10)));
        }
        let mut grants: Vec<String> = grants.into_iter().collect();
        if rng.chance(0.2) {
            grants.push(format!("mod{home:02}.res{}.*", rng.below(10)));
        }
        if rng.chance(0.02) {
            grants.push(format!("mod{:02}.*", rng.below(100)));
        }
        let mut denies = Vec::new();
        if rng.chance(0.15) {
            let a = perm(home, rng.below(10), rng.below(10));
            let b = perm(home, rng.below(10), rng.below(10));
            denies.push(a.clone());
            if b != a {
                denies.push(b);
            }
        }
        let mut inherits = Vec::new();
        if i >= 10 {
            inherits.push(role_name(i / 10));
        }
        if i >= 100 && rng.chance(0.1) {
            // A second parent, further up (keeps every chain under casbin's 10 levels).
            let lo = i / 100;
            let j = lo + rng.below(i / 10 - lo);
            if j != i / 10 {
                inherits.push(role_name(j));
            }
        }
        let def = doc.role_mut(&role_name(i));
        def.grants = grants;
        def.denies = denies;
        def.inherits = inherits;
    }
    let tenant_name = |t: usize| format!("t{t}");
    for t in 0..tenants {
        doc.tenants.entry(tenant_name(t)).or_default();
    }
    // casbin: global rules (no domain in `p`), assignments per domain, and the role links
    // repeated in every domain that uses the roles (casbin's role graph is per domain).
    let mut g_lines = String::with_capacity(users * 40);
    let mut used: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); tenants];
    for u in 0..users {
        let subject = format!("u{u}");
        let x = rng.below(10);
        let k = if x < 7 {
            1
        } else if x < 9 {
            2
        } else {
            3
        };
        let mut ts = BTreeSet::new();
        while ts.len() < k {
            ts.insert(rng.below(tenants));
        }
        let def = doc.subjects.entry(subject.clone()).or_default();
        for t in ts {
            let n_roles = if rng.chance(0.2) { 2 } else { 1 };
            let mut roles = BTreeSet::new();
            while roles.len() < n_roles {
                let x = rng.unit();
                roles.insert(((ROLES as f64) * x * x) as usize);
            }
            let tname = tenant_name(t);
            let list = def.tenants.entry(tname.clone()).or_default();
            for r in roles {
                list.push(role_name(r));
                used[t].insert(r);
                let _ = writeln!(g_lines, "g, {subject}, {}, {tname}", role_name(r));
            }
        }
    }
    let mut csv = String::new();
    for (role, def) in &doc.roles {
        for (list, eft) in [(&def.grants, "allow"), (&def.denies, "deny")] {
            for pattern in list {
                let names: Vec<&str> = match Pattern::parse(pattern) {
                    Ok(Pattern::Exact(_)) => vec![pattern.as_str()],
                    Ok(p) => doc.permissions.names().filter(|n| p.matches(n)).collect(),
                    Err(_) => Vec::new(),
                };
                for name in names {
                    let (obj, act) = name.rsplit_once('.').unwrap_or((name, ""));
                    let _ = writeln!(csv, "p, {role}, {obj}, {act}, {eft}");
                }
            }
        }
    }
    let mut role_links = 0usize;
    for (t, roles) in used.iter().enumerate() {
        let mut stack: Vec<usize> = roles.iter().copied().collect();
        let mut seen = BTreeSet::new();
        while let Some(r) = stack.pop() {
            if !seen.insert(r) {
                continue;
            }
            if let Some(def) = doc.roles.get(&role_name(r)) {
                for parent in &def.inherits {
                    let _ = writeln!(csv, "g, {}, {parent}, {}", role_name(r), tenant_name(t));
                    role_links += 1;
                    if let Some(p) = parent.strip_prefix("role").and_then(|p| p.parse().ok()) {
                        stack.push(p);
                    }
                }
            }
        }
    }
    csv.push_str(&g_lines);
    drop(g_lines);
    let model = "[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.obj == p.obj && r.act == p.act
"
    .to_owned();
    let queries = mixed_queries(&doc, MIX_QUERIES, 0x5CA1E + 1, "mod00.res0.fly");
    Shape {
        name: "scale".to_owned(),
        description: format!(
            "scale: {users} users, {tenants} tenants, {ROLES} roles, 10,000 permissions"
        ),
        source: Source::Document(Box::new(doc)),
        casbin: Some(CasbinText {
            model,
            csv,
            how: format!(
                "domain model with global rules (`p = sub, obj, act, eft`), assignments per domain, \
                 role links repeated in each domain that uses them ({role_links} links)"
            ),
        }),
        query_sets: vec![QuerySet {
            name: "mix".to_owned(),
            note: mix_note(),
            queries,
        }],
    }
}
