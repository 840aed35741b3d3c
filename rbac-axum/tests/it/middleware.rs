//! The middleware form decides, answers and reports exactly like the attribute form.

use axum::Json;
use axum::extract::Path;
use http::Method;
use rbac_axum::routing::{get, put};
use rbac_axum::{
    RbacLayer, Router, Status, TenantSource, TrustedHeader, public, require, require_all,
    require_any, require_module, require_role,
};
use serde::Deserialize;

use crate::support::{Capture, Reply, call, engine};

#[derive(Deserialize)]
struct Rename {
    name: String,
}

mod attributed {
    use super::*;

    #[rbac_axum::require_permission("finance.accounts.read")]
    pub(super) async fn read() -> &'static str {
        "read"
    }

    #[rbac_axum::require_permission("finance.accounts.update")]
    pub(super) async fn update(
        Path((_t, id)): Path<(String, u32)>,
        Json(r): Json<Rename>,
    ) -> String {
        format!("{id}:{}", r.name)
    }

    #[rbac_axum::require_permission(any("finance.invoices.approve", "crm.leads.read"))]
    pub(super) async fn either() -> &'static str {
        "either"
    }

    #[rbac_axum::require_permission(all("finance.accounts.read", "finance.accounts.update"))]
    pub(super) async fn both() -> &'static str {
        "both"
    }

    #[rbac_axum::require_role("admin")]
    pub(super) async fn admin() -> &'static str {
        "admin"
    }

    #[rbac_axum::require_module("crm")]
    pub(super) async fn crm() -> &'static str {
        "crm"
    }

    #[rbac_axum::public]
    pub(super) async fn health() -> &'static str {
        "ok"
    }
}

mod layered {
    use super::*;

    pub(super) async fn read() -> &'static str {
        "read"
    }

    pub(super) async fn update(
        Path((_t, id)): Path<(String, u32)>,
        Json(r): Json<Rename>,
    ) -> String {
        format!("{id}:{}", r.name)
    }

    pub(super) async fn either() -> &'static str {
        "either"
    }

    pub(super) async fn both() -> &'static str {
        "both"
    }

    pub(super) async fn admin() -> &'static str {
        "admin"
    }

    pub(super) async fn crm() -> &'static str {
        "crm"
    }

    pub(super) async fn health() -> &'static str {
        "ok"
    }
}

fn with_attributes() -> Router {
    Router::new()
        .route("/t/{tenant}/accounts", get(attributed::read))
        .route("/t/{tenant}/accounts/{id}", put(attributed::update))
        .route("/t/{tenant}/either", get(attributed::either))
        .route("/t/{tenant}/both", get(attributed::both))
        .route("/t/{tenant}/admin", get(attributed::admin))
        .route("/t/{tenant}/crm", get(attributed::crm))
        .route("/health", get(attributed::health))
        .deny_by_default()
}

fn with_layers() -> Router {
    // Both ways of applying a layer: on a method router, and on a router for its routes so far.
    let crm = Router::new()
        .route("/t/{tenant}/crm", get(layered::crm))
        .route_layer(require_module("crm"));
    Router::new()
        .route(
            "/t/{tenant}/accounts",
            get(layered::read).route_layer(require("finance.accounts.read")),
        )
        .route(
            "/t/{tenant}/accounts/{id}",
            put(layered::update).route_layer(require("finance.accounts.update")),
        )
        .route(
            "/t/{tenant}/either",
            get(layered::either)
                .route_layer(require_any(&["finance.invoices.approve", "crm.leads.read"])),
        )
        .route(
            "/t/{tenant}/both",
            get(layered::both).route_layer(require_all(&[
                "finance.accounts.read",
                "finance.accounts.update",
            ])),
        )
        .route(
            "/t/{tenant}/admin",
            get(layered::admin).route_layer(require_role("admin")),
        )
        .merge(crm)
        .route("/health", get(layered::health).route_layer(public()))
        .deny_by_default()
}

fn serve(router: Router) -> axum::Router {
    router.into_inner().layer(
        RbacLayer::new(engine())
            .trusted_header(TrustedHeader::x_user_id())
            .tenant(TenantSource::path("tenant")),
    )
}

async fn send(
    app: &axum::Router,
    method: &Method,
    uri: &str,
    user: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut c = call(method.clone(), uri);
    if let Some(u) = user {
        c = c.user(u);
    }
    if let Some(b) = body {
        c = c.json_body(b);
    }
    c.send(app).await
}

#[tokio::test]
async fn both_forms_answer_every_request_identically() {
    let capture = Capture::start();
    let (a, b) = (serve(with_attributes()), serve(with_layers()));
    let users = [
        None,
        Some("alice"),
        Some("bob"),
        Some("carol"),
        Some("dave"),
        Some("bad user"),
    ];
    let gets = ["accounts", "either", "both", "admin", "crm"];
    let tenants = ["acme", "globex", "initech", "ac%20me"];
    let mut requests: Vec<(Method, String, Option<&str>)> = Vec::new();
    for tenant in tenants {
        for path in gets {
            requests.push((Method::GET, format!("/t/{tenant}/{path}"), None));
        }
        for body in [r#"{"name":"cash"}"#, "{not json", r#"{"wrong":1}"#] {
            requests.push((Method::PUT, format!("/t/{tenant}/accounts/7"), Some(body)));
        }
    }
    requests.push((Method::GET, "/health".to_owned(), None));
    let mut compared = 0;
    let mut statuses = std::collections::BTreeSet::new();
    for (method, uri, body) in &requests {
        for user in users {
            capture.clear();
            let left = send(&a, method, uri, user, *body).await;
            let left_events = capture.refusals();
            capture.clear();
            let right = send(&b, method, uri, user, *body).await;
            let right_events = capture.refusals();
            let what = format!("{method} {uri} as {user:?} with {body:?}");
            assert_eq!(left.status, right.status, "{what}");
            assert_eq!(left.body, right.body, "{what}");
            assert_eq!(left.content_type(), right.content_type(), "{what}");
            assert_eq!(left_events.len(), right_events.len(), "{what}");
            for (l, r) in left_events.iter().zip(&right_events) {
                assert_eq!(l.fields, r.fields, "{what}");
            }
            statuses.insert(left.status.as_u16());
            compared += 1;
        }
    }
    assert_eq!(compared, requests.len() * users.len());
    // The matrix exercised every outcome.
    for status in [200, 400, 401, 403, 422] {
        assert!(
            statuses.contains(&status),
            "{status} not seen: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn both_forms_report_the_same_coverage() {
    let (a, b) = (with_attributes().coverage(), with_layers().coverage());
    let strip = |r: &rbac_axum::CoverageReport| {
        r.routes
            .iter()
            .map(|r| {
                (
                    r.method.clone(),
                    r.path.clone(),
                    r.module.clone(),
                    r.status,
                    r.requirement.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(a.totals, b.totals);
    assert_eq!(a.modules, b.modules);
    assert_eq!(a.totals.protected, 6);
    assert_eq!(a.with_status(Status::Public).count(), 1);
}
