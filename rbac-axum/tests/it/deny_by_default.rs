//! Deny-by-default routers: a route that carries nothing answers 403.

use std::convert::Infallible;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use rbac_axum::routing::get;
use rbac_axum::{RbacLayer, Router, TenantSource, TrustedHeader, public, require};

use crate::support::{Capture, engine, get as get_req};

#[rbac_axum::require_permission("finance.accounts.read")]
async fn marked() -> &'static str {
    "marked"
}

#[rbac_axum::public]
async fn open() -> &'static str {
    "open"
}

async fn forgotten() -> &'static str {
    "forgotten"
}

fn service()
-> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|_req: Request| async { Ok::<_, Infallible>("service".into_response()) })
}

fn routes() -> Router {
    let nested = Router::new()
        .route("/forgotten", get(forgotten))
        .route("/marked", get(marked));
    let covered = Router::new()
        .route("/t/{tenant}/covered", get(forgotten))
        .route_layer(require("finance.accounts.read"));
    Router::new()
        .route("/t/{tenant}/forgotten", get(forgotten))
        .route("/t/{tenant}/marked", get(marked))
        .route("/t/{tenant}/closure", get(|| async { "closure" }))
        .route("/open", get(open))
        .route("/open-by-layer", get(forgotten).route_layer(public()))
        .route_service("/service", service())
        .nest("/t/{tenant}/nested", nested)
        .merge(covered)
}

fn serve(router: Router) -> axum::Router {
    router.into_inner().layer(
        RbacLayer::new(engine())
            .trusted_header(TrustedHeader::x_user_id())
            .tenant(TenantSource::path("tenant")),
    )
}

async fn status(app: &axum::Router, uri: &str, user: Option<&str>) -> StatusCode {
    let call = get_req(uri);
    let call = match user {
        Some(u) => call.user(u),
        None => call,
    };
    call.send(app).await.status
}

#[tokio::test]
async fn unmarked_routes_answer_403() {
    let app = serve(routes().deny_by_default());
    for uri in [
        "/t/acme/forgotten",
        "/t/acme/closure",
        "/t/acme/nested/forgotten",
        "/service",
    ] {
        // Even for a caller who holds every permission, and for anonymous callers.
        assert_eq!(
            status(&app, uri, Some("carol")).await,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
        assert_eq!(
            status(&app, uri, None).await,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
    }
    let reply = get_req("/t/acme/forgotten").send(&app).await;
    reply.assert_problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn marked_public_and_covered_routes_are_served() {
    let app = serve(routes().deny_by_default());
    assert_eq!(
        status(&app, "/t/acme/marked", Some("alice")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, "/t/acme/marked", Some("dave")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, "/t/acme/nested/marked", Some("alice")).await,
        StatusCode::OK
    );
    assert_eq!(status(&app, "/open", None).await, StatusCode::OK);
    assert_eq!(status(&app, "/open-by-layer", None).await, StatusCode::OK);
    // Covered by `route_layer(require(...))`: the layer decides.
    assert_eq!(
        status(&app, "/t/acme/covered", Some("alice")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, "/t/acme/covered", Some("dave")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, "/t/acme/covered", None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn without_the_mode_unmarked_routes_are_served() {
    let app = serve(routes());
    for uri in [
        "/t/acme/forgotten",
        "/t/acme/closure",
        "/t/acme/nested/forgotten",
        "/service",
    ] {
        assert_eq!(status(&app, uri, None).await, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn the_mode_of_a_nested_router_covers_its_own_routes() {
    let strict = Router::new()
        .route("/forgotten", get(forgotten))
        .deny_by_default();
    let app = serve(
        Router::new()
            .route("/forgotten", get(forgotten))
            .nest("/strict", strict),
    );
    assert_eq!(status(&app, "/forgotten", None).await, StatusCode::OK);
    assert_eq!(
        status(&app, "/strict/forgotten", None).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_refusal_is_logged_once_as_an_unmarked_route() {
    let capture = Capture::start();
    let app = serve(routes().deny_by_default());
    status(&app, "/t/acme/forgotten", Some("carol")).await;
    let events = capture.refusals();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].fields["cause"],
        "route has no requirement (deny by default)"
    );
}

/// A fallback (what answers a path no route matches) is a route like any other: a
/// deny-by-default router refuses it unless marked or covered, and the coverage report lists
/// it. A `layer` covers it, a `route_layer` does not (as axum applies them).
#[tokio::test]
async fn a_fallback_is_refused_unless_marked_and_is_reported() {
    use rbac_axum::coverage::Status;
    use rbac_axum::routing::any;

    let forgotten_fallback = serve(
        Router::new()
            .route("/open", get(open))
            .fallback(any(forgotten))
            .deny_by_default(),
    );
    let reply = get_req("/nowhere")
        .user("alice")
        .send(&forgotten_fallback)
        .await;
    reply.assert_problem(StatusCode::FORBIDDEN);
    let open_fallback = serve(Router::new().fallback(any(open)).deny_by_default());
    let reply = get_req("/nowhere").send(&open_fallback).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "open")
    );

    let status_of = |router: Router| {
        let report = router.coverage();
        let fallback = report.routes.iter().find(|r| r.path == "(fallback)");
        fallback.map(|r| r.status)
    };
    assert_eq!(
        status_of(Router::new().fallback(any(forgotten))),
        Some(Status::Unprotected)
    );
    assert_eq!(
        status_of(Router::new().fallback(any(open))),
        Some(Status::Public)
    );
    assert_eq!(
        status_of(
            Router::new()
                .fallback(any(forgotten))
                .layer(require("finance.accounts.read"))
        ),
        Some(Status::Protected)
    );
    assert_eq!(
        status_of(
            Router::new()
                .route("/open", get(open))
                .fallback(any(forgotten))
                .route_layer(require("finance.accounts.read"))
        ),
        Some(Status::Unprotected)
    );
    // Nested fallbacks keep their prefixes (and modules by path), and stay when the outer
    // router sets its own.
    let inner: Router = Router::new()
        .nest("/b", Router::new().fallback(any(forgotten)))
        .fallback(any(open));
    let nested: Router = Router::new().nest("/a", inner).fallback(any(open));
    let options = rbac_axum::coverage::CoverageOptions::default().module_for_path("/a", "alpha");
    let report = nested.coverage_with(&options);
    let paths: Vec<(&str, Option<&str>)> = report
        .routes
        .iter()
        .map(|r| (r.path.as_str(), r.module.as_deref()))
        .collect();
    assert_eq!(
        paths,
        [
            ("(fallback)", None),
            ("/a (fallback)", Some("alpha")),
            ("/a/b (fallback)", Some("alpha"))
        ]
    );
    // axum carries a nested router's fallbacks over only when it has one of its own: here
    // `/a/b/x` reaches the outer router's (default) fallback, and nothing is reported.
    let bare: Router = Router::new().nest(
        "/a",
        Router::new().nest("/b", Router::new().fallback(any(forgotten))),
    );
    assert!(
        bare.coverage().routes.is_empty(),
        "{:?}",
        bare.coverage().routes
    );
    // A fallback with no handler is still one of its own: axum carries the nested ones.
    let carried: Router = Router::new().nest(
        "/a",
        Router::new()
            .nest("/b", Router::new().fallback(any(forgotten)))
            .fallback(rbac_axum::routing::MethodRouter::new()),
    );
    let paths: Vec<String> = carried
        .coverage()
        .routes
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["/a/b (fallback)"]);
    let app = serve(bare.deny_by_default());
    assert_eq!(
        get_req("/a/b/x").user("alice").send(&app).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Services nested under a prefix or answering as the fallback are as opaque as
/// `route_service`: reported `unresolved` (`PREFIX/…`, `(fallback)`), refused by a
/// deny-by-default router, and served once a layer covers them.
#[tokio::test]
async fn nested_and_fallback_services_are_refused_unless_covered() {
    use rbac_axum::coverage::Status;

    let services = || {
        Router::new()
            .route("/open", get(open))
            .nest_service("/assets/", service())
            .fallback_service(service())
    };
    let report = services().coverage();
    let unresolved: Vec<(&str, &str)> = report
        .routes
        .iter()
        .filter(|r| r.status == Status::Unresolved)
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(unresolved, [("ANY", "(fallback)"), ("ANY", "/assets/…")]);

    let app = serve(services().deny_by_default());
    for uri in ["/assets", "/assets/app.js", "/nowhere"] {
        let reply = get_req(uri).user("carol").send(&app).await;
        reply.assert_problem(StatusCode::FORBIDDEN);
    }
    assert_eq!(status(&app, "/open", None).await, StatusCode::OK);

    // A layer covers both: carol holds the permission everywhere, alice only in acme.
    let covered = services()
        .layer(require("finance.accounts.read"))
        .deny_by_default();
    assert!(
        covered
            .coverage()
            .routes
            .iter()
            .all(|r| r.status != Status::Unresolved)
    );
    // Global scope: these paths name no tenant.
    let app = covered
        .into_inner()
        .layer(RbacLayer::new(engine()).trusted_header(TrustedHeader::x_user_id()));
    for uri in ["/assets/app.js", "/nowhere"] {
        let reply = get_req(uri).user("carol").send(&app).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "service"),
            "{uri}"
        );
        assert_eq!(
            status(&app, uri, Some("alice")).await,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
    }

    // A later fallback service replaces the fallback, not the nested one.
    let nested: Router = Router::new().nest("/a", Router::new().fallback_service(service()));
    let paths: Vec<String> = nested
        .fallback_service(service())
        .coverage()
        .routes
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["(fallback)", "/a (fallback)"]);
}
