//! Row- and field-level policies on a 1,000,000-row `invoices` table.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin row_filter
//! RBAC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:54329/postgres \
//!     cargo run --release --manifest-path bench/Cargo.toml --bin row_filter
//! ```
//!
//! Side by side in one run, per database: "list my invoices" with the compiled row filter
//! pushed into SQL, versus fetching the tenant's rows and filtering them in memory with the
//! same policy (`RowFilter::admits`); the per-request cost of building the filter and pushing
//! it into a `QueryBuilder`; and redacting a 1,000-record JSON response.
//!
//! The table: 1,000,000 rows, two tenants of 500,000, 1,000 users and 20 departments per
//! tenant, indexes on (tenant_id, created_by) and (tenant_id, department_id).

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rbac_core::resource::{SubjectAttributes, Value};
use rbac_core::rows::{FilterDatabase, RowFilter, RowSource};
use rbac_core::{Engine, Policy};
use sqlx::{Connection, Database, Executor, IntoArguments, QueryBuilder, Row};

const ROWS: i64 = 1_000_000;

const POLICY: &str = r#"
[resources.invoices]
table = "invoices"
tenant_column = "tenant_id"
fields = ["customer.name", "customer.credit_limit"]
[resources.invoices.columns]
id = "int"
created_by = "text"
department_id = "int"
status = "text"
amount = "int"

[roles.user.rows]
invoices = "created_by = subject.id"
[roles.user.fields.invoices]
read_deny = ["amount", "customer.credit_limit"]
write = ["status"]
[roles.manager]
inherits = ["user"]
[roles.manager.rows]
invoices = "department_id in subject.departments and status != 'draft'"

[tenants.acme]
[tenants.globex]
[subjects.u7.tenants]
acme = ["user"]
[subjects.m3.tenants]
acme = ["manager"]
"#;

/// One fetched row, the in-memory peer's input (a lean struct, its best case).
struct Invoice {
    id: i64,
    tenant_id: String,
    created_by: String,
    department_id: i64,
    status: String,
    amount: i64,
}

impl RowSource for Invoice {
    fn value(&self, column: &str) -> Value {
        match column {
            "id" => Value::Int(self.id),
            "tenant_id" => Value::Text(self.tenant_id.clone()),
            "created_by" => Value::Text(self.created_by.clone()),
            "department_id" => Value::Int(self.department_id),
            "status" => Value::Text(self.status.clone()),
            "amount" => Value::Int(self.amount),
            _ => Value::Null,
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

const SELECT: &str =
    "SELECT id, tenant_id, created_by, department_id, status, amount FROM invoices WHERE ";

fn decode<R: Row>(r: &R) -> Invoice
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Invoice {
        id: r.try_get(0).unwrap_or_default(),
        tenant_id: r.try_get(1).unwrap_or_default(),
        created_by: r.try_get(2).unwrap_or_default(),
        department_id: r.try_get(3).unwrap_or_default(),
        status: r.try_get(4).unwrap_or_default(),
        amount: r.try_get(5).unwrap_or_default(),
    }
}

struct Line {
    database: &'static str,
    who: &'static str,
    rows: usize,
    sql: Duration,
    memory: Duration,
}

async fn compare<DB, C>(
    database: &'static str,
    conn: &mut C,
    filter: &RowFilter<'_>,
    who: &'static str,
) -> Line
where
    DB: FilterDatabase,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'a> <DB as Database>::Arguments: IntoArguments<DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut rows = 0;
    let mut samples = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let mut q = QueryBuilder::<DB>::new(SELECT);
        filter.push_sql(&mut q);
        let fetched = q.build().fetch_all(&mut *conn).await.unwrap_or_default();
        black_box(fetched.iter().map(decode).count());
        samples.push(start.elapsed());
    }
    let sql = median(samples);
    let mut samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut q = QueryBuilder::<DB>::new(SELECT);
        q.push("tenant_id = ").push_bind(filter.tenant().to_owned());
        let fetched = q.build().fetch_all(&mut *conn).await.unwrap_or_default();
        black_box(
            fetched
                .iter()
                .map(decode)
                .filter(|inv| filter.admits(inv))
                .count(),
        );
        samples.push(start.elapsed());
    }
    let memory = median(samples);
    // The two paths must agree before their times mean anything.
    let mut q = QueryBuilder::<DB>::new(SELECT);
    filter.push_sql(&mut q);
    let via_sql = q
        .build()
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default()
        .len();
    let mut q = QueryBuilder::<DB>::new(SELECT);
    q.push("tenant_id = ").push_bind(filter.tenant().to_owned());
    let fetched = q.build().fetch_all(&mut *conn).await.unwrap_or_default();
    let via_memory = fetched
        .iter()
        .map(decode)
        .filter(|inv| filter.admits(inv))
        .count();
    assert_eq!(via_sql, via_memory, "SQL and in-memory filters disagree");
    rows += via_sql;
    Line {
        database,
        who,
        rows,
        sql,
        memory,
    }
}

/// Same data on both databases; only the recursive row generator differs.
fn populate_sql(generator: &str) -> String {
    format!(
        "INSERT INTO invoices (id, tenant_id, created_by, department_id, status, amount) \
         SELECT g, CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 'u' || ((g / 2) % 1000), \
         (g / 7) % 20, CASE WHEN g % 10 = 0 THEN 'draft' WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END, \
         g % 100000 FROM {generator}"
    )
}

async fn sqlite(lines: &mut Vec<Line>, filters: &[(&'static str, RowFilter<'_>)]) {
    let started = Instant::now();
    eprintln!("sqlite: loading {ROWS} rows…");
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for sql in [
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, created_by TEXT NOT NULL, department_id INTEGER NOT NULL, status TEXT NOT NULL, amount INTEGER NOT NULL)".to_owned(),
        populate_sql(&format!("(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {ROWS}) SELECT g FROM s)")),
        "CREATE INDEX invoices_by_creator ON invoices (tenant_id, created_by)".to_owned(),
        "CREATE INDEX invoices_by_department ON invoices (tenant_id, department_id)".to_owned(),
        "ANALYZE".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    eprintln!("sqlite: loaded in {:.1} s", started.elapsed().as_secs_f64());
    for (who, filter) in filters {
        lines.push(compare::<sqlx::Sqlite, _>("SQLite", &mut conn, filter, who).await);
    }
}

async fn postgres(url: &str, lines: &mut Vec<Line>, filters: &[(&'static str, RowFilter<'_>)]) {
    let started = Instant::now();
    let name = format!("rbac_bench_rows_{}", std::process::id());
    let mut server = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut server)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/{name}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("postgres: loading {ROWS} rows…");
    for sql in [
        "CREATE TABLE invoices (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL, created_by TEXT NOT NULL, department_id BIGINT NOT NULL, status TEXT NOT NULL, amount BIGINT NOT NULL)".to_owned(),
        populate_sql(&format!("generate_series(1, {ROWS}) AS g")),
        "CREATE INDEX invoices_by_creator ON invoices (tenant_id, created_by)".to_owned(),
        "CREATE INDEX invoices_by_department ON invoices (tenant_id, department_id)".to_owned(),
        "VACUUM ANALYZE invoices".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    eprintln!(
        "postgres: loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (who, filter) in filters {
        lines.push(compare::<sqlx::Postgres, _>("PostgreSQL", &mut conn, filter, who).await);
    }
    conn.close().await.ok();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&mut server)
        .await
        .ok();
}

fn compile_cost(snapshot: &rbac_core::Snapshot, attrs: &SubjectAttributes) -> Duration {
    const N: u32 = 200_000;
    let start = Instant::now();
    for _ in 0..N {
        let filter = snapshot
            .row_filter(attrs, "acme", "invoices")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut q = QueryBuilder::<sqlx::Postgres>::new(SELECT);
        filter.push_sql(&mut q);
        black_box(q.sql());
    }
    start.elapsed() / N
}

fn redact_cost(snapshot: &rbac_core::Snapshot) -> (Duration, Duration) {
    let records: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            serde_json::json!({
                "id": i, "tenant_id": "acme", "created_by": "u7", "department_id": i % 20,
                "status": "open", "amount": i * 10,
                "customer": {"name": "Ann", "credit_limit": 5000}
            })
        })
        .collect();
    let page = serde_json::Value::Array(records);
    let mut copies: Vec<serde_json::Value> = (0..101).map(|_| page.clone()).collect();
    let mut with_mask = Vec::new();
    let mut mask_only = Vec::new();
    for copy in &mut copies {
        let start = Instant::now();
        let mask = snapshot
            .field_mask("u7", "acme", "invoices")
            .unwrap_or_else(|e| panic!("{e}"));
        mask_only.push(start.elapsed());
        mask.redact(copy);
        with_mask.push(start.elapsed());
    }
    let shown = copies
        .first()
        .and_then(|v| v.get(0))
        .cloned()
        .unwrap_or_default();
    assert!(shown.get("amount").is_none() && shown["customer"].get("credit_limit").is_none());
    (median(with_mask), median(mask_only))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let policy = Policy::from_toml_str(POLICY).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = Engine::new(&policy).snapshot();
    let user = SubjectAttributes::new("u7");
    let manager = SubjectAttributes::new("m3").with_list("departments", [2, 3, 5]);

    let compile_user = compile_cost(&snapshot, &user);
    let compile_manager = compile_cost(&snapshot, &manager);
    let (redact, mask) = redact_cost(&snapshot);

    let filters = [
        (
            "user (own invoices)",
            snapshot
                .row_filter(&user, "acme", "invoices")
                .unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            "manager (3 departments or own)",
            snapshot
                .row_filter(&manager, "acme", "invoices")
                .unwrap_or_else(|e| panic!("{e}")),
        ),
    ];
    let mut lines = Vec::new();
    sqlite(&mut lines, &filters).await;
    match std::env::var("RBAC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => postgres(&url, &mut lines, &filters).await,
        _ => eprintln!("postgres: skipped (set RBAC_TEST_POSTGRES_URL)"),
    }

    println!(
        "\n## Row filter, {ROWS} invoices (2 tenants of {})\n",
        ROWS / 2
    );
    println!(
        "| database | subject | rows returned | compiled filter in SQL | tenant rows + in-memory filter | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for l in &lines {
        println!(
            "| {} | {} | {} | {} | {} | {:.0}× |",
            l.database,
            l.who,
            l.rows,
            ms(l.sql),
            ms(l.memory),
            l.memory.as_secs_f64() / l.sql.as_secs_f64().max(1e-9)
        );
    }
    println!("\n| per request | time |\n|---|---|");
    println!(
        "| build + push filter (user, 1 role) | {:.2} µs |",
        compile_user.as_secs_f64() * 1e6
    );
    println!(
        "| build + push filter (manager, 2 roles, 3-value IN) | {:.2} µs |",
        compile_manager.as_secs_f64() * 1e6
    );
    println!("| field mask | {:.2} µs |", mask.as_secs_f64() * 1e6);
    println!("| redact 1,000 records (mask included) | {} |", ms(redact));
}
