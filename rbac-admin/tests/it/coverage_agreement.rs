//! `coverage --src` (a scan of the source) and `rbac_axum::Router::coverage` (the running
//! router) must report the same routes with the same statuses: each app here is compiled and
//! built, and its own source text, as `stringify!` gives it, is scanned.

use std::convert::Infallible;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

/// The router `app()` that `$items` define, and their source text.
macro_rules! app_and_source {
    ($($items:item)*) => {{
        $($items)*
        (app(), stringify!($($items)*))
    }};
}

fn service()
-> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|_req: Request| async { Ok::<_, Infallible>("service".into_response()) })
}

/// (method, path, status) of every route, sorted.
type Rows = Vec<(String, String, String)>;

fn from_router(router: &rbac_axum::Router) -> Rows {
    let mut rows: Rows = router
        .coverage()
        .routes
        .into_iter()
        .map(|r| (r.method, r.path, r.status.to_string()))
        .collect();
    rows.sort();
    rows
}

fn from_source(source: &str) -> Rows {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), source).unwrap();
    let mut rows: Rows = rbac_admin::static_coverage::scan(dir.path())
        .unwrap()
        .into_iter()
        .map(|r| (r.method, r.path, r.status.to_string()))
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_source_scan_reports_what_the_router_reports() {
    let (router, source) = app_and_source! {
        use rbac_axum::routing::{any, get, post};
        use rbac_axum::{Router, require};

        #[rbac_axum::public]
        async fn health() -> &'static str { "ok" }
        #[rbac_axum::require_permission("finance.accounts.read")]
        async fn accounts() -> &'static str { "accounts" }
        async fn forgotten() -> &'static str { "forgotten" }
        #[rbac_axum::public]
        async fn not_found() -> &'static str { "not found" }

        fn app() -> Router {
            let finance = Router::new()
                .route("/accounts", get(accounts).post(forgotten))
                .route("/", get(forgotten))
                .fallback(any(forgotten));
            let covered = Router::new()
                .route("/x", post(forgotten))
                .fallback(any(forgotten))
                .layer(require("finance.accounts.read"));
            let route_covered = Router::new()
                .route("/y", get(forgotten))
                .fallback(any(forgotten))
                .route_layer(require("finance.accounts.read"));
            Router::new()
                .route("/health", get(health))
                .route_service("/metrics", service())
                .nest_service("/assets/", service())
                .nest("/finance", finance)
                .nest("/trailing/", Router::new().route("/", get(forgotten)).route("/z", get(forgotten)))
                .nest("/covered", covered)
                .nest("/route-covered", route_covered)
                .nest("/deep", Router::new().nest("/er", Router::new().fallback(any(forgotten))).fallback(any(not_found)))
                .fallback_service(service())
        }
    };
    let router_rows = from_router(&router);
    assert_eq!(from_source(source), router_rows);
    // The app is what it seems: each kind of route is there.
    let has = |method: &str, path: &str, status: &str| {
        router_rows.contains(&(method.into(), path.into(), status.into()))
    };
    assert!(has("ANY", "/assets/…", "unresolved"), "{router_rows:#?}");
    assert!(has("ANY", "(fallback)", "unresolved"), "{router_rows:#?}");
    assert!(
        has("ANY", "/deep/er (fallback)", "unprotected"),
        "{router_rows:#?}"
    );
    assert!(has("GET", "/trailing/", "unprotected"), "{router_rows:#?}");
    assert!(
        has("ANY", "/covered (fallback)", "protected"),
        "{router_rows:#?}"
    );
    assert!(
        has("ANY", "/route-covered (fallback)", "unprotected"),
        "{router_rows:#?}"
    );
    assert!(
        has("GET", "/finance/accounts", "protected"),
        "{router_rows:#?}"
    );
    assert!(has("ANY", "/deep (fallback)", "public"), "{router_rows:#?}");
}

#[test]
fn services_covered_by_a_layer_are_protected_in_both() {
    let (router, source) = app_and_source! {
        use rbac_axum::{Router, require};

        fn app() -> Router {
            Router::new()
                .route_service("/metrics", service())
                .nest_service("/assets", service())
                .fallback_service(service())
                .layer(require("finance.accounts.read"))
        }
    };
    let rows = from_router(&router);
    assert_eq!(from_source(source), rows);
    assert!(
        rows.iter().all(|(_, _, status)| status == "protected"),
        "{rows:#?}"
    );
    assert_eq!(rows.len(), 3, "{rows:#?}");
}
