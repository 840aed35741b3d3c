//! Row-level policies: the in-memory evaluator, `explain` and the SQL filter must agree on
//! every row, for random policies, subjects and tables — on a real SQLite database always, and
//! on a real PostgreSQL server when `RBAC_TEST_POSTGRES_URL` is set at build time (each test in
//! a fresh database). Also: the parser never panics, load errors name the item, and the
//! semantics (OR across roles, tenant isolation, deny by default) hold.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on a broken fixture"
)]

use std::collections::BTreeMap;
use std::str::FromStr;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rbac_core::resource::{Attribute, SubjectAttributes, Value};
use rbac_core::rows::{Truth, parse_filter};
use rbac_core::{Engine, Item, Policy, PolicyError, Problem};
use sqlx::{Connection, QueryBuilder};

const RESOURCE: &str = r#"
[resources.items]
table = "items"
tenant_column = "tenant"
[resources.items.columns]
id = "int"
owner = "text"
dept = "int"
score = "float"
status = "text"
flag = "bool"

[tenants.t1]
[tenants.t2]
"#;

/// One generated row.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    tenant: &'static str,
    owner: Option<&'static str>,
    dept: Option<i64>,
    score: Option<f64>,
    status: Option<&'static str>,
    flag: Option<bool>,
}

impl Row {
    fn values(&self) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("id".to_owned(), Value::Int(self.id)),
            ("tenant".to_owned(), Value::from(self.tenant)),
            ("owner".to_owned(), Value::from(self.owner)),
            ("dept".to_owned(), Value::from(self.dept)),
            ("score".to_owned(), Value::from(self.score)),
            ("status".to_owned(), Value::from(self.status)),
            ("flag".to_owned(), Value::from(self.flag)),
        ])
    }
}

fn row(id: i64) -> impl Strategy<Value = Row> {
    (
        prop::sample::select(vec!["t1", "t2"]),
        prop::option::weighted(0.8, prop::sample::select(vec!["u0", "u1", "u2"])),
        prop::option::weighted(0.8, 0i64..4),
        prop::option::weighted(0.8, prop::sample::select(vec![0.5, 1.5, 2.0, 3.25])),
        prop::option::weighted(0.8, prop::sample::select(vec!["open", "draft", "it's"])),
        prop::option::weighted(0.8, any::<bool>()),
    )
        .prop_map(move |(tenant, owner, dept, score, status, flag)| Row {
            id,
            tenant,
            owner,
            dept,
            score,
            status,
            flag,
        })
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    (0usize..30).prop_flat_map(|n| (0..n as i64).map(row).collect::<Vec<_>>())
}

/// Leaves over every column type, literal and attribute kind, including `not in`, nulls and
/// the attributes a subject may lack or hold with the wrong type.
fn leaf() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "all",
        "none",
        "owner = subject.id",
        "owner != 'u1'",
        "owner <> subject.id",
        "owner in ('u0', 'u2')",
        "owner not in ('u0')",
        "owner is null",
        "owner is not null",
        "dept = subject.dept",
        "dept in subject.depts",
        "dept not in subject.depts",
        "dept < 2",
        "dept >= subject.dept",
        "dept not in (1, 2)",
        "dept > -1",
        "score > 1.5",
        "score <= subject.minscore",
        "score = 2",
        "score != subject.minscore",
        "score is null",
        "status = 'open'",
        "status in subject.statuses",
        "status != 'it''s'",
        "status = subject.status",
        "flag = true",
        "flag != subject.flag",
        "flag is not null",
        "id < 10",
        "id in subject.depts",
    ])
    .prop_map(str::to_owned)
}

fn filter() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("{a} or {b} and not {c}")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn attribute() -> impl Strategy<Value = Option<Attribute>> {
    prop::option::weighted(
        0.75,
        prop_oneof![
            (0i64..4).prop_map(|i| Attribute::One(Value::Int(i))),
            // NaN compares with nothing in memory, and above every number in PostgreSQL:
            // as an attribute it must deny in both, as a missing one does.
            prop::sample::select(vec![
                0.5,
                1.5,
                3.25,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY
            ])
            .prop_map(|x| Attribute::One(Value::Float(x))),
            prop::sample::select(vec!["open", "draft", "it's", "x"])
                .prop_map(|s| Attribute::One(Value::from(s))),
            any::<bool>().prop_map(|b| Attribute::One(Value::Bool(b))),
            prop::collection::vec(0i64..4, 0..3)
                .prop_map(|v| Attribute::List(v.into_iter().map(Value::Int).collect())),
            prop::collection::vec(prop::sample::select(vec!["open", "draft", "it's"]), 0..3)
                .prop_map(|v| Attribute::List(v.into_iter().map(Value::from).collect())),
        ],
    )
}

fn subject() -> impl Strategy<Value = SubjectAttributes> {
    (
        prop::sample::select(vec!["u0", "u1", "u2"]),
        prop::collection::vec(attribute(), 6),
    )
        .prop_map(|(id, attrs)| {
            let mut out = SubjectAttributes::new(id);
            let names = ["dept", "depts", "minscore", "statuses", "status", "flag"];
            for (name, attr) in names.iter().zip(attrs) {
                if let Some(attr) = attr {
                    out.set(*name, attr);
                }
            }
            out
        })
}

/// A policy: three global roles (r2 inherits r1), each with or without a filter; r0 with or
/// without a filter of its own in tenant t1; the subject holds some roles globally, some in t1.
#[derive(Debug, Clone)]
struct Case {
    global_filters: Vec<Option<String>>,
    t1_filter: Option<String>,
    global_roles: Vec<bool>,
    t1_roles: Vec<bool>,
    subject: SubjectAttributes,
    rows: Vec<Row>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::option::weighted(0.7, filter()), 3),
        prop::option::of(filter()),
        prop::collection::vec(prop::bool::weighted(0.2), 3),
        prop::collection::vec(prop::bool::weighted(0.5), 3),
        subject(),
        rows(),
    )
        .prop_map(
            |(global_filters, t1_filter, global_roles, t1_roles, subject, rows)| Case {
                global_filters,
                t1_filter,
                global_roles,
                t1_roles,
                subject,
                rows,
            },
        )
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Case {
    fn policy(&self) -> Policy {
        let mut text = String::from(RESOURCE);
        for (i, f) in self.global_filters.iter().enumerate() {
            text.push_str(&format!("[roles.r{i}]\n"));
            if i == 2 {
                text.push_str("inherits = [\"r1\"]\n");
            }
            if let Some(f) = f {
                text.push_str(&format!("[roles.r{i}.rows]\nitems = {}\n", toml_string(f)));
            }
        }
        if let Some(f) = &self.t1_filter {
            text.push_str(&format!(
                "[tenants.t1.roles.r0.rows]\nitems = {}\n",
                toml_string(f)
            ));
        }
        let pick = |held: &[bool]| -> Vec<String> {
            held.iter()
                .enumerate()
                .filter(|(_, h)| **h)
                .map(|(i, _)| format!("\"r{i}\""))
                .collect()
        };
        let id = self.subject.id();
        text.push_str(&format!(
            "[subjects.{id}]\nroles = [{}]\n[subjects.{id}.tenants]\nt1 = [{}]\n",
            pick(&self.global_roles).join(", "),
            pick(&self.t1_roles).join(", ")
        ));
        Policy::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

const SQLITE_TABLE: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, \
    owner TEXT, dept INTEGER, score REAL, status TEXT, flag BOOLEAN)";
const PG_TABLE: &str = "CREATE TABLE items (id BIGINT PRIMARY KEY, tenant TEXT NOT NULL, \
    owner TEXT, dept BIGINT, score DOUBLE PRECISION, status TEXT, flag BOOLEAN)";

macro_rules! fill_and_select {
    ($db:ty, $conn:expr, $filter:expr, $rows:expr) => {{
        sqlx::query("DELETE FROM items")
            .execute(&mut *$conn)
            .await
            .unwrap();
        if !$rows.is_empty() {
            let mut insert = QueryBuilder::<$db>::new(
                "INSERT INTO items (id, tenant, owner, dept, score, status, flag) ",
            );
            insert.push_values($rows.iter(), |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.tenant)
                    .push_bind(r.owner)
                    .push_bind(r.dept)
                    .push_bind(r.score)
                    .push_bind(r.status)
                    .push_bind(r.flag);
            });
            insert.build().execute(&mut *$conn).await.unwrap();
        }
        let mut select = QueryBuilder::<$db>::new("SELECT id FROM items WHERE ");
        $filter.push_sql(&mut select);
        select.push(" ORDER BY id");
        let sql = select.sql().as_str().to_owned();
        let ids: Vec<i64> = select
            .build_query_scalar()
            .fetch_all(&mut *$conn)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        (ids, sql)
    }};
}

/// The rows the in-memory evaluator admits, checked against `explain`.
fn admitted(case: &Case, snapshot: &rbac_core::Snapshot) -> Vec<i64> {
    let filter = snapshot.row_filter(&case.subject, "t1", "items").unwrap();
    let mut out = Vec::new();
    for r in &case.rows {
        let values = r.values();
        let admits = filter.admits(&values);
        let why = filter.explain(&values);
        assert_eq!(why.admitted, admits, "{why}");
        assert_eq!(
            why.admitted,
            why.tenant_matches && why.rules.iter().any(|v| v.verdict == Truth::True)
        );
        if admits {
            out.push(r.id);
        }
    }
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192)
}

#[test]
fn sql_on_sqlite_equals_memory_and_explain() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let conn = rt.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query(SQLITE_TABLE).execute(&mut conn).await.unwrap();
        std::cell::RefCell::new(Some(conn))
    });
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    runner
        .run(&case(), |case| {
            let snapshot = Engine::new(&case.policy()).snapshot();
            let expected = admitted(&case, &snapshot);
            let filter = snapshot.row_filter(&case.subject, "t1", "items").unwrap();
            let (ids, sql) = rt.block_on(async {
                let mut c = conn.borrow_mut().take().unwrap();
                let out = fill_and_select!(sqlx::Sqlite, (&mut c), filter, case.rows);
                *conn.borrow_mut() = Some(c);
                out
            });
            prop_assert_eq!(ids, expected, "{}", sql);
            Ok(())
        })
        .unwrap();
}

#[test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
fn sql_on_postgres_equals_memory_and_explain() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut conn, admin, name) = rt.block_on(fresh_postgres());
    rt.block_on(async {
        sqlx::query(PG_TABLE).execute(&mut conn).await.unwrap();
    });
    let conn = std::cell::RefCell::new(Some(conn));
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    let result = runner.run(&case(), |case| {
        let snapshot = Engine::new(&case.policy()).snapshot();
        let expected = admitted(&case, &snapshot);
        let filter = snapshot.row_filter(&case.subject, "t1", "items").unwrap();
        let (ids, sql) = rt.block_on(async {
            let mut c = conn.borrow_mut().take().unwrap();
            let out = fill_and_select!(sqlx::Postgres, (&mut c), filter, case.rows);
            *conn.borrow_mut() = Some(c);
            out
        });
        prop_assert_eq!(ids, expected, "{}", sql);
        Ok(())
    });
    rt.block_on(async {
        if let Some(c) = conn.into_inner() {
            c.close().await.ok();
        }
        drop_database(&admin, &name).await;
    });
    result.unwrap();
}

/// A fresh database on the test server: (connection, admin URL, database name).
async fn fresh_postgres() -> (sqlx::PgConnection, String, String) {
    let admin = std::env::var("RBAC_TEST_POSTGRES_URL")
        .expect("RBAC_TEST_POSTGRES_URL is set at build time but not at run time");
    let name = format!("rbac_rows_{}", fastrand::u64(..));
    let mut server = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut server)
        .await
        .unwrap();
    server.close().await.ok();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let conn = sqlx::PgConnection::connect(&format!("{base}/{name}"))
        .await
        .unwrap();
    (conn, admin, name)
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut server) = sqlx::PgConnection::connect(admin).await {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut server)
        .await
        .ok();
    }
}

proptest! {
    #![proptest_config(Config::with_cases(2000))]

    #[test]
    fn parser_never_panics_on_any_string(text in any::<String>()) {
        let _ = parse_filter(&text);
    }

    #[test]
    fn parser_never_panics_on_token_soup(tokens in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "and", "or", "not", "in", "is", "null", "all", "none", "true", "false",
        "=", "!=", "<>", "<", "<=", ">", ">=", ",", ".", "subject", "subject.id", "owner",
        "dept", "'x'", "'", "''", "1", "-1", "1.5", "-", "1.2.3", "99999999999999999999",
        "NOT", "é", "\"", ";", "--",
    ]), 0..40)) {
        let text = tokens.join(" ");
        let _ = parse_filter(&text);
        // Through the whole loader too: a bad filter is a load error, never a panic.
        let policy = format!("{RESOURCE}[roles.r.rows]\nitems = {}\n", toml_string(&text));
        let _ = Policy::from_toml_str(&policy);
    }

    #[test]
    fn generated_filters_always_load(f in filter()) {
        let policy = format!("{RESOURCE}[roles.r.rows]\nitems = {}\n", toml_string(&f));
        prop_assert!(Policy::from_toml_str(&policy).is_ok(), "{}", f);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}all{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_filter(&deep).is_err());
    let nots = format!("{}all", "not ".repeat(10_000));
    assert!(parse_filter(&nots).is_err());
    assert!(parse_filter(&format!("{}all", "not ".repeat(10))).is_ok());
}

fn invalid(text: &str) -> Vec<String> {
    match Policy::from_toml_str(text) {
        Err(PolicyError::Invalid(errors)) => {
            errors.issues.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn load_errors_name_the_role_the_resource_and_the_problem() {
    let issues = invalid(&format!(
        r#"{RESOURCE}
        [resources.bad]
        table = "x; drop"
        tenant_column = "tenant"
        columns = {{ amount = "decimal", "a b" = "int" }}
        [roles.user.rows]
        items = "ownr = subject.id"
        invoices = "all"
        [roles.clerk.rows]
        items = "status < 'b' and dept = 'x' and flag = 1 and owner = subject.id and dept = subject.id"
        [roles.broken.rows]
        items = "status = "
        [roles.user.fields.items]
        read = ["amount"]
        read_deny = ["owner"]
        "#
    ));
    let expected = [
        "resource `bad`: table `x; drop` is not an SQL identifier",
        "resource `bad`: column `a b` is not an SQL identifier",
        "resource `bad`: column `amount` has the unknown type `decimal` (use `int`, `float`, `text` or `bool`)",
        "role `user`: row filter for `items`: `ownr` is not a declared column of resource `items` (did you mean `owner`?)",
        "role `user`: row filter for the undeclared resource `invoices` (declare it under `[resources.invoices]`)",
        "role `clerk`: row filter for `items`: `status` is text; `<` applies to int and float columns only",
        "role `clerk`: row filter for `items`: `dept` is int; it cannot be compared with 'x'",
        "role `clerk`: row filter for `items`: `flag` is bool; it cannot be compared with 1",
        "role `clerk`: row filter for `items`: `dept` is int; it cannot be compared with subject.id (text)",
        "role `broken`: row filter for `items`: syntax error at byte 9: expected a literal",
        "role `user`: field rule for `items`: `read` and `read_deny` are both given",
        "role `user`: field rule for `items`: `read` names `amount`, which resource `items` does not declare",
    ];
    for want in expected {
        assert!(
            issues.iter().any(|i| i.starts_with(want)),
            "missing `{want}` in:\n{}",
            issues.join("\n")
        );
    }
    assert!(!issues.iter().any(|i| i.contains("owner = subject.id")));
}

#[test]
fn load_error_items_are_typed() {
    let text = format!("{RESOURCE}[tenants.t1.roles.r.rows]\nitems = \"nope = 1\"\n");
    let Err(PolicyError::Invalid(errors)) = Policy::from_toml_str(&text) else {
        panic!("expected an error");
    };
    assert_eq!(
        errors.issues[0].item,
        Item::TenantRole {
            tenant: "t1".into(),
            role: "r".into()
        }
    );
    assert!(matches!(
        errors.issues[0].problem,
        Problem::BadRowFilter { ref resource, .. } if resource == "items"
    ));
}

const INVOICES: &str = r#"
[resources.invoices]
table = "invoices"
tenant_column = "tenant_id"
[resources.invoices.columns]
id = "int"
created_by = "text"
department_id = "int"
status = "text"

[roles.user.rows]
invoices = "created_by = subject.id"
[roles.manager]
inherits = ["user"]
[roles.manager.rows]
invoices = "department_id in subject.departments"
[roles.admin.rows]
invoices = "all"
[roles.drafts.rows]
invoices = "not (status = subject.hidden_status)"
[roles.nobody]

[tenants.acme]
[tenants.acme.roles.user.rows]
invoices = "created_by = subject.id and status != 'draft'"
[tenants.globex]

[subjects.alice.tenants]
acme = ["user"]
globex = ["user"]
[subjects.mia.tenants]
acme = ["manager"]
[subjects.root]
roles = ["admin"]
[subjects.dan.tenants]
acme = ["drafts"]
[subjects.nemo.tenants]
acme = ["nobody"]
"#;

fn invoice(tenant: &str, id: i64, by: &str, dept: i64, status: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("tenant_id".to_owned(), Value::from(tenant)),
        ("id".to_owned(), Value::Int(id)),
        ("created_by".to_owned(), Value::from(by)),
        ("department_id".to_owned(), Value::Int(dept)),
        ("status".to_owned(), Value::from(status)),
    ])
}

#[test]
fn semantics_or_across_roles_tenant_isolation_and_deny_by_default() {
    let snapshot = Engine::new(&Policy::from_toml_str(INVOICES).unwrap()).snapshot();
    let alice = SubjectAttributes::new("alice");
    let mine_acme = invoice("acme", 1, "alice", 1, "open");
    let draft_acme = invoice("acme", 2, "alice", 1, "draft");
    let mine_globex = invoice("globex", 3, "alice", 1, "draft");
    let other = invoice("acme", 4, "bob", 7, "open");

    // The acme layer of `user` replaces the global filter in acme: drafts are hidden there.
    let f = snapshot.row_filter(&alice, "acme", "invoices").unwrap();
    assert!(f.admits(&mine_acme));
    assert!(!f.admits(&draft_acme));
    assert!(!f.admits(&mine_globex), "tenant isolation");
    assert!(!f.admits(&other));
    assert_eq!(f.roles().collect::<Vec<_>>(), [("user", Some("acme"))]);
    let g = snapshot.row_filter(&alice, "globex", "invoices").unwrap();
    assert!(g.admits(&mine_globex));
    assert!(!g.admits(&mine_acme), "tenant isolation");
    let why = g.explain(&mine_acme);
    assert!(!why.tenant_matches);
    assert!(why.to_string().contains("another tenant"), "{why}");

    // mia is a manager (inheriting user): her department OR her own invoices.
    let mia = SubjectAttributes::new("mia").with_list("departments", [7]);
    let f = snapshot.row_filter(&mia, "acme", "invoices").unwrap();
    assert!(f.admits(&other));
    assert!(f.admits(&invoice("acme", 5, "mia", 1, "open")));
    assert!(!f.admits(&invoice("acme", 6, "zed", 1, "open")));
    assert_eq!(snapshot.roles_of("mia", "acme"), ["manager", "user"]);
    // Without the attribute, only the inherited `user` filter can admit.
    let mia_bare = SubjectAttributes::new("mia");
    let f = snapshot.row_filter(&mia_bare, "acme", "invoices").unwrap();
    assert!(!f.admits(&other));
    let why = f.explain(&other);
    assert_eq!(why.rules[0].role, "manager");
    assert_eq!(why.rules[0].verdict, Truth::Unknown);

    // A global admin sees every row of the tenant asked for, and only that tenant.
    let root = SubjectAttributes::new("root");
    let f = snapshot.row_filter(&root, "globex", "invoices").unwrap();
    assert!(f.admits(&mine_globex));
    assert!(!f.admits(&mine_acme));

    // A missing attribute never turns into an allow through `not`.
    let dan = SubjectAttributes::new("dan");
    let f = snapshot.row_filter(&dan, "acme", "invoices").unwrap();
    assert!(!f.admits(&mine_acme));
    let dan = SubjectAttributes::new("dan").with("hidden_status", "draft");
    let f = snapshot.row_filter(&dan, "acme", "invoices").unwrap();
    assert!(f.admits(&mine_acme));
    assert!(!f.admits(&draft_acme));
    // Wrong type: unknown too.
    let dan = SubjectAttributes::new("dan").with("hidden_status", 3);
    assert!(
        !snapshot
            .row_filter(&dan, "acme", "invoices")
            .unwrap()
            .admits(&mine_acme)
    );

    // No filter among the roles, unknown subject or tenant: no rows.
    for (who, tenant) in [
        ("nemo", "acme"),
        ("ghost", "acme"),
        ("alice", "nowhere"),
        ("alice", ""),
    ] {
        let attrs = SubjectAttributes::new(who);
        let f = snapshot.row_filter(&attrs, tenant, "invoices").unwrap();
        assert!(f.admits_nothing(), "{who} in {tenant}");
        assert!(!f.admits(&mine_acme));
        let mut q = QueryBuilder::<sqlx::Sqlite>::new("");
        f.push_sql(&mut q);
        assert_eq!(q.sql().as_str(), "(1 = 0)");
    }
    assert_eq!(
        snapshot
            .row_filter(&alice, "acme", "bills")
            .unwrap_err()
            .to_string(),
        "resource `bills` is not declared in the policy"
    );
}

#[test]
fn sql_binds_every_value_and_quotes_declared_identifiers() {
    let snapshot = Engine::new(&Policy::from_toml_str(INVOICES).unwrap()).snapshot();
    let evil = "x');DROP/**/TABLE/**/invoices;--";
    let mia = SubjectAttributes::new("mia").with_list("departments", [1, 2, 3]);
    let f = snapshot.row_filter(&mia, "acme", "invoices").unwrap();
    let mut q = QueryBuilder::<sqlx::Postgres>::new("SELECT id FROM invoices WHERE ");
    f.push_sql(&mut q);
    assert_eq!(
        q.sql().as_str(),
        r#"SELECT id FROM invoices WHERE ("tenant_id" = $1 AND (("department_id" IN ($2, $3, $4)) OR (("created_by" = $5) AND ("status" <> $6))))"#
    );
    // A hostile subject id is a bound value, never SQL text.
    let text = format!("[subjects.\"{evil}\".tenants]\nacme = [\"user\"]\n");
    let policy = Policy::from_toml_str(&format!("{INVOICES}{text}")).unwrap();
    let snapshot = Engine::new(&policy).snapshot();
    let attrs = SubjectAttributes::new(evil);
    let f = snapshot.row_filter(&attrs, "acme", "invoices").unwrap();
    let mut q = QueryBuilder::<sqlx::Sqlite>::new("SELECT id FROM invoices WHERE ");
    f.push_sql(&mut q);
    assert!(!q.sql().as_str().contains("DROP"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE invoices (id INTEGER, tenant_id TEXT, created_by TEXT, department_id INTEGER, status TEXT)")
            .execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO invoices VALUES (1, 'acme', $1, 1, 'open'), (2, 'acme', 'bob', 1, 'open')")
            .bind(evil).execute(&mut conn).await.unwrap();
        let ids: Vec<i64> = q.build_query_scalar().fetch_all(&mut conn).await.unwrap();
        assert_eq!(ids, [1]);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices").fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 2);
    });
}

#[test]
fn subject_attributes_from_claims() {
    let claims = serde_json::json!({
        "departments": [1, 2], "region": "eu", "level": 3, "admin": false,
        "nested": {"a": 1}, "mixed": [1, {"b": 2}], "id": "spoofed"
    });
    let attrs = SubjectAttributes::from_claims("alice", claims.as_object().unwrap());
    assert_eq!(
        attrs.id(),
        "alice",
        "the `id` claim cannot replace the subject"
    );
    assert_eq!(
        attrs.get("departments"),
        Some(Attribute::List(vec![Value::Int(1), Value::Int(2)]))
    );
    assert_eq!(attrs.get("region"), Some(Attribute::One(Value::from("eu"))));
    assert_eq!(attrs.get("nested"), None);
    assert_eq!(attrs.get("mixed"), None);
}

/// A NaN attribute is a missing one: the same SQL and the same "no" in memory. PostgreSQL
/// sorts NaN above every number, so bound as a value, `amount <= subject.limit` would admit
/// every row of the tenant there (SQLite stores NaN as NULL, which hides it).
#[test]
fn a_nan_attribute_is_a_missing_one() {
    let snapshot = Engine::new(
        &Policy::from_toml_str(
            r#"
            [resources.bills]
            table = "bills"
            tenant_column = "tenant"
            columns = { amount = "float" }
            [roles.approver.rows]
            bills = "amount <= subject.limit or amount in subject.limits"
            [tenants.acme]
            [subjects.ann.tenants]
            acme = ["approver"]
            "#,
        )
        .unwrap(),
    )
    .snapshot();
    let sql = |attrs: &SubjectAttributes| {
        let filter = snapshot.row_filter(attrs, "acme", "bills").unwrap();
        let mut q = QueryBuilder::<sqlx::Sqlite>::new("");
        filter.push_sql(&mut q);
        q.sql().as_str().to_owned()
    };
    let missing = SubjectAttributes::new("ann");
    let nan = SubjectAttributes::new("ann")
        .with("limit", f64::NAN)
        .with_list("limits", [1.0, f64::NAN]);
    let finite = SubjectAttributes::new("ann").with("limit", 10.0);
    assert_eq!(sql(&nan), sql(&missing));
    assert_ne!(sql(&finite), sql(&missing), "a real limit is bound");
    let row = BTreeMap::from([
        ("tenant".to_owned(), Value::from("acme")),
        ("amount".to_owned(), Value::Float(1.0)),
    ]);
    let filter = snapshot.row_filter(&nan, "acme", "bills").unwrap();
    assert!(!filter.admits(&row));
}
