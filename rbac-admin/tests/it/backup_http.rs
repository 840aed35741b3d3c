//! The backup HTTP routes, driven with `tower::ServiceExt::oneshot` against a real SQLite
//! application database and a real backup directory.

use crate::backup_support;

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use rbac_admin::backup::http::{BackupApi, router};
use rbac_admin::backup::schedule::ScheduleStore;
use rbac_axum::{RbacLayer, TenantSource, TrustedHeader};
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    app: axum::Router,
    _env: backup_support::Env,
}

async fn app(tenant: TenantSource) -> App {
    let env = backup_support::Env::new(10);
    let service = Arc::new(env.service());
    let schedules = ScheduleStore::connect(&format!("sqlite://{}", env.db.display()))
        .await
        .unwrap();
    let api = BackupApi::new(service, schedules, Arc::new(backup_support::engine()));
    let routes = router(api);
    // Every route is protected: the coverage report proves it.
    rbac_axum::assert_coverage(&routes, 100.0);
    let app = routes.into_inner().layer(
        RbacLayer::new(backup_support::engine())
            .trusted_header(TrustedHeader::x_user_id())
            .tenant(tenant),
    );
    App { app, _env: env }
}

impl App {
    async fn get(&self, uri: &str, user: Option<&str>) -> (StatusCode, Value, Vec<u8>) {
        call(self, Method::GET, uri, user, None, None).await
    }

    async fn delete(&self, uri: &str, user: Option<&str>) -> (StatusCode, Value, Vec<u8>) {
        call(self, Method::DELETE, uri, user, None, None).await
    }

    async fn post(
        &self,
        uri: &str,
        user: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value, Vec<u8>) {
        call(self, Method::POST, uri, user, None, Some(body)).await
    }
}

async fn call(
    app: &App,
    method: Method,
    uri: &str,
    user: Option<&str>,
    tenant: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(user) = user {
        request = request.header("x-user-id", user);
    }
    if let Some(tenant) = tenant {
        request = request.header("x-tenant-id", tenant);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 26)
        .await
        .unwrap()
        .to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_for_an_operator_and_is_refused_otherwise() {
    let app = app(TenantSource::Global).await;
    let ops = Some("ops");

    let (status, made, _) = app.post("/backups", ops, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["kind"], "full");
    assert_eq!(made["scope"], "all");
    let id = made["id"].as_str().unwrap().to_owned();

    let (status, list, _) = app.get("/backups", ops).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["id"], id.as_str());
    let (status, manifest, _) = app.get(&format!("/backups/{id}"), ops).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manifest["id"], id.as_str());
    assert!(manifest["tables"].as_array().unwrap().len() >= 4);

    let (status, report, _) = call(
        &app,
        Method::POST,
        &format!("/backups/{id}/verify"),
        ops,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["id"], id.as_str());
    let (status, report, _) = call(
        &app,
        Method::POST,
        &format!("/backups/{id}/restore"),
        ops,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["dry_run"], true,
        "a restore without a body is a dry run"
    );
    let (status, report, _) = app
        .post(
            &format!("/backups/{id}/restore"),
            ops,
            json!({"dry_run": true, "tenant": "acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");

    let (status, _, archive) = app.get(&format!("/backups/{id}/download"), ops).await;
    assert_eq!(status, StatusCode::OK);
    assert!(archive.len() > 1024, "a tar archive");
    assert_eq!(&archive[257..262], b"ustar", "a tar archive");
    // Streamed piece by piece, it is still one well-formed archive of every stored object.
    let mut entries = tar::Archive::new(&archive[..]);
    let mut names = Vec::new();
    for entry in entries.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("/manifest.json") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            let stored: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(stored["manifest"]["id"], id.as_str());
        }
        names.push(name);
    }
    assert!(
        names
            .iter()
            .any(|n| n == &format!("{id}/chunks/000000.bin")),
        "{names:?}"
    );
    assert_eq!(names.last().unwrap(), &format!("{id}/manifest.json"));

    let (status, logs, _) = app.get("/backups/logs?status=success&limit=10", ops).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    assert!(!logs.as_array().unwrap().is_empty());
    let (status, _, _) = app.get("/backups/logs?status=bogus", ops).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Refusals: no identity, a reader creating or deleting, an unknown subject.
    let (status, _, _) = app.get("/backups", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = app.post("/backups", Some("auditor"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.delete(&format!("/backups/{id}"), Some("auditor")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.get("/backups", Some("mallory")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list, _) = app.get("/backups", Some("auditor")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["id"], id.as_str());

    // Ids are validated before anything is read.
    for bad in [
        "..%2F..%2Fetc%2Fpasswd",
        "not-an-id",
        "20261123T020000Z-0A1B2C3D",
        "%2E%2E",
    ] {
        let (status, problem, _) = app.get(&format!("/backups/{bad}"), ops).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("invalid backup id"),
            "{problem}"
        );
    }
    let (status, _, _) = app.get("/backups/20991231T000000Z-00000000", ops).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, _) = app.delete(&format!("/backups/{id}"), ops).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get(&format!("/backups/{id}"), ops).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_reaches_only_their_tenant() {
    let app = app(TenantSource::header(axum::http::HeaderName::from_static(
        "x-tenant-id",
    )))
    .await;
    let alice = Some("alice");
    let (status, made, _) = call(
        &app,
        Method::POST,
        "/backups",
        alice,
        Some("acme"),
        Some(json!({"scope": "tenant:acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["scope"], "tenant:acme");
    // The route guard passes in acme, the library refuses any other scope.
    for scope in ["all", "tenant:globex", "modules:finance"] {
        let (status, _, _) = call(
            &app,
            Method::POST,
            "/backups",
            alice,
            Some("acme"),
            Some(json!({"scope": scope})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scope}");
    }
    // In globex the guard itself refuses.
    let (status, _, _) = call(
        &app,
        Method::POST,
        "/backups",
        alice,
        Some("globex"),
        Some(json!({"scope": "tenant:globex"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Alice holds no delete: her own tenant's backup stays.
    let id = made["id"].as_str().unwrap();
    let (status, _, _) = call(
        &app,
        Method::DELETE,
        &format!("/backups/{id}"),
        alice,
        Some("acme"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list, _) = call(&app, Method::GET, "/backups", alice, Some("acme"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_managed_over_http() {
    let app = app(TenantSource::Global).await;
    let ops = Some("ops");
    let body = json!({"name": "nightly", "cron": "0 2 * * *", "time_zone": "Europe/Berlin",
                      "kind": "full", "scope": "all", "retention": "daily=7,weekly=4"});
    let (status, s, _) = app.post("/backups/schedules", ops, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["name"], "nightly");
    assert_eq!(s["created_by"], "ops");
    assert_eq!(s["active"], true);
    let (status, _, _) = app.post("/backups/schedules", ops, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, problem, _) = app
        .post(
            "/backups/schedules",
            ops,
            json!({"name": "x", "cron": "every day"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("invalid cron expression"),
        "{problem}"
    );
    let (status, _, _) = app
        .post(
            "/backups/schedules",
            ops,
            json!({"name": "x", "cron": "0 2 * * *", "retention": "forever"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app
        .post(
            "/backups/schedules",
            Some("auditor"),
            json!({"name": "y", "cron": "0 2 * * *"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, list, _) = app.get("/backups/schedules", Some("auditor")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["retention"]["weekly"], 4);

    for bad in ["..%2Fnightly", "a%20b", "%2E%2E"] {
        let (status, _, _) = app.delete(&format!("/backups/schedules/{bad}"), ops).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _, _) = app
        .delete("/backups/schedules/nightly", Some("auditor"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.delete("/backups/schedules/nightly", ops).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.delete("/backups/schedules/nightly", ops).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
