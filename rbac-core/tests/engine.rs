//! Behaviour of the engine on hand-written policies: scopes, inheritance, denies, wildcards,
//! unknown names, explanations, the interned path and atomic replacement.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rbac_core::{Cause, Effect, Engine, Policy, PolicyDocument, SetLayout, Snapshot};

const POLICY: &str = r#"
[permissions.finance.invoices]
read = "r"
create = "c"
approve = "a"
[permissions.finance.payments]
execute = "x"
[permissions.crm.leads]
read = "r"
delete = "d"

[roles.root]
grants = ["*"]
[roles.viewer]
grants = ["finance.invoices.read", "crm.leads.read"]
[roles.clerk]
inherits = ["viewer"]
grants = ["finance.invoices.*"]
denies = ["finance.invoices.approve"]
[roles.manager]
inherits = ["viewer"]
grants = ["finance.*"]
[roles.trainee]
inherits = ["clerk"]

[tenants.acme]
[tenants.globex]
[tenants.globex.roles.viewer]
denies = ["crm.leads.read"]
[tenants.globex.roles.auditor]
inherits = ["viewer"]
grants = ["finance.payments.execute"]
[tenants.acme.roles.auditor]
grants = ["crm.*"]

[subjects.ops]
roles = ["root"]
[subjects.vera]
roles = ["viewer"]
[subjects.alice.tenants]
acme = ["manager"]
[subjects.tom.tenants]
acme = ["trainee", "manager"]
globex = ["auditor"]
[subjects.gus]
roles = ["viewer"]
[subjects.gus.tenants]
acme = ["auditor"]
"#;

fn engine() -> Engine {
    Engine::new(&Policy::from_toml_str(POLICY).unwrap())
}

fn allowed(e: &Engine, s: &str, t: &str, p: &str) -> bool {
    e.check(s, t, p).is_allowed()
}

#[test]
fn grants_flow_down_inheritance_and_wildcards() {
    let e = engine();
    assert!(allowed(&e, "alice", "acme", "finance.payments.execute"));
    assert!(
        allowed(&e, "alice", "acme", "crm.leads.read"),
        "inherited from viewer"
    );
    assert!(!allowed(&e, "alice", "acme", "crm.leads.delete"));
    assert!(
        allowed(&e, "ops", "globex", "crm.leads.delete"),
        "root's `*`"
    );
    assert!(
        allowed(&e, "ops", "", "crm.leads.delete"),
        "global roles hold in the global scope"
    );
}

#[test]
fn deny_wins_at_any_depth_and_across_roles() {
    let e = engine();
    // trainee inherits clerk, which denies approve; tom also holds manager, which grants it.
    let d = e.check("tom", "acme", "finance.invoices.approve");
    assert_eq!(d.cause(), Cause::ExplicitDeny);
    assert!(allowed(&e, "tom", "acme", "finance.invoices.create"));
    let why = e.explain("tom", "acme", "finance.invoices.approve");
    assert_eq!(why.chain, ["trainee", "clerk"]);
    let rule = why.rule.unwrap();
    assert_eq!(
        (rule.effect, rule.role.as_str(), rule.pattern.as_str()),
        (Effect::Deny, "clerk", "finance.invoices.approve")
    );
}

#[test]
fn tenants_never_leak_into_each_other() {
    let e = engine();
    assert!(!allowed(&e, "alice", "globex", "finance.invoices.read"));
    assert_eq!(
        e.check("alice", "globex", "finance.invoices.read").cause(),
        Cause::NoRoles
    );
    assert!(
        !allowed(&e, "alice", "", "finance.invoices.read"),
        "tenant roles do not apply globally"
    );
    // The same custom role name means different things in two tenants.
    assert!(allowed(&e, "tom", "globex", "finance.payments.execute"));
    assert!(allowed(&e, "gus", "acme", "crm.leads.delete"));
    assert!(!allowed(&e, "gus", "acme", "finance.payments.execute"));
}

#[test]
fn tenant_scoped_rules_change_a_global_role_in_that_tenant_only() {
    let e = engine();
    // vera holds viewer globally; globex's own rules deny viewer crm.leads.read.
    assert!(allowed(&e, "vera", "acme", "crm.leads.read"));
    assert!(allowed(&e, "vera", "", "crm.leads.read"));
    assert_eq!(
        e.check("vera", "globex", "crm.leads.read").cause(),
        Cause::ExplicitDeny
    );
    let why = e.explain("vera", "globex", "crm.leads.read");
    assert_eq!(why.rule.unwrap().tenant.as_deref(), Some("globex"));
    // tom's auditor in globex inherits viewer, and so the globex deny too.
    assert!(!allowed(&e, "tom", "globex", "crm.leads.read"));
    assert!(allowed(&e, "tom", "globex", "finance.invoices.read"));
}

#[test]
fn unknown_names_are_denied_with_their_cause() {
    let e = engine();
    assert_eq!(
        e.check("nobody", "acme", "crm.leads.read").cause(),
        Cause::UnknownSubject
    );
    assert_eq!(
        e.check("alice", "initech", "crm.leads.read").cause(),
        Cause::UnknownTenant
    );
    assert_eq!(
        e.check("alice", "acme", "crm.leads.export").cause(),
        Cause::UnknownPermission
    );
    assert_eq!(
        e.check("alice", "acme", "crm.*").cause(),
        Cause::UnknownPermission,
        "patterns are not permissions"
    );
    assert_eq!(
        e.check("alice", "acme", "").cause(),
        Cause::UnknownPermission
    );
    assert_eq!(
        e.check("", "", "crm.leads.read").cause(),
        Cause::UnknownSubject
    );
    assert_eq!(
        e.check("ops", "acme", "finance.invoices.read").cause(),
        Cause::Granted
    );
}

#[test]
fn explain_agrees_with_check_on_every_query() {
    let e = engine();
    let subjects = ["ops", "vera", "alice", "tom", "gus", "nobody"];
    let tenants = ["", "acme", "globex", "initech"];
    let perms = [
        "finance.invoices.read",
        "finance.invoices.approve",
        "finance.payments.execute",
        "crm.leads.read",
        "crm.leads.delete",
        "x.y",
    ];
    for s in subjects {
        for t in tenants {
            for p in perms {
                let why = e.explain(s, t, p);
                assert_eq!(why.decision, e.check(s, t, p), "{s} {t} {p}");
                assert_eq!(
                    why.rule.is_some(),
                    matches!(why.decision.cause(), Cause::Granted | Cause::ExplicitDeny),
                    "{why}"
                );
                let verdict = if why.decision.is_allowed() {
                    "allow: "
                } else {
                    "deny: "
                };
                assert!(why.to_string().starts_with(verdict), "{why}");
            }
        }
    }
}

#[test]
fn permissions_of_lists_the_effective_set() {
    let e = engine();
    assert_eq!(
        e.permissions_of("tom", "acme"),
        [
            "crm.leads.read",
            "finance.invoices.create",
            "finance.invoices.read",
            "finance.payments.execute"
        ]
    );
    assert!(e.permissions_of("tom", "initech").is_empty());
    assert!(e.permissions_of("nobody", "acme").is_empty());
}

#[test]
fn interned_ids_match_the_string_api_and_refuse_other_snapshots() {
    let e = engine();
    let snap = e.snapshot();
    let s = snap.subject_id("tom").unwrap();
    let t = snap.tenant_id("acme").unwrap();
    let p = snap.permission_id("finance.invoices.create").unwrap();
    assert!(snap.is_allowed(s, t, p));
    let global = snap.tenant_id("").unwrap();
    assert!(!snap.is_allowed(s, global, p));
    assert!(snap.tenant_id("initech").is_none());
    // Ids from an older snapshot are denied, not misread against the new one.
    e.replace(&Policy::from_toml_str(POLICY).unwrap());
    let fresh = e.snapshot();
    assert!(!fresh.is_allowed(s, t, p));
    assert_eq!(fresh.decide(s, t, p).cause(), Cause::StaleIds);
    let s2 = fresh.subject_id("tom").unwrap();
    let t2 = fresh.tenant_id("acme").unwrap();
    let p2 = fresh.permission_id("finance.invoices.create").unwrap();
    assert!(fresh.is_allowed(s2, t2, p2));
}

#[test]
fn a_replaced_policy_is_seen_whole_or_not_at_all() {
    // Policy A gives alice exactly {x.a, x.b}; policy B exactly {x.c}. A reader must never see a
    // mix while the two are swapped in a loop.
    let registry =
        "[permissions.x]\na = \"\"\nb = \"\"\nc = \"\"\n[subjects.alice]\nroles = [\"r\"]\n";
    let a = Policy::from_toml_str(&format!(
        "{registry}[roles.r]\ngrants = [\"x.a\", \"x.b\"]\n"
    ))
    .unwrap();
    let b = Policy::from_toml_str(&format!("{registry}[roles.r]\ngrants = [\"x.c\"]\n")).unwrap();
    let engine = Arc::new(Engine::new(&a));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = [0usize; 2];
                while !stop.load(Ordering::Relaxed) {
                    let set = engine.permissions_of("alice", "");
                    match set.as_slice() {
                        [x, y] if x == "x.a" && y == "x.b" => seen[0] += 1,
                        [z] if z == "x.c" => seen[1] += 1,
                        other => panic!("half-applied policy seen: {other:?}"),
                    }
                }
                seen
            })
        })
        .collect();
    for i in 0..2_000 {
        engine.replace(if i % 2 == 0 { &b } else { &a });
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let seen = r.join().unwrap();
        assert!(seen[0] + seen[1] > 0);
    }
}

#[test]
fn a_check_after_replace_sees_the_new_policy_on_every_thread() {
    // Each thread remembers the snapshot it last used; a swap must still be seen by the very
    // next check, on the swapping thread and on others, and two engines must never share
    // what a thread remembers.
    let registry = "[permissions.x]\na = \"\"\n[subjects.alice]\nroles = [\"r\"]\n";
    let allow =
        Policy::from_toml_str(&format!("{registry}[roles.r]\ngrants = [\"x.a\"]\n")).unwrap();
    let deny = Policy::from_toml_str(&format!("{registry}[roles.r]\n")).unwrap();
    let engine = Arc::new(Engine::new(&allow));
    let other = Engine::new(&deny);
    for round in 0..200 {
        let expect = round % 2 == 0;
        assert_eq!(
            allowed(&engine, "alice", "", "x.a"),
            expect,
            "round {round}"
        );
        assert!(
            !allowed(&other, "alice", "", "x.a"),
            "round {round}: engines mixed up"
        );
        assert_eq!(
            allowed(&engine, "alice", "", "x.a"),
            expect,
            "round {round}"
        );
        let seen_elsewhere = {
            let engine = engine.clone();
            std::thread::spawn(move || allowed(&engine, "alice", "", "x.a"))
                .join()
                .unwrap()
        };
        assert_eq!(seen_elsewhere, expect, "round {round}: other thread");
        engine.replace(if expect { &deny } else { &allow });
    }
}

#[test]
fn documents_built_in_code_validate_like_toml() {
    let mut doc = PolicyDocument::default();
    doc.permissions.declare("hr.payroll.read", "Read payroll");
    doc.role_mut("hr").grants.push("hr.*".into());
    doc.assign("ann", None, "hr");
    doc.assign("ann", None, "hr");
    let policy = Policy::from_document(doc.clone()).unwrap();
    assert!(
        Engine::new(&policy)
            .check("ann", "", "hr.payroll.read")
            .is_allowed()
    );
    doc.assign("ann", Some("nowhere"), "hr");
    let err = Policy::from_document(doc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<document>: 1 error in the policy\n  <document>: subject `ann` in tenant `nowhere`: \
         unknown tenant `nowhere` (declare it under `[tenants.nowhere]`)"
    );
}

#[test]
fn bundled_example_policy_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/erp.toml");
    let policy = Policy::from_toml_file(path).unwrap();
    let e = Engine::new(&policy);
    assert!(
        e.check("alice", "acme", "finance.invoices.approve")
            .is_allowed()
    );
    assert!(
        !e.check("dave", "acme", "finance.invoices.delete")
            .is_allowed()
    );
}

/// `check_module` decides exactly what "any permission of the module in `permissions_of`"
/// decides, on small sets (id lists) and large ones (bitsets), for modules that are prefixes
/// of others (`fin` is not `finance`), single-segment permissions and unknown names, with
/// each set layout: subjects holding two or three roles in a tenant, one of which denies what
/// another grants, test the split one (`pat`, `quin`, `rex`, `sam`).
#[test]
fn a_module_check_agrees_with_the_permission_list() {
    let mut toml = String::from(
        "[permissions]\nfin = \"a one-segment permission\"\n\
         [permissions.finance.invoices]\nread = \"r\"\napprove = \"a\"\n\
         [permissions.finance_extra.x]\ny = \"y\"\n\
         [permissions.financeb.z]\nw = \"w\"\n",
    );
    // Many permissions so that broad sets are stored as bitsets.
    for m in 0..12 {
        for r in 0..30 {
            toml.push_str(&format!(
                "[permissions.mod{m}.res{r}]\nread = \"\"\nwrite = \"\"\n"
            ));
        }
    }
    toml.push_str(
        "[roles.all]\ngrants = [\"*\"]\ndenies = [\"mod3.*\"]\n\
         [roles.one]\ngrants = [\"mod7.res29.write\"]\n\
         [roles.denier]\ndenies = [\"finance.*\"]\n\
         [roles.fin]\ngrants = [\"fin\", \"financeb.*\"]\n\
         [roles.wide]\ngrants = [\"mod1.*\", \"mod2.*\", \"mod4.*\", \"mod5.*\", \"mod6.*\", \"mod8.*\", \"mod9.*\", \"finance_extra.*\", \"finance.invoices.read\"]\n\
         [roles.nofin]\ndenies = [\"fin\"]\n\
         [tenants.acme]\n[tenants.acme.roles.one]\ngrants = [\"mod0.*\"]\n\
         [subjects.root]\nroles = [\"all\"]\n\
         [subjects.ann]\nroles = [\"one\"]\n\
         [subjects.den]\nroles = [\"denier\"]\n\
         [subjects.fay]\nroles = [\"fin\"]\n\
         [subjects.wes]\nroles = [\"wide\"]\n\
         [subjects.bob.tenants]\nacme = [\"one\"]\n\
         [subjects.pat.tenants]\nacme = [\"wide\", \"denier\"]\n\
         [subjects.quin.tenants]\nacme = [\"all\", \"one\"]\n\
         [subjects.rex]\nroles = [\"one\"]\n[subjects.rex.tenants]\nacme = [\"denier\", \"fin\"]\n\
         [subjects.sam.tenants]\nacme = [\"fin\", \"nofin\"]\n",
    );
    let policy = Policy::from_toml_str(&toml).unwrap();
    let whole = Engine::from_snapshot(Snapshot::compile_with(&policy, SetLayout::Whole));
    for layout in [SetLayout::Auto, SetLayout::Whole, SetLayout::Split] {
        let engine = Engine::from_snapshot(Snapshot::compile_with(&policy, layout));
        module_checks_agree(&engine, &whole);
    }
}

/// `engine`'s module checks agree with its permission lists, and both with `whole`'s.
fn module_checks_agree(engine: &Engine, whole: &Engine) {
    let mut modules: Vec<String> = (0..12).map(|m| format!("mod{m}")).collect();
    modules.extend(
        [
            "fin",
            "finance",
            "finance_extra",
            "financeb",
            "mod",
            "mod1.res3",
            "nope",
            "zzz",
        ]
        .map(str::to_owned),
    );
    let mut granted = 0;
    let subjects = [
        "root", "ann", "den", "fay", "wes", "bob", "pat", "quin", "rex", "sam", "nobody",
    ];
    for subject in subjects {
        for tenant in ["", "acme", "nowhere"] {
            for module in &modules {
                let held = engine.permissions_of(subject, tenant);
                assert_eq!(
                    held,
                    whole.permissions_of(subject, tenant),
                    "{subject} {tenant:?}"
                );
                let expected = held.iter().any(|p| {
                    p.strip_prefix(module.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
                });
                let decision = engine.check_module(subject, tenant, module);
                assert_eq!(decision, whole.check_module(subject, tenant, module));
                assert_eq!(
                    decision.is_allowed(),
                    expected,
                    "{subject} {tenant:?} {module}: {decision:?}"
                );
                granted += usize::from(expected);
                if !expected {
                    let cause = decision.cause();
                    match (subject, tenant, module.as_str()) {
                        (_, _, "nope" | "zzz" | "mod") => {
                            assert_eq!(cause, Cause::UnknownPermission)
                        }
                        (_, "nowhere", _) => assert_eq!(cause, Cause::UnknownTenant),
                        ("nobody", _, _) => assert_eq!(cause, Cause::UnknownSubject),
                        ("den", _, "finance") => assert_eq!(cause, Cause::ExplicitDeny),
                        ("root", _, "mod3") => assert_eq!(cause, Cause::ExplicitDeny),
                        ("bob" | "pat" | "quin" | "sam", "", _) => {
                            assert_eq!(cause, Cause::NoRoles)
                        }
                        ("pat" | "rex", "acme", "finance") => {
                            assert_eq!(cause, Cause::ExplicitDeny)
                        }
                        ("quin", "acme", "mod3") => assert_eq!(cause, Cause::ExplicitDeny),
                        ("sam", "acme", "fin") => assert_eq!(cause, Cause::ExplicitDeny),
                        _ => assert_eq!(cause, Cause::NoGrant, "{subject} {tenant:?} {module}"),
                    }
                }
            }
        }
    }
    assert!(granted > 30, "the test exercises allows too ({granted})");
}

/// A registry of 10,000 permissions: 100 modules (named by `module`), each with resources
/// `r0`..`r9` and actions `a0`..`a9`.
fn registry_toml(module: impl Fn(usize) -> String) -> String {
    let mut toml = String::new();
    for m in 0..100 {
        for r in 0..10 {
            toml.push_str(&format!("[permissions.{}.r{r}]\n", module(m)));
            for a in 0..10 {
                toml.push_str(&format!("a{a} = \"\"\n"));
            }
        }
    }
    toml
}

/// With many subjects holding distinct pairs of roles over many permissions, the layout the
/// engine picks keeps each pair as two parts (few sets) rather than one set per pair, and
/// decides exactly as the one-set layout does. Each role denies one permission of the next
/// module and one of the previous, so in pairs of neighbours a deny sits in the first part
/// against a grant of the second, and the other way round.
#[test]
fn many_role_pairs_are_kept_as_two_parts() {
    let mut toml = registry_toml(|m| format!("m{m}"));
    const ROLES: usize = 64;
    for i in 0..ROLES {
        toml.push_str(&format!(
            "[roles.role{i}]\ngrants = [\"m{i}.*\"]\ndenies = [\"m{}.r0.a0\", \"m{}.r1.a1\"]\n",
            (i + 1) % ROLES,
            (i + ROLES - 1) % ROLES
        ));
    }
    toml.push_str("[tenants.acme]\n");
    let mut pairs = Vec::new();
    for i in 0..ROLES {
        for j in i + 1..ROLES {
            let name = format!("u{i}_{j}");
            toml.push_str(&format!(
                "[subjects.{name}.tenants]\nacme = [\"role{i}\", \"role{j}\"]\n"
            ));
            pairs.push((name, i, j));
        }
    }
    let policy = Policy::from_toml_str(&toml).unwrap();
    let auto = Snapshot::compile(&policy);
    let whole = Snapshot::compile_with(&policy, SetLayout::Whole);
    let split = Snapshot::compile_with(&policy, SetLayout::Split);
    assert_eq!(auto.stats().effective_sets, split.stats().effective_sets);
    assert_eq!(split.stats().effective_sets, ROLES);
    assert_eq!(whole.stats().effective_sets, pairs.len());
    let (mut allowed, mut denied) = (0, 0);
    let sample = pairs
        .iter()
        .enumerate()
        .filter(|(k, (_, i, j))| k % 7 == 0 || j - i == 1 || j - i == ROLES - 1)
        .map(|(_, pair)| pair);
    for (name, i, j) in sample {
        for module in [*i, *j, (*i + 1) % ROLES, (*j + 1) % ROLES, (i + j) % ROLES] {
            let permissions = ["r0.a0", "r1.a1", "r3.a7"].map(|p| format!("m{module}.{p}"));
            for permission in permissions {
                let expected = whole.check(name, "acme", &permission);
                assert_eq!(auto.check(name, "acme", &permission), expected);
                assert_eq!(split.check(name, "acme", &permission), expected);
                allowed += usize::from(expected.is_allowed());
                denied += usize::from(expected.cause() == Cause::ExplicitDeny);
            }
            let module = format!("m{module}");
            let expected = whole.check_module(name, "acme", &module);
            assert_eq!(auto.check_module(name, "acme", &module), expected);
        }
        assert_eq!(
            auto.permissions_of(name, "acme"),
            whole.permissions_of(name, "acme")
        );
    }
    assert!(allowed > 100, "the test exercises allows too ({allowed})");
    assert!(denied > 100, "and denies ({denied})");
}

/// A registry of 10,000 permissions, where a role's grants cluster in a few modules (how
/// ERP roles look): the engine stores such sets as ranked bitsets (the unit test
/// `clustered_grants_compile_to_a_ranked_set` checks that it does). Every decision, module
/// check and permission list matches the rules read directly.
#[test]
fn clustered_grants_in_a_large_registry_decide_like_their_rules() {
    let name = |m: usize, r: usize, a: usize| format!("m{m:02}.r{r}.a{a}");
    let mut toml = registry_toml(|m| format!("m{m:02}"));
    let mut rng = fastrand::Rng::with_seed(0xC1u64);
    // Per role: (grant patterns, deny patterns, parent).
    let mut roles: Vec<(Vec<String>, Vec<String>, Option<usize>)> = Vec::new();
    for i in 0..40 {
        let home = [rng.usize(..100), rng.usize(..100), rng.usize(..100)];
        let exact: std::collections::BTreeSet<String> = (0..rng.usize(9..60))
            .map(|_| name(home[rng.usize(..3)], rng.usize(..10), rng.usize(..10)))
            .collect();
        let mut grants: Vec<String> = exact.into_iter().collect();
        if i % 3 == 0 {
            grants.push(format!("m{:02}.r{}.*", home[0], rng.usize(..10)));
        }
        if i % 7 == 0 {
            grants.push(format!("m{:02}.*", rng.usize(..100)));
        }
        let mut denies = vec![name(home[0], rng.usize(..10), rng.usize(..10))];
        if i % 4 == 0 {
            denies.push(format!("m{:02}.r{}.*", home[1], rng.usize(..10)));
        }
        let parent = (i >= 5 && i % 2 == 0).then(|| rng.usize(..i));
        toml.push_str(&format!(
            "[roles.role{i}]\ngrants = {grants:?}\ndenies = {denies:?}\n{}",
            parent.map_or(String::new(), |p| format!("inherits = [\"role{p}\"]\n"))
        ));
        roles.push((grants, denies, parent));
    }
    toml.push_str("[tenants.acme]\n");
    let mut subjects = Vec::new();
    for s in 0..60 {
        let held: std::collections::BTreeSet<usize> =
            (0..1 + s % 3).map(|_| rng.usize(..roles.len())).collect();
        let list: Vec<String> = held.iter().map(|r| format!("role{r}")).collect();
        toml.push_str(&format!("[subjects.s{s}.tenants]\nacme = {list:?}\n"));
        subjects.push((format!("s{s}"), held));
    }
    let policy = Policy::from_toml_str(&toml).unwrap();
    let matches = |pattern: &str, permission: &str| match pattern.strip_suffix('*') {
        Some(prefix) => permission.starts_with(prefix),
        None => pattern == permission,
    };
    // Grant and deny patterns of a role and its ancestors.
    let rules = |mut role: usize| {
        let (mut grants, mut denies) = (Vec::new(), Vec::new());
        loop {
            let (g, d, parent) = &roles[role];
            grants.extend(g.iter().cloned());
            denies.extend(d.iter().cloned());
            match parent {
                Some(p) => role = *p,
                None => return (grants, denies),
            }
        }
    };
    let mut decided = [0usize; 3];
    for layout in [SetLayout::Auto, SetLayout::Whole, SetLayout::Split] {
        let snapshot = Snapshot::compile_with(&policy, layout);
        for (subject, held) in &subjects {
            let (mut grants, mut denies) = (Vec::new(), Vec::new());
            for &role in held {
                let (g, d) = rules(role);
                grants.extend(g);
                denies.extend(d);
            }
            let mut expected_list = Vec::new();
            for m in 0..100 {
                let (mut any_allowed, mut any_denied) = (false, false);
                for r in 0..10 {
                    for a in 0..10 {
                        let permission = name(m, r, a);
                        let denied = denies.iter().any(|d| matches(d, &permission));
                        let granted = grants.iter().any(|g| matches(g, &permission));
                        // Deny wins over grant.
                        let expected = match (denied, granted) {
                            (true, _) => Cause::ExplicitDeny,
                            (false, true) => Cause::Granted,
                            (false, false) => Cause::NoGrant,
                        };
                        let got = snapshot.check(subject, "acme", &permission);
                        assert_eq!(got.cause(), expected, "{layout:?} {subject} {permission}");
                        let s = snapshot.subject_id(subject).unwrap();
                        let t = snapshot.tenant_id("acme").unwrap();
                        let p = snapshot.permission_id(&permission).unwrap();
                        assert_eq!(snapshot.is_allowed(s, t, p), expected == Cause::Granted);
                        decided[match expected {
                            Cause::Granted => 0,
                            Cause::ExplicitDeny => 1,
                            _ => 2,
                        }] += 1;
                        any_allowed |= expected == Cause::Granted;
                        any_denied |= expected == Cause::ExplicitDeny;
                        if expected == Cause::Granted {
                            expected_list.push(permission);
                        }
                    }
                }
                let module = snapshot.check_module(subject, "acme", &format!("m{m:02}"));
                // A module check: any allowed permission wins, then any denied one.
                let expected = match (any_allowed, any_denied) {
                    (true, _) => Cause::Granted,
                    (false, true) => Cause::ExplicitDeny,
                    (false, false) => Cause::NoGrant,
                };
                assert_eq!(
                    module.cause(),
                    expected,
                    "{layout:?} {subject} module m{m:02}"
                );
            }
            assert_eq!(snapshot.permissions_of(subject, "acme"), expected_list);
        }
    }
    assert!(
        decided.iter().all(|&n| n > 1000),
        "allows, denies and missing grants all occur: {decided:?}"
    );
}
