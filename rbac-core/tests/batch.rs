//! The batch APIs (`check_batch`, `is_allowed_batch`) against one check per query: the same
//! decisions, in order, on snapshots small enough to be checked query by query and large
//! enough to be read ahead, in every set layout.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use rbac_core::{Decision, Engine, Policy, QueryIds, SetLayout, Snapshot};

/// Subjects in the large policy: with a subject table 4/5 full and 64-byte records, 60,000
/// subjects make a table of 75,000 records (4.6 MiB), past the 4 MiB from which batches read
/// records ahead.
const LARGE: usize = 60_000;

/// A policy of `subjects` subjects over 250 permissions, 24 roles (inheritance, wildcards,
/// denies), 40 tenants: each subject holds one to three roles in one to three tenants, one in
/// seven also a global role, and one in eleven only a global role. Tenant `t0` gives `role0` a
/// deny of its own. Also gives each subject's tenants, for queries.
fn policy(subjects: usize, rng: &mut fastrand::Rng) -> (Policy, Vec<Vec<usize>>) {
    let mut held = Vec::with_capacity(subjects);
    let mut toml = String::new();
    for m in 0..10 {
        for r in 0..5 {
            toml.push_str(&format!("[permissions.m{m}.r{r}]\n"));
            for a in 0..5 {
                toml.push_str(&format!("a{a} = \"\"\n"));
            }
        }
    }
    for i in 0..24 {
        toml.push_str(&format!(
            "[roles.role{i}]\ngrants = [\"m{}.*\", \"m{}.r{}.a1\"]\ndenies = [\"m{}.r0.a0\"]\n",
            i % 10,
            (i + 3) % 10,
            i % 5,
            (i + 1) % 10
        ));
        if i % 4 != 0 {
            toml.push_str(&format!("inherits = [\"role{}\"]\n", i - 1));
        }
    }
    for t in 0..40 {
        toml.push_str(&format!("[tenants.t{t}]\n"));
    }
    toml.push_str("[tenants.t0.roles.role0]\ndenies = [\"m0.r1.a1\"]\n");
    for s in 0..subjects {
        toml.push_str(&format!("[subjects.u{s}]\n"));
        if s % 7 == 0 || s % 11 == 0 {
            toml.push_str(&format!("roles = [\"role{}\"]\n", rng.usize(0..24)));
        }
        if s % 11 == 0 {
            held.push(Vec::new());
            continue;
        }
        toml.push_str(&format!("[subjects.u{s}.tenants]\n"));
        let mut tenants: Vec<usize> = (0..rng.usize(1..=3)).map(|_| rng.usize(0..40)).collect();
        tenants.sort_unstable();
        tenants.dedup();
        held.push(tenants.clone());
        for t in tenants {
            let mut roles: Vec<usize> = (0..rng.usize(1..=3)).map(|_| rng.usize(0..24)).collect();
            roles.sort_unstable();
            roles.dedup();
            let roles: Vec<String> = roles.iter().map(|r| format!("\"role{r}\"")).collect();
            toml.push_str(&format!("t{t} = [{}]\n", roles.join(", ")));
        }
    }
    (Policy::from_toml_str(&toml).unwrap(), held)
}

/// Random queries over the subjects of `held` (their tenants): known and unknown subjects,
/// tenants and permissions, and the global scope; half of them in one of the subject's own
/// tenants, the rest in any.
fn queries(
    held: &[Vec<usize>],
    n: usize,
    rng: &mut fastrand::Rng,
) -> Vec<(String, String, String)> {
    (0..n)
        .map(|_| {
            let s = rng.usize(0..held.len());
            let subject = match rng.u8(0..20) {
                0 => format!("ghost{}", rng.u32(..)),
                1 => String::new(),
                _ => format!("u{s}"),
            };
            let own = &held[s];
            let tenant = match rng.u8(0..20) {
                0 => "nowhere".to_owned(),
                1 | 2 => String::new(),
                3..=11 if !own.is_empty() => format!("t{}", own[rng.usize(0..own.len())]),
                _ => format!("t{}", rng.usize(0..40)),
            };
            let permission = match rng.u8(0..20) {
                0 => "m0.r0.nope".to_owned(),
                _ => format!(
                    "m{}.r{}.a{}",
                    rng.usize(0..10),
                    rng.usize(0..5),
                    rng.usize(0..5)
                ),
            };
            (subject, tenant, permission)
        })
        .collect()
}

/// Checks every batch entry point against single checks, over slices of several lengths
/// (shorter than the look-ahead, around it, long) and an empty one.
fn batches_agree(snapshot: &Snapshot, queries: &[(String, String, String)]) {
    let singles: Vec<Decision> = queries
        .iter()
        .map(|(s, t, p)| snapshot.check(s, t, p))
        .collect();
    let ids: Vec<QueryIds> = queries
        .iter()
        .map(|(s, t, p)| snapshot.query_ids(s, t, p))
        .collect();
    // Not a test that cannot fail for want of allowed queries, or of denied ones.
    let allowed = singles.iter().filter(|d| d.is_allowed()).count();
    assert!(allowed > 0 && allowed < singles.len(), "{allowed} allowed");
    let ahead = rbac_core::BATCH_AHEAD;
    for len in [
        1,
        ahead / 2 - 1,
        ahead - 1,
        ahead,
        ahead + 1,
        1000,
        queries.len(),
    ] {
        let mut from = 0;
        while from < queries.len() {
            let to = (from + len).min(queries.len());
            let want = &singles[from..to];
            assert_eq!(
                snapshot.check_batch(&queries[from..to]),
                want,
                "check_batch, slices of {len}"
            );
            let got = snapshot.is_allowed_batch(&ids[from..to]);
            for (i, (&got, want)) in got.iter().zip(want).enumerate() {
                let (s, t, p) = &queries[from + i];
                assert_eq!(got, want.is_allowed(), "is_allowed_batch ({s}, {t}, {p})");
                let interned = match (
                    snapshot.subject_id(s),
                    snapshot.tenant_id(t),
                    snapshot.permission_id(p),
                ) {
                    (Some(s), Some(t), Some(p)) => snapshot.is_allowed(s, t, p),
                    _ => false,
                };
                assert_eq!(got, interned, "is_allowed ({s}, {t}, {p})");
            }
            assert_eq!(got.len(), to - from);
            from = to;
        }
    }
    assert!(snapshot.check_batch::<&str, &str, &str>(&[]).is_empty());
    assert!(snapshot.is_allowed_batch(&[]).is_empty());
}

#[test]
fn batches_on_a_large_snapshot_decide_like_single_checks_in_every_layout() {
    let mut rng = fastrand::Rng::with_seed(7);
    let (policy, held) = policy(LARGE, &mut rng);
    let queries = queries(&held, 20_000, &mut rng);
    for layout in [SetLayout::Auto, SetLayout::Whole, SetLayout::Split] {
        let snapshot = Snapshot::compile_with(&policy, layout);
        assert_eq!(snapshot.stats().subjects, LARGE);
        batches_agree(&snapshot, &queries);
    }
}

#[test]
fn batches_on_a_small_snapshot_decide_like_single_checks() {
    let mut rng = fastrand::Rng::with_seed(11);
    let (policy, held) = policy(300, &mut rng);
    let queries = queries(&held, 5_000, &mut rng);
    for layout in [SetLayout::Whole, SetLayout::Split] {
        batches_agree(&Snapshot::compile_with(&policy, layout), &queries);
    }
}

#[test]
fn an_engine_batch_is_decided_against_its_current_snapshot() {
    let mut rng = fastrand::Rng::with_seed(3);
    let (policy, held) = policy(200, &mut rng);
    let queries = queries(&held, 2_000, &mut rng);
    let engine = Engine::new(&policy);
    let singles: Vec<Decision> = queries
        .iter()
        .map(|(s, t, p)| engine.check(s, t, p))
        .collect();
    assert!(singles.iter().any(|d| d.is_allowed()));
    assert_eq!(engine.check_batch(&queries), singles);

    // After a swap, the batch answers by the new policy: another draw of the subjects' roles.
    let (other, _) = self::policy(200, &mut fastrand::Rng::with_seed(4));
    engine.replace(&other);
    let compiled = Snapshot::compile(&other);
    let after: Vec<Decision> = queries
        .iter()
        .map(|(s, t, p)| compiled.check(s, t, p))
        .collect();
    assert_ne!(after, singles);
    assert_eq!(engine.check_batch(&queries), after);

    // And by a policy that knows nobody.
    engine.replace(&Policy::from_toml_str("[permissions.m0.r0]\na0 = \"\"\n").unwrap());
    assert!(engine.check_batch(&queries).iter().all(|d| !d.is_allowed()));
}

#[test]
fn query_ids_of_another_snapshot_or_of_unknown_names_are_denied() {
    let mut rng = fastrand::Rng::with_seed(5);
    let (policy, _) = policy(100, &mut rng);
    let (a, b) = (Snapshot::compile(&policy), Snapshot::compile(&policy));
    let allowed = (0..100)
        .map(|s| format!("u{s}"))
        .flat_map(|s| (0..40).map(move |t| (s.clone(), format!("t{t}"), "m0.r1.a1".to_owned())))
        .find(|(s, t, p)| a.check(s, t, p).is_allowed())
        .unwrap();
    let (s, t, p) = &allowed;
    let ids = a.query_ids(s, t, p);
    assert_eq!(a.is_allowed_batch(&[ids]), [true]);
    // The same names, resolved by another snapshot of the same policy: not valid here.
    assert_eq!(b.is_allowed_batch(&[ids]), [false]);
    assert_eq!(b.is_allowed_batch(&[b.query_ids(s, t, p)]), [true]);

    // Ids from two snapshots in one query: denied by both.
    let mixed = QueryIds::new(
        a.subject_id(s).unwrap(),
        b.tenant_id(t).unwrap(),
        a.permission_id(p).unwrap(),
    );
    assert_eq!(a.is_allowed_batch(&[mixed]), [false]);
    assert_eq!(b.is_allowed_batch(&[mixed]), [false]);
    let whole = QueryIds::new(
        a.subject_id(s).unwrap(),
        a.tenant_id(t).unwrap(),
        a.permission_id(p).unwrap(),
    );
    assert_eq!(whole, ids);

    for (s, t, p) in [
        ("ghost", t.as_str(), p.as_str()),
        (s, "nowhere", p),
        (s, t, "m0.r1.zz"),
        ("", t, p),
    ] {
        assert_eq!(
            a.is_allowed_batch(&[a.query_ids(s, t, p)]),
            [false],
            "({s}, {t}, {p})"
        );
    }
}
