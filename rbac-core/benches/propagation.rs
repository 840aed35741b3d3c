//! How long a revocation (or a grant) takes to reach another process.
//!
//! ```text
//! cargo bench -p rbac-core --features postgres --bench propagation -- [--rounds N] [--postgres URL]
//! ```
//!
//! The parent process changes the policy through its own `Store`; a child process (this binary
//! again) runs a `LiveEngine` on its own connection and reports the wall-clock time at which its
//! check first returns the new answer. The figure is end to end: from just before the parent's
//! `apply` starts to the child's first changed decision. Measured on SQLite (version polling,
//! the only mechanism there) and, with `--postgres`, on PostgreSQL twice: with `LISTEN/NOTIFY`
//! and with polling alone (what reload-on-interval libraries do), so the ratio shows what
//! notifications buy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rbac_core::Policy;
use rbac_core::store::{Change, ChangeContext, LiveOptions, Store};

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

const POLICY: &str = r#"
[permissions.finance.invoices]
approve = "Approve invoices"
[roles.manager]
grants = ["finance.*"]
[tenants.acme]
[subjects.alice.tenants]
acme = ["manager"]
"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(spec) = std::env::var("RBAC_PROPAGATION_CHILD") {
        return runtime.block_on(child(spec));
    }
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rounds: usize = flag("--rounds").map_or(40, |r| r.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let sqlite = format!("sqlite://{}/propagation.db", dir.path().display());
    rows.push(runtime.block_on(measure(
        "SQLite, poll every 200 ms",
        &sqlite,
        200,
        true,
        rounds,
    )));
    if let Some(admin) = flag("--postgres").or_else(|| std::env::var("RBAC_TEST_POSTGRES_URL").ok())
    {
        let url = runtime.block_on(fresh_postgres(&admin));
        rows.push(runtime.block_on(measure(
            "PostgreSQL, LISTEN/NOTIFY (+ poll 200 ms)",
            &url,
            200,
            true,
            rounds,
        )));
        let url = runtime.block_on(fresh_postgres(&admin));
        rows.push(runtime.block_on(measure(
            "PostgreSQL, poll every 200 ms only",
            &url,
            200,
            false,
            rounds,
        )));
    } else {
        println!("(no --postgres URL or RBAC_TEST_POSTGRES_URL: PostgreSQL rows skipped)");
    }
    println!(
        "\n{:<44} {:>9} {:>9} {:>9} {:>9}",
        "store and mechanism", "min ms", "median", "p99", "max"
    );
    for (name, mut samples) in rows {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            at(0.0),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

async fn fresh_postgres(admin: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!("rbac_propagation_{}", fastrand::u64(..));
    let pool = sqlx::AnyPool::connect(admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

/// Milliseconds per round, from the parent's change to the child's first new answer. The child
/// polls every `poll_ms` and, when `listen`, also listens for PostgreSQL notifications.
async fn measure(
    name: &str,
    url: &str,
    poll_ms: u64,
    listen: bool,
    rounds: usize,
) -> (String, Vec<f64>) {
    let store = Store::connect(url).await.unwrap();
    store
        .import(
            &ChangeContext::new("bench"),
            &Policy::from_toml_str(POLICY).unwrap(),
        )
        .await
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(
            "RBAC_PROPAGATION_CHILD",
            format!("{url}|{poll_ms}|{listen}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    from_child.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let ctx = ChangeContext::new("bench");
    let mut samples = Vec::new();
    for round in 0..rounds {
        let revoke = round % 2 == 0;
        writeln!(to_child, "{}", if revoke { "deny" } else { "allow" }).unwrap();
        to_child.flush().unwrap();
        line.clear();
        from_child.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "waiting");
        let change = if revoke {
            Change::Unassign {
                subject: "alice".into(),
                tenant: Some("acme".into()),
                role: "manager".into(),
            }
        } else {
            Change::Assign {
                subject: "alice".into(),
                tenant: Some("acme".into()),
                role: "manager".into(),
            }
        };
        let start = now_ns();
        store.apply_one(&ctx, change).await.unwrap();
        line.clear();
        from_child.read_line(&mut line).unwrap();
        let seen: u128 = line.trim().parse().unwrap();
        samples.push((seen.saturating_sub(start)) as f64 / 1e6);
        // Spread the changes over the poll cycle, as real changes are.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    drop(to_child);
    child.wait().unwrap();
    println!("{name}: {rounds} rounds");
    (name.to_owned(), samples)
}

async fn child(spec: String) {
    let mut parts = spec.split('|');
    let (url, poll_ms, listen) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let store = Store::connect(url).await.unwrap();
    let poll_interval = Duration::from_millis(poll_ms.parse().unwrap());
    let mut options = LiveOptions {
        poll_interval,
        ..LiveOptions::default()
    };
    if listen == "false" {
        options.listen_for_notifications = false;
    }
    let live = store.live_engine(options).await.unwrap();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in stdin.lock().lines() {
        let want_allowed = line.unwrap().trim() == "allow";
        writeln!(out, "waiting").unwrap();
        out.flush().unwrap();
        while live
            .check("alice", "acme", "finance.invoices.approve")
            .is_allowed()
            != want_allowed
        {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        writeln!(out, "{}", now_ns()).unwrap();
        out.flush().unwrap();
    }
    live.shutdown().await;
}
