//! The coverage report of a real router: every route with its full path, status, requirement and
//! module; totals; the four output formats; the test helpers.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use rbac_axum::routing::{MethodRouter, get};
use rbac_axum::{
    CoverageOptions, Router, Status, assert_coverage, declared_permissions, marked_handlers,
    public, require, require_module, require_permission, require_role,
};
use serde_json::json;

use crate::support::engine;

pub(crate) mod perms {
    rbac_axum::permissions! {
        finance.accounts.read,
        finance.accounts.update,
        finance.invoices.approve,
        crm.leads.read,
        crm.leads.create,
    }
}

#[require_permission(perms::FINANCE_ACCOUNTS_READ)]
async fn list_accounts() -> &'static str {
    "accounts"
}

#[require_permission(all(perms::FINANCE_ACCOUNTS_READ, "finance.accounts.update"), registry = perms)]
async fn create_account(body: String) -> String {
    body
}

#[require_permission("finance.accounts.read", registry = perms)]
async fn get_account() -> &'static str {
    "account"
}

#[require_module("finance")]
async fn update_account() -> &'static str {
    "updated"
}

async fn delete_account() -> &'static str {
    "deleted"
}

async fn list_leads() -> &'static str {
    "leads"
}

async fn lead() -> &'static str {
    "lead"
}

#[require_role("admin", module = "platform")]
async fn admin_only() -> &'static str {
    "admin"
}

#[public]
async fn health() -> &'static str {
    "ok"
}

/// A service: its protection cannot be seen.
#[derive(Clone)]
struct Metrics;

impl tower::Service<Request> for Metrics {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request) -> Self::Future {
        ready(Ok("metrics".into_response()))
    }
}

fn report_route() -> MethodRouter {
    // Defined inside a function body: matched all the same.
    #[require_permission(any(perms::FINANCE_INVOICES_APPROVE, perms::CRM_LEADS_READ))]
    async fn report() -> &'static str {
        "report"
    }
    get(report)
}

fn app() -> Router {
    let finance = Router::new()
        .route("/accounts", get(list_accounts).post(create_account))
        .route(
            "/accounts/{id}",
            get(get_account).put(update_account).delete(delete_account),
        )
        .route("/report", report_route());
    let crm = Router::new().route("/leads", get(list_leads)).route(
        "/leads/{id}",
        get(lead).route_layer(require("crm.leads.read")),
    );
    let api = Router::new()
        .nest("/finance", finance)
        .nest("/crm", crm)
        .route("/admin", get(admin_only))
        .route_layer(require("finance.accounts.read"))
        .route_service("/metrics", Metrics);
    Router::new()
        .route("/health", get(health))
        .nest("/api", api)
}

fn options() -> CoverageOptions {
    CoverageOptions::new()
        .module_for_path("/api/crm", "crm")
        .module_for_path("/api/finance/", "finance")
}

#[test]
fn the_json_of_a_nested_app_is_exactly_as_expected() {
    let report = app().coverage_with(&options());
    let perm = |p: &str| json!({ "kind": "permission", "permissions": [p] });
    let every = |own: serde_json::Value| json!({ "kind": "every", "requirements": [own, perm("finance.accounts.read")] });
    let route = |method: &str,
                 path: &str,
                 handler: &str,
                 module: serde_json::Value,
                 status: &str,
                 requirement: serde_json::Value| {
        json!({
            "method": method, "path": path, "handler": handler, "module": module,
            "status": status, "requirement": requirement,
        })
    };
    let expected = json!({
        "routes": [
            route("GET", "/api/admin", "it::coverage::admin_only", json!("platform"), "protected",
                every(json!({ "kind": "role", "role": "admin" }))),
            route("GET", "/api/crm/leads", "it::coverage::list_leads", json!("crm"), "protected",
                perm("finance.accounts.read")),
            route("GET", "/api/crm/leads/{id}", "it::coverage::lead", json!("crm"), "protected",
                json!({ "kind": "every", "requirements": [perm("crm.leads.read"), perm("finance.accounts.read")] })),
            route("GET", "/api/finance/accounts", "it::coverage::list_accounts", json!("finance"), "protected",
                every(perm("finance.accounts.read"))),
            route("POST", "/api/finance/accounts", "it::coverage::create_account", json!("finance"), "protected",
                every(json!({ "kind": "all", "permissions": ["finance.accounts.read", "finance.accounts.update"] }))),
            route("GET", "/api/finance/accounts/{id}", "it::coverage::get_account", json!("finance"), "protected",
                every(perm("finance.accounts.read"))),
            route("PUT", "/api/finance/accounts/{id}", "it::coverage::update_account", json!("finance"), "protected",
                every(json!({ "kind": "module", "module": "finance" }))),
            route("DELETE", "/api/finance/accounts/{id}", "it::coverage::delete_account", json!("finance"), "protected",
                perm("finance.accounts.read")),
            route("GET", "/api/finance/report", "it::coverage::report", json!("finance"), "protected",
                every(json!({ "kind": "any", "permissions": ["finance.invoices.approve", "crm.leads.read"] }))),
            route("ANY", "/api/metrics", "it::coverage::Metrics", json!(null), "unresolved", json!(null)),
            route("GET", "/health", "it::coverage::health", json!(null), "public", json!({ "kind": "public" })),
        ],
        "totals": { "routes": 11, "protected": 9, "public": 1, "unprotected": 0, "unresolved": 1 },
        "modules": {
            "crm": { "routes": 2, "protected": 2, "public": 0, "unprotected": 0, "unresolved": 0 },
            "finance": { "routes": 6, "protected": 6, "public": 0, "unprotected": 0, "unresolved": 0 },
            "platform": { "routes": 1, "protected": 1, "public": 0, "unprotected": 0, "unresolved": 0 },
        },
    });
    assert_eq!(report.to_json(), expected, "{}", report.to_json_string());
    // The contract reads back: a saved report loads into the same value.
    let loaded: rbac_axum::CoverageReport = serde_json::from_str(&report.to_json_string()).unwrap();
    assert_eq!(loaded, report);
    assert_eq!(
        rbac_axum::CoverageReport::from_routes(loaded.routes.clone()),
        report
    );
}

/// The same app without the router-wide layer: the forgotten routes show.
fn app_without_api_layer() -> Router {
    let finance = Router::new()
        .route("/accounts", get(list_accounts).post(create_account))
        .route(
            "/accounts/{id}",
            get(get_account).put(update_account).delete(delete_account),
        );
    let crm = Router::new().route("/leads", get(list_leads)).route(
        "/leads/{id}",
        get(lead).route_layer(require("crm.leads.read")),
    );
    Router::new()
        .route("/health", get(health))
        .route("/", get(|| async { "closure" }))
        .nest("/api/finance", finance)
        .nest("/api/crm", crm)
}

#[test]
fn unprotected_routes_and_the_summary() {
    let report = app_without_api_layer().coverage_with(&options());
    let unprotected: Vec<(&str, &str)> = report
        .with_status(Status::Unprotected)
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        unprotected,
        [
            ("GET", "/"),
            ("GET", "/api/crm/leads"),
            ("DELETE", "/api/finance/accounts/{id}")
        ]
    );
    assert_eq!(report.summary(), "crm 1/2, finance 4/5, total 6/9 = 66.7%");
    let closure = report.routes.iter().find(|r| r.path == "/").unwrap();
    assert!(closure.handler.contains("closure"), "{}", closure.handler);
    assert_eq!(closure.requirement, None);
    // Without path rules, unprotected routes have no module.
    let bare = app_without_api_layer().coverage();
    let leads = bare
        .routes
        .iter()
        .find(|r| r.path == "/api/crm/leads")
        .unwrap();
    assert_eq!(leads.module, None);
}

#[test]
fn the_text_markdown_and_html_forms() {
    let report = app_without_api_layer().coverage_with(&options());
    let text = report.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("METHOD  PATH"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("DELETE  /api/finance/accounts/{id}")
                && l.contains("it::coverage::delete_account")
                && l.contains("unprotected")
                && l.ends_with("NONE")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("health") && l.ends_with("public")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("create_account")
            && l.ends_with("all(finance.accounts.read, finance.accounts.update)")),
        "{text}"
    );
    assert_eq!(
        lines.last(),
        Some(&"crm 1/2, finance 4/5, total 6/9 = 66.7%")
    );
    assert_eq!(report.to_string(), text);

    let markdown = report.to_markdown();
    assert!(markdown.contains("| Method | Path | Handler | Module | Status | Requirement |"));
    assert!(markdown.contains("| `GET` | `/api/crm/leads` | `it::coverage::list_leads` | `crm` | `unprotected` | `NONE` |"), "{markdown}");
    assert!(
        markdown.contains("| total | 9 | 5 | 1 | 3 | 0 |"),
        "{markdown}"
    );

    let html = report.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<tr class=\"unprotected\"><td>GET</td><td>/api/crm/leads</td>"),
        "{html}"
    );
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    // Type names are escaped: a generic handler's `<`, `>`.
    let generic: Router = Router::new().route("/g", get(generic::<u8>));
    let html = generic.coverage().to_html();
    assert!(
        html.contains("<td>it::coverage::generic&lt;u8&gt;</td>"),
        "{html}"
    );
}

async fn generic<T: 'static>() -> &'static str {
    std::any::type_name::<T>()
}

#[test]
fn assert_coverage_passes_at_or_below_the_share() {
    assert_coverage(&app(), 90.0);
    app_without_api_layer().coverage().assert_at_least(66.0);
}

#[test]
#[should_panic(expected = "route coverage 66.7% is below the required 100.0%")]
fn assert_coverage_fails_below_the_share() {
    assert_coverage(&app_without_api_layer(), 100.0);
}

#[require_permission("finance.acounts.read")]
async fn misspelled() -> &'static str {
    "typo"
}

#[test]
fn misspelled_literals_are_found_against_the_policy() {
    let router: Router = Router::new()
        .route("/typo", get(misspelled))
        .route("/fine", get(get_account))
        .route("/layer", get(lead).route_layer(require("crm.lead.read")));
    let undeclared = router.coverage().undeclared_permissions(&engine());
    let found: Vec<String> = undeclared.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "`crm.lead.read` is not declared in the policy (required by GET /layer); did you mean `crm.leads.read`?",
            "`finance.acounts.read` is not declared in the policy (required by GET /typo); did you mean `finance.accounts.read`?",
        ]
    );
}

#[require_role("admn")]
async fn misspelled_role() -> &'static str {
    "typo"
}

#[require_module("finanse")]
async fn misspelled_module() -> &'static str {
    "typo"
}

/// The macros check a role's or module's form only: a misspelt one compiles and locks its
/// route for everyone. Against the policy, the report names it.
#[test]
fn misspelled_roles_and_modules_are_found_against_the_policy() {
    use rbac_axum::{require_module as module_layer, require_role as role_layer};

    let router: Router = Router::new()
        .route("/role", get(misspelled_role))
        .route("/module", get(misspelled_module))
        .route("/fine", get(admin_only).post(update_account))
        .route("/layer", get(lead).route_layer(role_layer("salse")))
        .route(
            "/both",
            get(lead)
                .route_layer(module_layer("crm"))
                .route_layer(role_layer("sales")),
        )
        // A role that grants nothing is still a role of the policy.
        .route("/empty", get(lead).route_layer(role_layer("auditor")));
    let found: Vec<String> = router
        .coverage()
        .undeclared_roles_and_modules(&engine())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "role `admn` is not defined in the policy (required by GET /role)",
            "role `salse` is not defined in the policy (required by GET /layer)",
            "module `finanse` is not declared (no permission of it) in the policy (required by GET /module)",
        ]
    );
}

#[test]
fn permissions_declares_typed_constants_and_a_registry() {
    assert_eq!(
        perms::FINANCE_ACCOUNTS_READ.as_str(),
        "finance.accounts.read"
    );
    assert_eq!(perms::CRM_LEADS_CREATE.module(), "crm");
    assert_eq!(perms::ALL.len(), 5);
    let declared = declared_permissions();
    for p in perms::ALL {
        assert!(declared.contains(p), "{p}");
    }
    let handlers = marked_handlers();
    let names: Vec<String> = handlers
        .iter()
        .map(|h| format!("{}::{}", h.module_path, h.name))
        .collect();
    assert!(
        names.contains(&"it::coverage::list_accounts".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"it::coverage::report".to_owned()),
        "{names:?}"
    );
}

mod same_names {
    use super::*;

    pub(super) fn first() -> MethodRouter {
        #[public]
        async fn handler() -> &'static str {
            "first"
        }
        get(handler)
    }

    pub(super) fn second() -> MethodRouter {
        #[require_permission("crm.leads.create")]
        async fn handler() -> &'static str {
            "second"
        }
        get(handler)
    }
}

#[test]
fn handlers_with_the_same_name_in_different_functions_are_told_apart() {
    let report = Router::<()>::new()
        .route("/first", same_names::first())
        .route("/second", same_names::second())
        .route(
            "/module",
            get(update_account).route_layer(require_module("finance")),
        )
        .route("/open", get(delete_account).route_layer(public()))
        .coverage();
    let statuses: Vec<(&str, Status, String)> = report
        .routes
        .iter()
        .map(|r| {
            let requirement = r
                .requirement
                .as_ref()
                .map_or("NONE".to_owned(), ToString::to_string);
            (r.path.as_str(), r.status, requirement)
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("/first", Status::Public, "public".to_owned()),
            (
                "/module",
                Status::Protected,
                "module finance + module finance".to_owned()
            ),
            ("/open", Status::Public, "public".to_owned()),
            ("/second", Status::Protected, "crm.leads.create".to_owned()),
        ]
    );
}
