//! Loopback S3 for the storage tests: the endpoint of the S3-compatible server started by
//! `bash .ci/s3.sh` (python moto on 127.0.0.1:54330), and fresh buckets on it.
//!
//! ```ignore
//! mod s3_support;
//!
//! #[tokio::test]
//! #[cfg_attr(not(rbac_s3_tests), ignore = "needs an S3 server: export RBAC_TEST_S3_ENDPOINT=$(bash .ci/s3.sh)")]
//! async fn backs_up_to_s3() {
//!     let s3 = s3_support::S3::from_env();
//!     let bucket = s3.fresh_bucket();                      // created, empty, unique per test
//!     let config = format!("storage = \"s3://{bucket}/backups\"\nstorage_endpoint = \"{}\"\n", s3.endpoint);
//!     // credentials: AWS_* from `.ci/run`, or s3_support::{ACCESS_KEY, SECRET_KEY, REGION}
//! }
//! ```
//!
//! The bucket is made with one plain HTTP `PUT /{bucket}` over a loopback TCP connection (moto
//! does not check signatures), so this helper needs no S3 client of its own, and the code under
//! test is the only S3 client in the test.

#![allow(dead_code, reason = "each test file uses a part")]

/// Dummy credentials the test server accepts.
pub(crate) const ACCESS_KEY: &str = "rbac-test";
/// See [`ACCESS_KEY`].
pub(crate) const SECRET_KEY: &str = "rbac-test";
/// The region the test server answers for.
pub(crate) const REGION: &str = "us-east-1";

/// The test S3 server.
pub(crate) struct S3 {
    /// `http://127.0.0.1:54330`.
    pub(crate) endpoint: String,
}

impl S3 {
    /// The server named by `RBAC_TEST_S3_ENDPOINT`. The S3 client under test also needs
    /// credentials (moto accepts any): `.ci/run` exports `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_REGION`; a test can instead pass [`ACCESS_KEY`],
    /// [`SECRET_KEY`] and [`REGION`] to its client explicitly.
    pub(crate) fn from_env() -> S3 {
        let endpoint = std::env::var("RBAC_TEST_S3_ENDPOINT")
            .expect("RBAC_TEST_S3_ENDPOINT is set at build time but not at run time");
        S3 {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// Creates a new, empty bucket with a unique name and returns the name.
    pub(crate) fn fresh_bucket(&self) -> String {
        let name = format!("rbac-test-{:016x}", fastrand::u64(..));
        self.create_bucket(&name)
            .unwrap_or_else(|e| panic!("cannot create bucket {name}: {e}"));
        name
    }

    /// `PUT /{name}`: creates a bucket. Errors carry the server's answer.
    pub(crate) fn create_bucket(&self, name: &str) -> Result<(), String> {
        let (status, body) = self.request("PUT", &format!("/{name}"))?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("HTTP {status}: {body}"))
        }
    }

    /// The object keys in a bucket (first page of `ListObjectsV2`, up to 1000), for asserting
    /// what the code under test stored.
    pub(crate) fn keys(&self, bucket: &str) -> Result<Vec<String>, String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2"))?;
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(crate::loopback_http::xml_values(&body, "Key"))
    }

    /// One HTTP/1.1 request with no body; returns the status and the body as text.
    fn request(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        let host = self
            .endpoint
            .strip_prefix("http://")
            .ok_or_else(|| format!("endpoint `{}` is not http://HOST:PORT", self.endpoint))?;
        crate::loopback_http::request(
            host,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    }
}
