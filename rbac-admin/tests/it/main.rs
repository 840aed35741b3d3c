//! rbac-admin's integration tests, in one binary (one link instead of twelve): the admin CLI
//! driven through the real binary, and the backup module on real SQLite files, a real
//! PostgreSQL (`RBAC_TEST_POSTGRES_URL`) and a real S3-compatible server
//! (`RBAC_TEST_S3_ENDPOINT`); tests that need a server they are not given report as ignored.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on a broken fixture"
)]

/// Runs each named test function (taking the module's `TestDb`) on SQLite and on PostgreSQL
/// (ignored, with the reason, without `RBAC_TEST_POSTGRES_URL`).
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(super::TestDb::sqlite())
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(not(rbac_pg_tests), ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)")]
                fn $name() {
                    super::$name(super::TestDb::postgres())
                }
            )*
        }
    };
}

mod azure_support;
mod backup_support;
mod loopback_http;
mod s3_support;

mod admin;
mod backup_azure;
mod backup_binary;
mod backup_cli;
mod backup_crypto;
mod backup_faults;
mod backup_files;
mod backup_http;
mod backup_postgres;
mod backup_s3;
mod backup_schedule;
mod backup_sqlite;
mod batch_input;
mod cli;
mod coverage_agreement;
mod s3_server;
