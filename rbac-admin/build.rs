//! Enables the PostgreSQL CLI tests when a test server is configured; without one they are
//! reported as ignored, with the reason, rather than passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rbac_pg_tests)");
    println!("cargo::rerun-if-env-changed=RBAC_TEST_POSTGRES_URL");
    if std::env::var_os("RBAC_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=rbac_pg_tests");
    }
    // The S3 storage tests, against a loopback S3-compatible server (`bash .ci/s3.sh`).
    println!("cargo::rustc-check-cfg=cfg(rbac_s3_tests)");
    println!("cargo::rerun-if-env-changed=RBAC_TEST_S3_ENDPOINT");
    if std::env::var_os("RBAC_TEST_S3_ENDPOINT").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=rbac_s3_tests");
    }
    // The Azure Blob Storage tests, against a loopback Azurite (`bash .ci/azure.sh`).
    println!("cargo::rustc-check-cfg=cfg(rbac_azure_tests)");
    println!("cargo::rerun-if-env-changed=RBAC_TEST_AZURE_ENDPOINT");
    if std::env::var_os("RBAC_TEST_AZURE_ENDPOINT").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=rbac_azure_tests");
    }
}
