//! A live engine from the store is an authorizer like any other.

use std::sync::Arc;

use http::StatusCode;
use rbac_axum::rbac_core::Policy;
use rbac_axum::rbac_core::store::{ChangeContext, LiveOptions, Store};
use rbac_axum::routing::get;
use rbac_axum::{RbacLayer, Router, TenantSource, TrustedHeader};

use crate::support::{POLICY, get as get_req};

#[rbac_axum::require_permission("finance.accounts.read")]
async fn accounts() -> &'static str {
    "accounts"
}

#[rbac_axum::require_role("admin")]
async fn admin() -> &'static str {
    "admin"
}

#[tokio::test]
async fn a_live_engine_decides() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let policy = Policy::from_toml_str(POLICY).unwrap();
    store
        .import(&ChangeContext::new("tests"), &policy)
        .await
        .unwrap();
    let live = Arc::new(store.live_engine(LiveOptions::default()).await.unwrap());
    let app = Router::new()
        .route("/t/{tenant}/accounts", get(accounts))
        .route("/t/{tenant}/admin", get(admin))
        .into_inner()
        .layer(
            RbacLayer::new(live.clone())
                .trusted_header(TrustedHeader::x_user_id())
                .tenant(TenantSource::path("tenant")),
        );
    let status = |uri: &'static str, user: &'static str| {
        let app = app.clone();
        async move { get_req(uri).user(user).send(&app).await.status }
    };
    assert_eq!(status("/t/acme/accounts", "alice").await, StatusCode::OK);
    assert_eq!(
        status("/t/acme/accounts", "dave").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status("/t/acme/admin", "carol").await, StatusCode::OK);
    assert_eq!(
        status("/t/acme/admin", "alice").await,
        StatusCode::FORBIDDEN
    );
}
