//! Protect every route of an [axum](https://docs.rs/axum) application with
//! [`rbac_core`] decisions, and prove it with a coverage report.
//!
//! ```
//! use rbac_axum::rbac_core::{Engine, Policy};
//! use rbac_axum::routing::{get, post};
//! use rbac_axum::{RbacLayer, Router, TenantSource, TrustedHeader, public, require_permission};
//! # use axum::body::Body;
//! # use http::{Request, StatusCode};
//! # use tower::ServiceExt;
//!
//! #[require_permission("finance.invoices.read")]
//! async fn list_invoices() -> &'static str {
//!     "invoices"
//! }
//!
//! // The check runs before the body is read: a forbidden caller gets 403, never 422.
//! #[require_permission("finance.invoices.approve")]
//! async fn approve(body: String) -> String {
//!     body
//! }
//!
//! #[public]
//! async fn health() -> &'static str {
//!     "ok"
//! }
//!
//! let policy = Policy::from_toml_str(r#"
//!     [permissions.finance.invoices]
//!     read = "Read invoices"
//!     approve = "Approve invoices"
//!     [roles.clerk]
//!     grants = ["finance.invoices.read"]
//!     [tenants.acme]
//!     [subjects.alice.tenants]
//!     acme = ["clerk"]
//! "#)?;
//!
//! let app = Router::new()
//!     .route("/t/{tenant}/invoices", get(list_invoices))
//!     .route("/t/{tenant}/invoices/approve", post(approve))
//!     .route("/health", get(health))
//!     .deny_by_default();
//! // Every route carries a requirement or is deliberately public.
//! rbac_axum::assert_coverage(&app, 100.0);
//!
//! let app = app.into_inner().layer(
//!     RbacLayer::new(Engine::new(&policy))
//!         // A proxy in front sets X-User-ID; see `Jwt` for bearer tokens.
//!         .trusted_header(TrustedHeader::x_user_id())
//!         .tenant(TenantSource::path("tenant")),
//! );
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let get = |uri: &str, user: &str| {
//!     Request::get(uri).header("x-user-id", user).body(Body::empty()).unwrap()
//! };
//! let response = app.clone().oneshot(get("/t/acme/invoices", "alice")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let response = app.clone().oneshot(get("/t/globex/invoices", "alice")).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! let response = app.clone().oneshot(Request::get("/t/acme/invoices").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Protecting handlers
//!
//! | attribute | the caller needs |
//! |---|---|
//! | `#[require_permission("finance.accounts.read")]` | that permission |
//! | `#[require_permission(any("a.b.c", "d.e.f"))]` | at least one of them |
//! | `#[require_permission(all("a.b.c", "d.e.f"))]` | every one of them |
//! | `#[require_permission(perms::FINANCE_ACCOUNTS_READ)]` | a permission constant from [`permissions!`] |
//! | `#[require_role("admin")]` | that role in force in the tenant (held there or globally, or inherited) |
//! | `#[require_module("finance")]` | any permission of the module |
//! | `#[public]` | nothing: deliberately open |
//!
//! Each takes an optional `module = "…"` naming the module the route counts under in the report.
//! Put the rbac attribute first (above `#[axum::debug_handler]`, `#[utoipa::path]` and other
//! handler macros): they then see the handler as axum calls it, guard included. Below them, they
//! would check the signature before the guard is added and report a missing argument.
//! The attribute adds a first argument to the handler, an extractor that decides the requirement
//! from the request head before any other extractor runs. The middleware form,
//! `route_layer(require("finance.accounts.read"))` with [`require`], [`require_any`],
//! [`require_all`], [`require_role`](fn@require_role), [`require_module`](fn@require_module) and
//! [`public`](fn@public), decides the same way,
//! answers the same way and appears the same way in the coverage report.
//!
//! # What a misspelled permission does
//!
//! | written as | checked | a typo |
//! |---|---|---|
//! | `"finance.accounts.read"` | syntax at compile time (the rules of [`rbac_core::name::validate_permission`]) | compiles if well formed; [`CoverageReport::undeclared_permissions`] lists it against the policy, with a suggestion, so one test catches it |
//! | `perms::FINANCE_ACCOUNTS_READ` (from [`permissions!`]) | name resolution at compile time | `cannot find value` error on the path, with rustc's "a constant with a similar name exists" |
//! | `"finance.accounts.read", registry = perms` | compile time, against the [`permissions!`] declaration in `perms` | `cannot find value` error on the literal, with the similar name |
//!
//! `permissions! { finance.accounts.read, crm.leads.read }` validates each name at compile time,
//! generates a typed [`Permission`] constant per name (`FINANCE_ACCOUNTS_READ`) and `ALL`, and
//! registers them for [`declared_permissions`].
//!
//! # Requests
//!
//! [`RbacLayer`] puts the [`Authorizer`] (an [`rbac_core::Engine`], an `Arc` of one, or a live
//! engine), the identity resolvers and the [`TenantSource`] into every request. Then a guard or
//! route layer answers:
//!
//! | status | when | type |
//! |---|---|---|
//! | 401 | no identity resolver accepted the request, or its credentials cannot be read (a header given twice, a bearer token that is not text) | [`Unauthenticated`] |
//! | 400 | the tenant is missing or malformed, or its header is given twice | [`InvalidTenant`] |
//! | 403 | the decision is deny (an unknown tenant, subject or permission is a deny) | [`Forbidden`] |
//! | 500 | a protected route has no [`RbacLayer`] in front | [`NotConfigured`] |
//! | 503 | [`rows::Caller`] or [`rows::Rows`] while a live engine is failing closed (its policy staler than allowed) | [`rows::RowsRejection::Stale`] |
//!
//! Bodies are `application/problem+json` with `type`, `title`, `status` and `detail`; they never
//! name roles, permissions or reasons. Each refusal emits exactly one `tracing` event, target
//! `rbac::http`, with the cause.
//!
//! Identity comes from [`Jwt`] bearer tokens (pinned algorithm; `exp`, `nbf`, `aud`, `iss`;
//! keys by `kid` in [`JwtKeys`], rotatable at run time) or, only when enabled, a
//! [`TrustedHeader`]; or from your own [`IdentityResolver`].
//!
//! # Routers, deny by default and coverage
//!
//! axum cannot list its routes, so [`Router`] wraps `axum::Router` and
//! [`routing`]'s method routers wrap axum's, recording every method, full path (nest prefixes
//! included) and handler. Handlers marked by an attribute are recognised by the type of the
//! extractor the attribute added, so nested functions and generic handlers are matched exactly.
//! [`Router::deny_by_default`] answers 403 on every route that carries no requirement and is not
//! public, and [`Router::coverage`] reports every route in text, JSON, Markdown or HTML. A
//! fallback set with [`Router::fallback`] (`.fallback(routing::any(handler))`) is one of those
//! routes, reported as `(fallback)`; set on the inner `axum::Router`, it would be neither
//! refused nor reported. Services ([`Router::route_service`], [`Router::nest_service`],
//! [`Router::fallback_service`]) cannot be inspected: they are `unresolved`, and refused by a
//! deny-by-default router, until a layer covers them. [`coverage::nested_path`] is how nested
//! routes are named, here and in `rbac-admin coverage --src`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `macros` | yes | the attribute macros and [`permissions!`] (from `rbac-macros`) |
//! | `sqlite` | yes | [`Authorizer`] for `rbac_core::store::LiveEngine`, with rbac-core's SQLite store |
//! | `postgres` | no | the same with rbac-core's PostgreSQL store |
//!
//! JWT verification uses `jsonwebtoken` with its `rust_crypto` provider. If something else in the
//! program enables its `aws_lc_rs` feature too, install a provider with
//! `jsonwebtoken::crypto::CryptoProvider::install_default` at start.

mod authorizer;
pub mod coverage;
mod guard;
mod identity;
mod layer;
mod middleware;
mod registry;
mod rejection;
mod requirement;
mod router;
pub mod routing;
pub mod rows;
mod tenant;

/// JWT bearer tokens; re-exports `jsonwebtoken`'s key and algorithm types.
pub mod jwt;

pub use authorizer::{Authorizer, Verdict, evaluate};
pub use coverage::{
    CoverageOptions, CoverageReport, NameKind, RequirementReport, RouteReport, Status, Totals,
    UndeclaredName, UndeclaredPermission, assert_coverage,
};
pub use identity::{Identity, IdentityResolver, TrustedHeader};
pub use jwt::{Jwt, JwtKeys, KeySet};
pub use layer::{Principal, RbacLayer, RbacService};
pub use middleware::{
    PublicLayer, PublicService, RequireLayer, RequireService, public, require, require_all,
    require_any, require_module, require_role,
};
pub use rbac_core;
pub use registry::{MarkedHandler, declared_permissions, marked_handlers};
pub use rejection::{
    AuthzRejection, DenyReason, Forbidden, InvalidTenant, NotConfigured, TenantProblem,
    Unauthenticated, UnauthenticatedKind,
};
pub use requirement::{Permission, Protection, Requirement};
pub use router::Router;
pub use tenant::TenantSource;

#[cfg(feature = "macros")]
pub use rbac_macros::{permissions, public, require_module, require_permission, require_role};

/// What the macros' generated code refers to. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::guard::{Guard, Public, RouteRequirement};
    pub use crate::registry::{DeclaredPermissions, HandlerMeta};
    pub use inventory;

    /// Byte equality in const context, for `registry = …` checks.
    pub const fn same_name(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::__private::same_name;

    #[test]
    fn names_compare_byte_for_byte() {
        assert!(same_name("a.b", "a.b"));
        assert!(!same_name("a.b", "a_b"));
        assert!(!same_name("a.b", "a.bc"));
    }
}
