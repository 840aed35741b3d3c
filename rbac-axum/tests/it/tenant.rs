//! Where the tenant comes from: a path parameter, a header or a token claim.

use http::{HeaderName, StatusCode};
use jsonwebtoken::Algorithm;
use rbac_axum::jwt::DecodingKey;
use rbac_axum::routing::get;
use rbac_axum::{Jwt, JwtKeys, KeySet, RbacLayer, Router, TenantSource, TrustedHeader};
use serde_json::json;

use crate::support::{SECRET, engine, get as get_req, token_for};

#[rbac_axum::require_permission("finance.accounts.read")]
async fn accounts() -> &'static str {
    "accounts"
}

fn app(source: TenantSource) -> axum::Router {
    let keys = JwtKeys::new(KeySet::new().with_key("k1", DecodingKey::from_secret(SECRET)));
    Router::new()
        .route("/accounts", get(accounts))
        .route("/t/{tenant}/accounts", get(accounts))
        .into_inner()
        .layer(
            RbacLayer::new(engine())
                .jwt(Jwt::new(Algorithm::HS256, keys))
                .trusted_header(TrustedHeader::x_user_id())
                .tenant(source),
        )
}

#[tokio::test]
async fn from_a_path_parameter() {
    let app = app(TenantSource::path("tenant"));
    let status = |uri: &'static str| {
        let app = app.clone();
        async move { get_req(uri).user("alice").send(&app).await }
    };
    assert_eq!(status("/t/acme/accounts").await.status, StatusCode::OK);
    status("/t/globex/accounts")
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // The route has no `tenant` parameter: the tenant cannot be resolved.
    let detail = status("/accounts")
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    assert!(detail.contains("does not name a tenant"), "{detail}");
}

#[tokio::test]
async fn from_a_header() {
    let app = app(TenantSource::header(HeaderName::from_static("x-tenant-id")));
    let send = |tenant: Option<&'static str>| {
        let app = app.clone();
        async move {
            let call = get_req("/accounts").user("alice");
            let call = match tenant {
                Some(t) => call.header("x-tenant-id", t),
                None => call,
            };
            call.send(&app).await
        }
    };
    assert_eq!(send(Some("acme")).await.status, StatusCode::OK);
    send(Some("globex"))
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    send(None).await.assert_problem(StatusCode::BAD_REQUEST);
    send(Some("acme corp"))
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    send(Some("")).await.assert_problem(StatusCode::BAD_REQUEST);
    // Given twice, even with the same value, the tenant is ambiguous.
    for second in ["globex", "acme"] {
        get_req("/accounts")
            .user("alice")
            .header("x-tenant-id", "acme")
            .header("x-tenant-id", second)
            .send(&app)
            .await
            .assert_problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn from_a_token_claim() {
    let app = app(TenantSource::claim("tenant"));
    let send = |extra: serde_json::Value| {
        let app = app.clone();
        async move {
            get_req("/accounts")
                .bearer(&token_for("alice", extra))
                .send(&app)
                .await
        }
    };
    assert_eq!(
        send(json!({ "tenant": "acme" })).await.status,
        StatusCode::OK
    );
    send(json!({ "tenant": "globex" }))
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    send(json!({}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    send(json!({ "tenant": 7 }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    send(json!({ "tenant": "a b" }))
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    // Identities without claims have no tenant claim.
    let reply = get_req("/accounts").user("alice").send(&app).await;
    reply.assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_global_scope_by_default() {
    let keys = JwtKeys::new(KeySet::new());
    let app = Router::new()
        .route("/accounts", get(accounts))
        .into_inner()
        .layer(
            RbacLayer::new(engine())
                .jwt(Jwt::new(Algorithm::HS256, keys))
                .trusted_header(TrustedHeader::x_user_id()),
        );
    // carol's `admin` is a global role; alice's `viewer` is held in acme only.
    let ok = get_req("/accounts").user("carol").send(&app).await;
    assert_eq!(ok.status, StatusCode::OK);
    let denied = get_req("/accounts").user("alice").send(&app).await;
    denied.assert_problem(StatusCode::FORBIDDEN);
}
