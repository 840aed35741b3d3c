//! One HTTP request over a loopback TCP connection, for the helpers that prepare the test
//! storage servers (buckets, containers) without a client library of their own: the code
//! under test stays the only storage client in each test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `head` (the request line and headers, ending with an empty line; no body) to `host`
/// (`127.0.0.1:PORT`) and returns the status and the body as text. The answer is read to the
/// end, so the request must end the connection after it (`Connection: close`, or HTTP/1.0,
/// which also keeps the body from being chunked). Every step is bounded by 10 s.
pub(crate) fn request(host: &str, head: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {}",
                text.chars().take(200).collect::<String>()
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// The texts between each `<tag>` and `</tag>` in an XML listing (S3's `Key`, Azure's
/// `Name`).
pub(crate) fn xml_values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    body.split(open.as_str())
        .skip(1)
        .filter_map(|part| part.split_once(close.as_str()).map(|(v, _)| v.to_owned()))
        .collect()
}
