//! Generated code is clean under strict lints: no warnings, no unsafe in the user's crate, every
//! public item documented.

#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unused, nonstandard_style, rust_2018_idioms)]

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use rbac_axum::{public, require_module, require_permission, require_role};
use serde::Deserialize;

/// The permissions.
pub mod perms {
    rbac_axum::permissions! {
        finance.accounts.read,
        finance.accounts.update,
        crm.r#type.read,
        "finance.2fa.reset",
        "2fa.reset",
    }
}

/// A permission whose constant would start with a digit: `P_` in front.
#[require_permission(perms::P_2FA_RESET)]
pub async fn reset_second_factor() -> &'static str {
    "reset"
}

/// The same, written as a literal checked against the registry.
#[require_permission("2fa.reset", registry = perms)]
pub async fn reset_second_factor_again() -> &'static str {
    "reset"
}

/// A body.
#[derive(Debug, Deserialize)]
pub struct Rename {
    /// The new name.
    pub name: String,
}

/// Reads.
#[require_permission(perms::FINANCE_ACCOUNTS_READ)]
pub async fn read_accounts() -> &'static str {
    "accounts"
}

/// Updates.
#[require_permission("finance.accounts.update", registry = perms, module = "finance")]
pub async fn update_account<S: Clone + Send + Sync + 'static>(
    State(_state): State<S>,
    Path(id): Path<u32>,
    Json(body): Json<Rename>,
) -> impl IntoResponse {
    format!("{id}: {}", body.name)
}

/// Either.
#[require_permission(any(perms::CRM_TYPE_READ, "finance.2fa.reset"))]
pub(crate) async fn either() {}

/// Both.
#[require_permission(all("finance.accounts.read", "finance.accounts.update",))]
async fn both() {}

/// Admins.
#[require_role("admin")]
async fn admin() {}

/// Finance.
#[require_module("finance", module = "finance")]
async fn finance() {}

/// Health.
#[public]
async fn health() -> &'static str {
    "ok"
}

/// A raw identifier as a handler name.
#[public(module = "auth")]
async fn r#type() {}

fn main() {
    #[require_permission("crm.type.read")]
    async fn nested() {}

    let _app: axum::Router = axum::Router::new()
        .route("/accounts", axum::routing::get(read_accounts))
        .route("/accounts/{id}", axum::routing::put(update_account::<()>))
        .route("/either", axum::routing::get(either))
        .route("/both", axum::routing::get(both))
        .route("/admin", axum::routing::get(admin))
        .route("/finance", axum::routing::get(finance))
        .route("/health", axum::routing::get(health))
        .route("/type", axum::routing::get(r#type))
        .route("/nested", axum::routing::get(nested))
        .route("/2fa", axum::routing::post(reset_second_factor))
        .route("/2fa/again", axum::routing::post(reset_second_factor_again));
    assert_eq!(perms::ALL.len(), 5);
    assert_eq!(perms::FINANCE_2FA_RESET.as_str(), "finance.2fa.reset");
    assert_eq!(perms::P_2FA_RESET.as_str(), "2fa.reset");
    assert_eq!(rbac_axum::marked_handlers().len(), 11);
}
