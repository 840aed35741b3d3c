//! The loopback S3 server the storage tests use (`bash .ci/s3.sh`), and the test helper that
//! makes buckets on it: checked here so that a storage test failing means the storage code,
//! not the fixture.

use crate::s3_support;

#[test]
#[cfg_attr(
    not(rbac_s3_tests),
    ignore = "needs an S3 server: export RBAC_TEST_S3_ENDPOINT=$(bash .ci/s3.sh)"
)]
fn fresh_buckets_are_created_empty_and_distinct() {
    let s3 = s3_support::S3::from_env();
    let a = s3.fresh_bucket();
    let b = s3.fresh_bucket();
    assert_ne!(a, b);
    assert_eq!(s3.keys(&a).unwrap(), Vec::<String>::new());
    // A bucket that does not exist is an error with the server's answer, not an empty list.
    let err = s3.keys("rbac-test-no-such-bucket").unwrap_err();
    assert!(err.contains("404") && err.contains("NoSuchBucket"), "{err}");
    // No server: a clear error, not a hang.
    let nowhere = s3_support::S3 {
        endpoint: "http://127.0.0.1:1".into(),
    };
    let err = nowhere.create_bucket("x").unwrap_err();
    assert!(err.starts_with("connect 127.0.0.1:1"), "{err}");
}
