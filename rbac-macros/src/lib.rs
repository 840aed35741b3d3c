//! Attribute macros that protect axum handlers, re-exported by `rbac-axum` (feature `macros`,
//! on by default): use them as `rbac_axum::require_permission` and so on. The generated code
//! refers to `::rbac_axum`, so the application must depend on `rbac-axum`.
//!
//! | macro | effect |
//! |---|---|
//! | `#[require_permission("finance.accounts.read")]` | the caller needs that permission |
//! | `#[require_permission(any("a.b.c", "d.e.f"))]`, `all(...)` | at least one / every one |
//! | `#[require_permission(perms::FINANCE_ACCOUNTS_READ)]` | a constant from `permissions!` |
//! | `#[require_role("admin")]` | the caller holds that role in the tenant |
//! | `#[require_module("finance")]` | the caller holds any permission of the module |
//! | `#[public]` | deliberately open; counted as public in coverage |
//! | `permissions! { finance.accounts.read, ... }` | typed constants, `ALL`, and a registry |
//!
//! ```
//! use rbac_axum::routing::get;
//! use rbac_axum::{Router, Status, public, require_permission, require_role};
//!
//! mod perms {
//!     rbac_axum::permissions! { finance.accounts.read, finance.accounts.update }
//! }
//!
//! #[require_permission(perms::FINANCE_ACCOUNTS_READ)]
//! async fn read_accounts() -> &'static str {
//!     "accounts"
//! }
//!
//! #[require_permission("finance.accounts.update", registry = perms)]
//! async fn update_account(body: String) -> String {
//!     body
//! }
//!
//! #[require_role("admin", module = "platform")]
//! async fn settings() {}
//!
//! #[public]
//! async fn health() -> &'static str {
//!     "ok"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/accounts", get(read_accounts).put(update_account))
//!     .route("/settings", get(settings))
//!     .route("/health", get(health));
//! let report = app.coverage();
//! assert_eq!(report.totals.protected, 3);
//! assert_eq!(report.with_status(Status::Public).count(), 1);
//! assert_eq!(report.summary(), "finance 2/2, platform 1/1, total 4/4 = 100.0%");
//! ```
//!
//! Every attribute takes an optional `module = "…"` (the module the route counts under in the
//! coverage report); `#[require_permission]` also takes `registry = path::to::perms`, which makes
//! every string literal resolve against the `permissions!` declaration in that module.
//!
//! # What is checked at compile time
//!
//! - A permission literal must follow `rbac_core::name::validate_permission` (1 to 8 segments
//!   of `[a-z0-9_]`); a wildcard is refused (use `#[require_module]`). This catches malformed
//!   names, not misspelled ones: `"finance.acounts.read"` is well formed.
//! - A misspelled *declared* permission fails the build when it is named through
//!   `permissions!`: as a path (`perms::FINANCE_ACOUNTS_READ` is "cannot find value", with
//!   rustc's "a constant with a similar name exists"), or as a literal with `registry = perms`
//!   (the same error, on the literal). A literal without a registry is checked against the
//!   policy at test time by `rbac_axum::CoverageReport::undeclared_permissions`.
//! - Roles must be valid role names, modules one permission segment; keys must be known and
//!   unique; `any()` / `all()` must not be empty; the item must be an `async fn` without
//!   `self`, `const`, `unsafe` or `extern`. Every mistake is an error on the offending token,
//!   all reported together.
//!
//! # What the attribute generates
//!
//! Next to the handler `name`, a zero-sized marker type `__rbac_route_name` carrying the
//! requirement, and an `inventory` registration for the coverage report. The handler gains a
//! first argument, `_: Guard<__rbac_route_name>`: an extractor from the request head that decides
//! the requirement before any other extractor runs, so a forbidden request is refused before its
//! body is read (403, not 422). Name, visibility, generics, other arguments, return type and
//! body are unchanged. Handlers must be free functions (module level or inside a function body);
//! because of the added argument, a handler can have at most 15 extractors of its own.

mod expand;
mod parse;
mod validate;

use parse::Kind;
use proc_macro::TokenStream;

/// Requires a permission, `any(...)` or `all(...)` of several: see the crate documentation.
#[proc_macro_attribute]
pub fn require_permission(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Kind::Permission, attr.into(), item.into()).into()
}

/// Requires a role in the request's tenant: `#[require_role("admin")]`.
#[proc_macro_attribute]
pub fn require_role(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Kind::Role, attr.into(), item.into()).into()
}

/// Requires any permission of a module: `#[require_module("finance")]`.
#[proc_macro_attribute]
pub fn require_module(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Kind::Module, attr.into(), item.into()).into()
}

/// Marks a handler as deliberately public: it counts as public in the coverage report and passes
/// deny-by-default routers.
#[proc_macro_attribute]
pub fn public(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Kind::Public, attr.into(), item.into()).into()
}

/// Declares the application's permissions in code:
/// `permissions! { finance.accounts.read, crm.leads.read, "finance.2fa.reset" }` generates one
/// `rbac_axum::Permission` constant per name (`FINANCE_ACCOUNTS_READ`), `ALL`, and registers them
/// for `rbac_axum::declared_permissions()`. Use it once per module. A name whose constant would
/// start with a digit gets `P_` in front (`"2fa.reset"` → `P_2FA_RESET`).
#[proc_macro]
pub fn permissions(input: TokenStream) -> TokenStream {
    expand::permissions(input.into()).into()
}
