//! Backups stored in S3, against a real S3-compatible server on loopback (`bash .ci/s3.sh`;
//! credentials from the usual `AWS_*` variables, which `.ci/run` exports).

use crate::backup_support;
use crate::s3_support;

use backup_support::*;

#[tokio::test]
#[cfg_attr(
    not(rbac_s3_tests),
    ignore = "needs an S3 server: export RBAC_TEST_S3_ENDPOINT=$(bash .ci/s3.sh)"
)]
async fn backups_round_trip_through_s3_and_incomplete_ones_are_not_listed() {
    let s3 = s3_support::S3::from_env();
    let bucket = s3.fresh_bucket();
    let env = Env::new(3000);
    let text = object_store_config(
        &env,
        &format!(
            "storage = \"s3://{bucket}/backups\"\nstorage_endpoint = \"{}\"",
            s3.endpoint
        ),
        "",
    );
    object_store_round_trip(&env, &text, "backups", || s3.keys(&bucket).unwrap()).await;
}
