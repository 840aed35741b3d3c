//! What every test file shares: the policy, request helpers, a JWT issuer and a tracing capture.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::response::Response;
use http::{HeaderMap, Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use rbac_axum::rbac_core::{Engine, Policy};
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) const POLICY: &str = r#"
    [permissions.finance.accounts]
    read = "Read accounts"
    update = "Update accounts"
    [permissions.finance.invoices]
    approve = "Approve invoices"
    [permissions.crm.leads]
    read = "Read leads"
    create = "Create leads"

    [roles.viewer]
    grants = ["finance.accounts.read"]
    [roles.accountant]
    inherits = ["viewer"]
    grants = ["finance.*"]
    denies = ["finance.invoices.approve"]
    [roles.admin]
    grants = ["*"]
    [roles.sales]
    grants = ["crm.*"]
    [roles.auditor]

    [tenants.acme]
    [tenants.globex]

    [subjects.alice.tenants]
    acme = ["viewer"]
    [subjects.bob.tenants]
    acme = ["accountant"]
    [subjects.carol]
    roles = ["admin"]
    [subjects.dave.tenants]
    globex = ["sales"]
    acme = ["auditor"]
"#;

pub(crate) fn engine() -> Engine {
    Engine::new(&Policy::from_toml_str(POLICY).unwrap())
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// Asserts a problem+json refusal with `status`, and returns its `detail`.
    pub(crate) fn assert_problem(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        let body = self.json();
        assert_eq!(body["status"], status.as_u16());
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], status.canonical_reason().unwrap());
        let detail = body["detail"].as_str().unwrap().to_owned();
        assert_eq!(
            body.as_object().unwrap().len(),
            4,
            "only type/title/status/detail"
        );
        detail
    }
}

pub(crate) async fn read(response: Response) -> Reply {
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// A request builder with the headers tests use.
pub(crate) struct Call {
    request: http::request::Builder,
    body: Body,
}

pub(crate) fn call(method: Method, uri: &str) -> Call {
    Call {
        request: Request::builder().method(method).uri(uri),
        body: Body::empty(),
    }
}

pub(crate) fn get(uri: &str) -> Call {
    call(Method::GET, uri)
}

impl Call {
    pub(crate) fn user(self, subject: &str) -> Call {
        self.header("x-user-id", subject)
    }

    pub(crate) fn bearer(self, token: &str) -> Call {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Call {
        self.request = self.request.header(name, value);
        self
    }

    /// A header whose value is raw bytes (not necessarily text).
    pub(crate) fn header_bytes(mut self, name: &str, value: &[u8]) -> Call {
        self.request = self
            .request
            .header(name, http::HeaderValue::from_bytes(value).unwrap());
        self
    }

    pub(crate) fn json_body(mut self, body: &str) -> Call {
        self.request = self.request.header("content-type", "application/json");
        self.body = Body::from(body.to_owned());
        self
    }

    pub(crate) async fn send(self, app: &axum::Router) -> Reply {
        let request = self.request.body(self.body).unwrap();
        read(app.clone().oneshot(request).await.unwrap()).await
    }
}

pub(crate) const SECRET: &[u8] = b"test secret of at least thirty-two bytes";
pub(crate) const OTHER_SECRET: &[u8] = b"another secret of at least thirty-two bytes";

/// Claims valid for an hour, for `sub`; `extra` is merged over them.
pub(crate) fn claims(sub: &str, extra: Value) -> Value {
    let now = get_current_timestamp();
    let mut claims = json!({
        "sub": sub,
        "iat": now,
        "exp": now + 3600,
        "iss": "https://issuer.test",
        "aud": "rbac-tests",
    });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                claims.remove(&k);
            } else {
                claims.insert(k, v);
            }
        }
    }
    claims
}

pub(crate) fn token(alg: Algorithm, kid: Option<&str>, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// An HS256 token signed with `SECRET` under kid `k1`.
pub(crate) fn token_for(sub: &str, extra: Value) -> String {
    token(Algorithm::HS256, Some("k1"), SECRET, &claims(sub, extra))
}

/// One event as captured.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) target: String,
    pub(crate) fields: BTreeMap<String, String>,
}

/// Captures the `tracing` events of the current thread while it lives.
///
/// One global subscriber forwards events to a per-thread sink: with scoped subscribers
/// (`set_default`), a callsite first reached on a thread without one can be cached as disabled
/// for every thread, and tests that run in parallel would miss events now and then.
pub(crate) struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
}

thread_local! {
    static SINK: std::cell::RefCell<Option<Arc<Mutex<Vec<Captured>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl Capture {
    /// Starts capturing on this thread (`#[tokio::test]` runs the test on it).
    pub(crate) fn start() -> Capture {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Forward).unwrap();
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        SINK.with(|sink| *sink.borrow_mut() = Some(events.clone()));
        Capture { events }
    }

    /// Events of target `rbac::http`.
    pub(crate) fn refusals(&self) -> Vec<Captured> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.target == "rbac::http")
            .cloned()
            .collect()
    }

    pub(crate) fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        SINK.with(|sink| *sink.borrow_mut() = None);
    }
}

struct Visitor<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The global subscriber: every event goes to the current thread's sink, if any.
struct Forward;

impl tracing::Subscriber for Forward {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let Some(sink) = SINK.with(|sink| sink.borrow().clone()) else {
            return;
        };
        let mut fields = BTreeMap::new();
        event.record(&mut Visitor(&mut fields));
        sink.lock().unwrap().push(Captured {
            target: event.metadata().target().to_owned(),
            fields,
        });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
