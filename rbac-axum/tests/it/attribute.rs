//! The attribute macros on real handlers: statuses, bodies, extractor order, handler shapes.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::{HeaderMap, Method, StatusCode, Uri};
use rbac_axum::routing::{get, post, put};
use rbac_axum::{
    Principal, RbacLayer, Router, TenantSource, TrustedHeader, public, require_module,
    require_permission, require_role,
};
use serde::Deserialize;

use crate::support::{Capture, call, engine, get as get_req};

#[require_permission("finance.accounts.read")]
async fn read_accounts() -> &'static str {
    "accounts"
}

#[derive(Deserialize)]
struct Rename {
    name: String,
}

#[require_permission("finance.accounts.update")]
async fn update_account(
    Path((_tenant, id)): Path<(String, u32)>,
    Json(body): Json<Rename>,
) -> String {
    format!("{id}:{}", body.name)
}

#[require_permission(any("finance.invoices.approve", "crm.leads.read"))]
async fn approve_or_leads() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[require_permission(all("finance.accounts.read", "finance.accounts.update"))]
async fn read_and_update() -> impl IntoResponse {
    (StatusCode::ACCEPTED, "both")
}

#[require_role("admin")]
async fn admin_only() -> &'static str {
    "admin"
}

#[require_role("auditor")]
async fn auditors() -> &'static str {
    "audit"
}

#[require_role("viewer")]
async fn viewers() -> &'static str {
    "view"
}

#[require_module("crm")]
async fn crm_anything() -> Result<&'static str, StatusCode> {
    Ok("crm")
}

#[public]
async fn health() -> &'static str {
    "ok"
}

#[require_permission("finance.accounts.read")]
async fn whoami(principal: Principal) -> String {
    format!("{}@{}", principal.subject, principal.tenant)
}

pub(crate) trait Greeting {
    fn greeting(&self) -> &'static str;
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

impl Greeting for AppState {
    fn greeting(&self) -> &'static str {
        self.greeting
    }
}

/// Generic state, a `where` clause, many extractors, a body extractor last.
#[require_permission("finance.accounts.read", module = "finance")]
pub(crate) async fn many_extractors<S>(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    State(state): State<S>,
    body: String,
) -> impl IntoResponse
where
    S: Greeting + Clone + Send + Sync + 'static,
{
    let agent = headers
        .get("x-agent")
        .map_or("", |v| v.to_str().unwrap_or(""));
    format!(
        "{} {method} {} {agent} {body}",
        state.greeting(),
        uri.path()
    )
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/t/{tenant}/accounts", get(read_accounts))
        .route("/t/{tenant}/accounts/{id}", put(update_account))
        .route("/t/{tenant}/any", get(approve_or_leads))
        .route("/t/{tenant}/all", get(read_and_update))
        .route("/t/{tenant}/admin", get(admin_only))
        .route("/t/{tenant}/audit", get(auditors))
        .route("/t/{tenant}/view", get(viewers))
        .route("/t/{tenant}/crm", get(crm_anything))
        .route("/t/{tenant}/whoami", get(whoami))
        .route("/t/{tenant}/echo", post(many_extractors::<AppState>))
        .route("/health", get(health))
}

fn layer() -> RbacLayer {
    RbacLayer::new(engine())
        .trusted_header(TrustedHeader::x_user_id())
        .tenant(TenantSource::path("tenant"))
}

pub(crate) fn app() -> axum::Router {
    routes()
        .with_state(AppState { greeting: "hello" })
        .into_inner()
        .layer(layer())
}

#[tokio::test]
async fn an_allowed_request_reaches_the_handler() {
    let app = app();
    let reply = get_req("/t/acme/accounts").user("alice").send(&app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "accounts");
}

#[tokio::test]
async fn a_denied_request_is_403_problem_json_without_policy_details() {
    let app = app();
    // dave holds `auditor` in acme, which grants nothing.
    let reply = get_req("/t/acme/accounts").user("dave").send(&app).await;
    let detail = reply.assert_problem(StatusCode::FORBIDDEN);
    for secret in [
        "auditor", "viewer", "finance", "NoGrant", "no_grant", "dave", "acme",
    ] {
        assert!(
            !reply.body.contains(secret),
            "{secret} leaked: {}",
            reply.body
        );
    }
    assert_eq!(detail, "you are not allowed to perform this action");
}

#[tokio::test]
async fn an_unknown_tenant_is_a_deny_not_a_400() {
    let app = app();
    let reply = get_req("/t/initech/accounts")
        .user("alice")
        .send(&app)
        .await;
    reply.assert_problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn no_identity_is_401_with_a_bearer_challenge() {
    let app = app();
    let reply = get_req("/t/acme/accounts").send(&app).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn a_malformed_path_tenant_is_400() {
    let app = app();
    let reply = get_req("/t/ac%20me/accounts")
        .user("alice")
        .send(&app)
        .await;
    let detail = reply.assert_problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("malformed"), "{detail}");
}

#[tokio::test]
async fn a_forbidden_request_with_a_malformed_json_body_is_403_not_422() {
    let app = app();
    let put = |user: &str, body: &str| {
        call(Method::PUT, "/t/acme/accounts/7")
            .user(user)
            .json_body(body)
    };
    // alice may read but not update: the guard refuses before `Json` reads the body.
    put("alice", "{not json")
        .send(&app)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    put("alice", r#"{"wrong": 1}"#)
        .send(&app)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // bob may update: now the body extractor runs and rejects.
    assert_eq!(
        put("bob", "{not json").send(&app).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put("bob", r#"{"wrong": 1}"#).send(&app).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let ok = put("bob", r#"{"name": "cash"}"#).send(&app).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "7:cash"));
}

#[tokio::test]
async fn any_needs_one_permission_and_all_needs_every_one() {
    let app = app();
    let status = |uri: &'static str, user: &'static str| {
        let app = app.clone();
        async move { get_req(uri).user(user).send(&app).await.status }
    };
    assert_eq!(status("/t/acme/any", "alice").await, StatusCode::FORBIDDEN);
    // bob's approve is denied, and he has no crm permission.
    assert_eq!(status("/t/acme/any", "bob").await, StatusCode::FORBIDDEN);
    assert_eq!(
        status("/t/globex/any", "dave").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status("/t/acme/any", "carol").await, StatusCode::NO_CONTENT);

    assert_eq!(status("/t/acme/all", "alice").await, StatusCode::FORBIDDEN);
    assert_eq!(status("/t/acme/all", "bob").await, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn roles_and_modules() {
    let app = app();
    let status = |uri: &'static str, user: &'static str| {
        let app = app.clone();
        async move { get_req(uri).user(user).send(&app).await.status }
    };
    // carol holds `admin` globally, so in every tenant.
    assert_eq!(status("/t/acme/admin", "carol").await, StatusCode::OK);
    assert_eq!(status("/t/globex/admin", "carol").await, StatusCode::OK);
    assert_eq!(status("/t/acme/admin", "bob").await, StatusCode::FORBIDDEN);
    // dave holds `auditor` in acme, a role that grants nothing: the role is still recognised.
    assert_eq!(status("/t/acme/audit", "dave").await, StatusCode::OK);
    assert_eq!(
        status("/t/globex/audit", "dave").await,
        StatusCode::FORBIDDEN
    );

    // Inherited roles count: bob is an accountant, and accountant inherits viewer.
    assert_eq!(status("/t/acme/view", "alice").await, StatusCode::OK);
    assert_eq!(status("/t/acme/view", "bob").await, StatusCode::OK);
    assert_eq!(status("/t/globex/view", "bob").await, StatusCode::FORBIDDEN);
    assert_eq!(status("/t/acme/view", "dave").await, StatusCode::FORBIDDEN);
    assert_eq!(
        status("/t/acme/view", "nobody").await,
        StatusCode::FORBIDDEN
    );

    assert_eq!(status("/t/globex/crm", "dave").await, StatusCode::OK);
    assert_eq!(status("/t/acme/crm", "bob").await, StatusCode::FORBIDDEN);
    assert_eq!(status("/t/acme/crm", "carol").await, StatusCode::OK);
}

#[tokio::test]
async fn a_public_handler_needs_no_identity() {
    let app = app();
    let reply = get_req("/health").send(&app).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn handlers_see_the_principal_the_guard_resolved() {
    let app = app();
    let reply = get_req("/t/acme/whoami").user("alice").send(&app).await;
    assert_eq!(reply.body, "alice@acme");
}

#[tokio::test]
async fn generic_state_and_many_extractors_keep_working() {
    let app = app();
    let reply = call(Method::POST, "/t/acme/echo")
        .user("alice")
        .header("x-agent", "curl")
        .json_body("payload")
        .send(&app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "hello POST /t/acme/echo curl payload");
    let denied = call(Method::POST, "/t/acme/echo")
        .user("dave")
        .json_body("payload")
        .send(&app)
        .await;
    denied.assert_problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_protected_route_without_the_layer_is_refused_with_500() {
    let app = routes()
        .with_state(AppState { greeting: "hello" })
        .into_inner();
    let reply = get_req("/t/acme/accounts").user("carol").send(&app).await;
    reply.assert_problem(StatusCode::INTERNAL_SERVER_ERROR);
    // A public handler needs no layer.
    assert_eq!(get_req("/health").send(&app).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_refusal_emits_exactly_one_event_with_its_cause() {
    let capture = Capture::start();
    let app = app();

    let cases = [
        (get_req("/t/acme/accounts").user("dave"), 403, "no_grant"),
        (
            get_req("/t/initech/accounts").user("alice"),
            403,
            "unknown_tenant",
        ),
        (
            get_req("/t/acme/accounts").user("mallory"),
            403,
            "unknown_subject",
        ),
        (get_req("/t/acme/any").user("bob"), 403, "explicit_deny"),
        (get_req("/t/acme/accounts"), 401, "no credentials"),
        (
            get_req("/t/ac%20me/accounts").user("alice"),
            400,
            "tenant malformed",
        ),
    ];
    for (request, status, cause) in cases {
        capture.clear();
        let reply = request.send(&app).await;
        assert_eq!(reply.status.as_u16(), status);
        let events = capture.refusals();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].fields["cause"], cause, "{events:?}");
        assert_eq!(events[0].fields["status"], status.to_string());
    }

    capture.clear();
    let reply = get_req("/t/acme/accounts").user("alice").send(&app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(capture.refusals().is_empty());
}

// Handler macros placed below the rbac attribute see an ordinary axum handler (with the guard).
#[require_permission("finance.accounts.read")]
#[axum::debug_handler]
async fn debug_checked_inner(Json(body): Json<serde_json::Value>) -> String {
    body.to_string()
}

#[tokio::test]
async fn axum_debug_handler_accepts_protected_handlers_below_the_rbac_attribute() {
    let app = rbac_axum::Router::new()
        .route("/t/{tenant}/inner", post(debug_checked_inner))
        .into_inner()
        .layer(layer());
    for path in ["/t/acme/inner"] {
        let allowed = call(Method::POST, path)
            .user("alice")
            .json_body("{\"n\":1}")
            .send(&app)
            .await;
        assert_eq!(allowed.status, StatusCode::OK, "{path}");
        assert_eq!(allowed.body, "{\"n\":1}");
        let denied = call(Method::POST, path)
            .user("dave")
            .json_body("not json")
            .send(&app)
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{path}");
    }
}
