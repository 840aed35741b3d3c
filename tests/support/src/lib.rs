//! Shared setup for the workspace's tests: a database of its own for each test, an SQLite file
//! in a temporary directory or a fresh database on the test PostgreSQL server
//! (`RBAC_TEST_POSTGRES_URL`, which `bash .ci/postgres.sh` prints), so that tests never see each
//! other's data.
//!
//! ```
//! let db = rbac_test_support::TestDb::sqlite("app.db");
//! assert!(db.url.starts_with("sqlite://") && db.url.ends_with("/app.db"));
//! ```

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a broken test environment fails the test loudly"
)]

/// A database for one test; an SQLite file lives as long as the value.
#[derive(Debug)]
pub struct TestDb {
    /// The sqlx URL.
    pub url: String,
    dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// An SQLite file named `file` in a fresh temporary directory.
    pub fn sqlite(file: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        TestDb {
            url: format!("sqlite://{}/{file}", dir.path().display()),
            dir: Some(dir),
        }
    }

    /// A fresh database on the test PostgreSQL server, named `PREFIX_<random>`.
    pub async fn postgres(prefix: &str) -> TestDb {
        TestDb {
            url: fresh_postgres_database(prefix).await,
            dir: None,
        }
    }

    /// The temporary directory of an SQLite database.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}

/// The test server's URL, from `RBAC_TEST_POSTGRES_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("RBAC_TEST_POSTGRES_URL")
        .expect("RBAC_TEST_POSTGRES_URL is set at build time but not at run time")
}

/// Creates a database named `PREFIX_<random>` on the test server and returns its URL.
pub async fn fresh_postgres_database(prefix: &str) -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let name = format!("{prefix}_{}", fastrand::u64(..));
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("cannot reach the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE on the test server");
    let _ = conn.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// [`fresh_postgres_database`] for tests that are not async.
pub fn fresh_postgres_database_blocking(prefix: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(fresh_postgres_database(prefix))
}

/// Runs each named `async fn NAME(db: TestDb)` on SQLite (`FILE` in a temporary directory) and
/// on PostgreSQL (a fresh database named after `PREFIX`; ignored, with the reason, unless the
/// crate is built with the `rbac_pg_tests` cfg that its build script sets when
/// `RBAC_TEST_POSTGRES_URL` is set).
#[macro_export]
macro_rules! on_both_databases_async {
    (file = $file:literal, prefix = $prefix:literal; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::sqlite($file)).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(rbac_pg_tests), ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)")]
                async fn $name() {
                    super::$name($crate::TestDb::postgres($prefix).await).await
                }
            )*
        }
    };
}
