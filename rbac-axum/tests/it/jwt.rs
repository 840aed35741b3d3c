//! JWT bearer tokens: algorithm pinning, time claims, audience and issuer, key ids and rotation;
//! the trusted header mode is off unless enabled.

use http::StatusCode;
use jsonwebtoken::Algorithm;
use rbac_axum::jwt::DecodingKey;
use rbac_axum::routing::get;
use rbac_axum::{Jwt, JwtKeys, KeySet, RbacLayer, Router, TenantSource, TrustedHeader};
use serde_json::json;

use crate::support::{OTHER_SECRET, SECRET, claims, engine, get as get_req, token, token_for};

#[rbac_axum::require_permission("finance.accounts.read")]
async fn accounts() -> &'static str {
    "accounts"
}

fn keys() -> JwtKeys {
    JwtKeys::new(KeySet::new().with_key("k1", DecodingKey::from_secret(SECRET)))
}

fn jwt(keys: &JwtKeys) -> Jwt {
    Jwt::new(Algorithm::HS256, keys.clone())
        .issuer("https://issuer.test")
        .audience("rbac-tests")
}

fn app_with(layer: RbacLayer) -> axum::Router {
    Router::new()
        .route("/t/{tenant}/accounts", get(accounts))
        .into_inner()
        .layer(layer)
}

fn app(keys: &JwtKeys) -> axum::Router {
    app_with(
        RbacLayer::new(engine())
            .jwt(jwt(keys))
            .tenant(TenantSource::path("tenant")),
    )
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let app = app(&keys());
    let reply = get_req("/t/acme/accounts")
        .bearer(&token_for("alice", json!({})))
        .send(&app)
        .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "accounts")
    );
    // Valid identity, insufficient rights: 403, not 401.
    let reply = get_req("/t/acme/accounts")
        .bearer(&token_for("dave", json!({})))
        .send(&app)
        .await;
    reply.assert_problem(StatusCode::FORBIDDEN);
}

async fn refused(app: &axum::Router, token: &str) -> String {
    let reply = get_req("/t/acme/accounts").bearer(token).send(app).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED)
}

#[tokio::test]
async fn a_token_with_another_algorithm_is_refused() {
    let app = app(&keys());
    // Same secret, same key id, valid claims: only `alg` differs.
    let hs384 = token(
        Algorithm::HS384,
        Some("k1"),
        SECRET,
        &claims("alice", json!({})),
    );
    refused(&app, &hs384).await;
    // `alg: none` with no signature.
    let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoiazEifQ"; // {"alg":"none","typ":"JWT","kid":"k1"}
    let payload = hs384.split('.').nth(1).unwrap();
    refused(&app, &format!("{header}.{payload}.")).await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let app = app(&keys());
    let now = jsonwebtoken::get_current_timestamp();
    let expired = token_for("alice", json!({ "exp": now - 3600 }));
    assert!(refused(&app, &expired).await.contains("expired"));
    let early = token_for("alice", json!({ "nbf": now + 3600 }));
    refused(&app, &early).await;
    let no_exp = token_for("alice", json!({ "exp": null }));
    refused(&app, &no_exp).await;
}

#[tokio::test]
async fn audience_and_issuer_must_match_and_be_present() {
    let app = app(&keys());
    for extra in [
        json!({ "aud": "someone-else" }),
        json!({ "aud": null }),
        json!({ "iss": "https://evil.test" }),
        json!({ "iss": null }),
        json!({ "sub": null }),
        json!({ "sub": 42 }),
    ] {
        refused(&app, &token_for("alice", extra)).await;
    }
}

#[tokio::test]
async fn bad_signatures_unknown_key_ids_and_garbage_are_refused() {
    let app = app(&keys());
    let forged = token(
        Algorithm::HS256,
        Some("k1"),
        OTHER_SECRET,
        &claims("alice", json!({})),
    );
    refused(&app, &forged).await;
    let unknown_kid = token(
        Algorithm::HS256,
        Some("k9"),
        SECRET,
        &claims("alice", json!({})),
    );
    refused(&app, &unknown_kid).await;
    let no_kid = token(Algorithm::HS256, None, SECRET, &claims("alice", json!({})));
    refused(&app, &no_kid).await;
    refused(&app, "not.a.token").await;
}

#[tokio::test]
async fn keys_rotate_at_run_time() {
    let keys = keys();
    let app = app(&keys);
    let old = token_for("alice", json!({}));
    let new = token(
        Algorithm::HS256,
        Some("k2"),
        OTHER_SECRET,
        &claims("alice", json!({})),
    );
    let status = |t: String| {
        let app = app.clone();
        async move {
            get_req("/t/acme/accounts")
                .bearer(&t)
                .send(&app)
                .await
                .status
        }
    };
    assert_eq!(status(old.clone()).await, StatusCode::OK);
    assert_eq!(status(new.clone()).await, StatusCode::UNAUTHORIZED);

    // Overlap: both keys while clients move over.
    keys.insert("k2", DecodingKey::from_secret(OTHER_SECRET));
    assert_eq!(status(old.clone()).await, StatusCode::OK);
    assert_eq!(status(new.clone()).await, StatusCode::OK);

    // The old key is retired: its tokens stop working at once.
    keys.rotate(KeySet::new().with_key("k2", DecodingKey::from_secret(OTHER_SECRET)));
    assert_eq!(status(old.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(new.clone()).await, StatusCode::OK);
    keys.remove("k2");
    assert_eq!(status(new).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_default_key_verifies_tokens_without_a_key_id() {
    let keys = JwtKeys::new(KeySet::new().with_default_key(DecodingKey::from_secret(SECRET)));
    let app = app(&keys);
    let no_kid = token(Algorithm::HS256, None, SECRET, &claims("alice", json!({})));
    let reply = get_req("/t/acme/accounts").bearer(&no_kid).send(&app).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn the_trusted_header_is_off_by_default() {
    let app = app(&keys());
    let reply = get_req("/t/acme/accounts").user("carol").send(&app).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    // A layer with no identity resolver at all accepts nobody.
    let bare = app_with(RbacLayer::new(engine()).tenant(TenantSource::path("tenant")));
    let reply = get_req("/t/acme/accounts").user("carol").send(&bare).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_trusted_header_works_once_enabled_and_a_token_takes_precedence() {
    let keys = keys();
    let app = app_with(
        RbacLayer::new(engine())
            .jwt(jwt(&keys))
            .trusted_header(TrustedHeader::x_user_id())
            .tenant(TenantSource::path("tenant")),
    );
    let reply = get_req("/t/acme/accounts").user("carol").send(&app).await;
    assert_eq!(reply.status, StatusCode::OK);
    // An invalid token is refused even when the header would name someone allowed.
    let forged = token(
        Algorithm::HS256,
        Some("k1"),
        OTHER_SECRET,
        &claims("alice", json!({})),
    );
    let reply = get_req("/t/acme/accounts")
        .bearer(&forged)
        .user("carol")
        .send(&app)
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    // A header value that is not a valid subject is refused.
    let reply = get_req("/t/acme/accounts").user("car ol").send(&app).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    // Credentials that cannot be read are refused, never passed over for the trusted header.
    let valid = token_for("alice", json!({}));
    let reply = get_req("/t/acme/accounts")
        .header_bytes("authorization", b"Bearer \xff\xfe")
        .user("carol")
        .send(&app)
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    for empty in ["Bearer", "Bearer ", "bearer    "] {
        let reply = get_req("/t/acme/accounts")
            .header("authorization", empty)
            .user("carol")
            .send(&app)
            .await;
        reply.assert_problem(StatusCode::UNAUTHORIZED);
    }
    // Another scheme, whatever its bytes, is left to the next resolver.
    let reply = get_req("/t/acme/accounts")
        .header_bytes("authorization", b"Basic \xe9t\xe9")
        .user("carol")
        .send(&app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = get_req("/t/acme/accounts")
        .bearer(&valid)
        .bearer(&forged)
        .send(&app)
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    // A proxy that appends the trusted header leaves the client's value first: refused.
    let reply = get_req("/t/acme/accounts")
        .user("carol")
        .user("mallory")
        .send(&app)
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
}

#[test]
fn a_leeway_is_cut_to_one_day() {
    let long = jwt(&keys()).leeway(std::time::Duration::from_secs(u64::MAX));
    assert!(format!("{long:?}").contains("leeway: 86400"), "{long:?}");
}
