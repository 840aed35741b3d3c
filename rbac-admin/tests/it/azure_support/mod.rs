//! Loopback Azure Blob Storage for the storage tests: the endpoint of the Azurite emulator
//! started by `bash .ci/azure.sh` (127.0.0.1:54331), and fresh containers on it.
//!
//! Containers are made with one signed HTTP request over a loopback TCP connection (Azurite
//! checks Shared Key signatures as Azure does), so that the code under test is the only Azure
//! client in the test: `object_store` has no call that creates a container.

#![allow(dead_code, reason = "each test file uses a part")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// Azurite's development account. Its key is public (Microsoft documents it), not a secret.
pub(crate) const ACCOUNT: &str = "devstoreaccount1";
/// See [`ACCOUNT`].
pub(crate) const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The REST API version the helper speaks.
const VERSION: &str = "2021-08-06";

/// The test Azure server.
pub(crate) struct Azure {
    /// `http://127.0.0.1:54331/devstoreaccount1`.
    pub(crate) endpoint: String,
}

impl Azure {
    /// The server named by `RBAC_TEST_AZURE_ENDPOINT`.
    pub(crate) fn from_env() -> Azure {
        let endpoint = std::env::var("RBAC_TEST_AZURE_ENDPOINT")
            .expect("RBAC_TEST_AZURE_ENDPOINT is set at build time but not at run time");
        Azure {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// The `[storage_options]` and `storage_endpoint` lines of a backup configuration that
    /// stores into `container/prefix` on this server with the development account's key.
    pub(crate) fn config_lines(&self, container: &str, prefix: &str) -> (String, String) {
        (
            format!(
                "storage = \"az://{container}/{prefix}\"\nstorage_endpoint = \"{}\"",
                self.endpoint
            ),
            format!(
                "\n[storage_options]\nazure_storage_account_name = \"{ACCOUNT}\"\nazure_storage_account_key = \"{KEY}\"\n"
            ),
        )
    }

    /// Creates a new, empty container with a unique name and returns the name.
    pub(crate) fn fresh_container(&self) -> String {
        let name = format!("rbac-test-{:016x}", fastrand::u64(..));
        let (status, body) = self
            .request("PUT", &name, &[("restype", "container")])
            .unwrap_or_else(|e| panic!("cannot create container {name}: {e}"));
        assert_eq!(status, 201, "cannot create container {name}: {body}");
        name
    }

    /// The blob names in a container (first page of List Blobs, up to 5000), for asserting
    /// what the code under test stored.
    pub(crate) fn blobs(&self, container: &str) -> Result<Vec<String>, String> {
        let (status, body) = self.request(
            "GET",
            container,
            &[("comp", "list"), ("restype", "container")],
        )?;
        if status != 200 {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(crate::loopback_http::xml_values(&body, "Name"))
    }

    /// One signed HTTP/1.0 request with no body (1.0: the answer is never chunked); `query`
    /// sorted by name. Returns the status and the body as text.
    fn request(
        &self,
        method: &str,
        container: &str,
        query: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let rest = self.endpoint.strip_prefix("http://").ok_or_else(|| {
            format!(
                "endpoint `{}` is not http://HOST:PORT/ACCOUNT",
                self.endpoint
            )
        })?;
        let (host, account_path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = format!("/{account_path}/{container}");
        let date = http_date(SystemTime::now());
        // Shared Key: verb, eleven standard headers (all empty here), the x-ms- headers, then
        // the resource: the account, the path, and each query parameter on its own line.
        let mut to_sign = format!(
            "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{ACCOUNT}{path}"
        );
        for (k, v) in query {
            to_sign.push_str(&format!("\n{k}:{v}"));
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .map_err(|e| e.to_string())?;
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            to_sign.as_bytes(),
        );
        let signature = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        crate::loopback_http::request(
            host,
            &format!(
                "{method} {path}?{} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\nx-ms-date: {date}\r\nx-ms-version: {VERSION}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\n\r\n",
                query.join("&")
            ),
        )
    }
}

/// `Mon, 23 Nov 2026 19:00:00 GMT` (RFC 1123, the date format of HTTP headers).
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[test]
fn http_dates_are_rfc_1123() {
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(1_795_460_400)),
        "Mon, 23 Nov 2026 19:00:00 GMT"
    );
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
}
