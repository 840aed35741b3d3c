//! Enables the PostgreSQL store tests when a test server is configured; without one they are
//! reported as ignored, with the reason, rather than passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rbac_pg_tests)");
    println!("cargo::rerun-if-env-changed=RBAC_TEST_POSTGRES_URL");
    if std::env::var_os("RBAC_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=rbac_pg_tests");
    }
}
