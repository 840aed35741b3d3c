//! Row and field policies in handlers: the `Rows<R>` and `Caller` extractors push the caller's
//! filter into a real SQLite query, `Redacted` strips unreadable fields, writes naming a
//! forbidden field are refused, and a missing configuration denies.

use std::str::FromStr;

use axum::extract::{Extension, Json};
use axum::routing::{get, patch};
use http::{Method, StatusCode};
use rbac_axum::rbac_core::resource::SubjectAttributes;
use rbac_axum::rbac_core::store::{ChangeContext, LiveOptions, Store};
use rbac_axum::rbac_core::{Engine, Policy};
use rbac_axum::rows::{Caller, Redacted, RowPolicies, RowResource, Rows, RowsRejection};
use rbac_axum::{Jwt, JwtKeys, KeySet, Principal, RbacLayer, TenantSource, TrustedHeader};
use serde_json::{Value, json};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::support::{SECRET, call, get as get_req, token_for};

const POLICY: &str = r#"
[resources.invoices]
table = "invoices"
tenant_column = "tenant_id"
[resources.invoices.columns]
id = "int"
created_by = "text"
department_id = "int"
status = "text"
amount = "int"

[roles.user.rows]
invoices = "created_by = subject.id"
[roles.user.fields.invoices]
read_deny = ["amount"]
write = ["status"]
[roles.manager]
inherits = ["user"]
[roles.manager.rows]
invoices = "department_id in subject.departments"

[tenants.acme]
[tenants.globex]
[subjects.alice.tenants]
acme = ["user"]
[subjects.mia.tenants]
acme = ["manager"]
"#;

struct Invoices;
impl RowResource for Invoices {
    const NAME: &'static str = "invoices";
}

struct Bills;
impl RowResource for Bills {
    const NAME: &'static str = "bills";
}

async fn list(rows: Rows<Invoices>, Extension(pool): Extension<SqlitePool>) -> Redacted {
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT id, created_by, department_id, status, amount FROM invoices WHERE ",
    );
    rows.filter().push_sql(&mut query);
    query.push(" ORDER BY id");
    let records: Vec<Value> = query
        .build()
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<i64, _>(0),
                "created_by": r.get::<String, _>(1),
                "department_id": r.get::<i64, _>(2),
                "status": r.get::<String, _>(3),
                "amount": r.get::<i64, _>(4),
            })
        })
        .collect();
    rows.caller().redacted("invoices", records)
}

async fn update(caller: Caller, Json(body): Json<Value>) -> Result<&'static str, RowsRejection> {
    caller.check_write("invoices", &body)?;
    Ok("updated")
}

async fn bills(_rows: Rows<Bills>) -> &'static str {
    "never"
}

async fn pool() -> SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
    let pool = sqlx::pool::PoolOptions::<Sqlite>::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, created_by TEXT, \
         department_id INTEGER, status TEXT, amount INTEGER)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO invoices VALUES (1, 'acme', 'alice', 1, 'open', 100), \
         (2, 'acme', 'bob', 7, 'open', 200), (3, 'globex', 'alice', 7, 'open', 300), \
         (4, 'acme', 'mia', 2, 'paid', 400)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

async fn app(with_policies: bool) -> axum::Router {
    let engine = std::sync::Arc::new(Engine::new(&Policy::from_toml_str(POLICY).unwrap()));
    let keys = JwtKeys::new(
        KeySet::new().with_key("k1", rbac_axum::jwt::DecodingKey::from_secret(SECRET)),
    );
    let router = axum::Router::new()
        .route("/t/{tenant}/invoices", get(list))
        .route("/t/{tenant}/invoices/{id}", patch(update))
        .route("/t/{tenant}/bills", get(bills))
        .layer(Extension(pool().await));
    let router = if with_policies {
        // Attributes from the token's claims; a trusted-header caller gets `departments` from
        // this closure (a user directory in a real application).
        let policies = RowPolicies::new(engine.clone()).attributes(|p: &Principal| {
            let from_claims = SubjectAttributes::from_claims(p.subject.clone(), &p.claims);
            if p.claims.is_empty() && p.subject == "mia" {
                from_claims.with_list("departments", [7])
            } else {
                from_claims
            }
        });
        router.layer(Extension(policies))
    } else {
        router
    };
    router.layer(
        RbacLayer::new(engine)
            .jwt(Jwt::new(jsonwebtoken::Algorithm::HS256, keys))
            .trusted_header(TrustedHeader::x_user_id())
            .tenant(TenantSource::path("tenant")),
    )
}

#[tokio::test]
async fn lists_only_the_callers_rows_of_the_tenant_redacted() {
    let app = app(true).await;
    let reply = get_req("/t/acme/invoices").user("alice").send(&app).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!([{"id": 1, "created_by": "alice", "department_id": 1, "status": "open"}])
    );
    // mia (manager, inherits user): her department's rows and her own.
    let reply = get_req("/t/acme/invoices").user("mia").send(&app).await;
    let ids: Vec<i64> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 4]);
    // globex: alice holds no role there, so no rows even though row 3 is hers.
    let reply = get_req("/t/globex/invoices").user("alice").send(&app).await;
    assert_eq!(reply.json(), json!([]));
}

#[tokio::test]
async fn attributes_come_from_token_claims() {
    let app = app(true).await;
    let token = token_for("mia", json!({"departments": [1]}));
    let reply = get_req("/t/acme/invoices").bearer(&token).send(&app).await;
    let ids: Vec<i64> = reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 4]);
}

#[tokio::test]
async fn writes_naming_a_forbidden_field_are_refused() {
    let app = app(true).await;
    let reply = call(Method::PATCH, "/t/acme/invoices/1")
        .user("alice")
        .json_body(r#"{"status": "paid"}"#)
        .send(&app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = call(Method::PATCH, "/t/acme/invoices/1")
        .user("alice")
        .json_body(r#"{"status": "paid", "amount": 1}"#)
        .send(&app)
        .await;
    let detail = reply.assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(detail, "you may not write the field `amount`");
}

#[tokio::test]
async fn misconfiguration_and_unknown_callers_deny() {
    let app = app(false).await;
    let reply = get_req("/t/acme/invoices").user("alice").send(&app).await;
    reply.assert_problem(StatusCode::INTERNAL_SERVER_ERROR);
    let app = self::app(true).await;
    get_req("/t/acme/bills")
        .user("alice")
        .send(&app)
        .await
        .assert_problem(StatusCode::INTERNAL_SERVER_ERROR);
    get_req("/t/acme/invoices")
        .send(&app)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    // Unknown subject: authenticated, but no roles, so no rows.
    let reply = get_req("/t/acme/invoices").user("ghost").send(&app).await;
    assert_eq!(reply.json(), json!([]));
}

/// A live engine whose policy is staler than its limit denies every check; row and field
/// policies are refused too (503), never answered from the old snapshot, on routes that take
/// a `Caller` or `Rows` without a permission guard as on any other.
#[tokio::test]
async fn a_stale_live_engine_refuses_rows_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/policy.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    store
        .import(
            &ChangeContext::new("tests"),
            &Policy::from_toml_str(POLICY).unwrap(),
        )
        .await
        .unwrap();
    let live = std::sync::Arc::new(
        store
            .live_engine(LiveOptions {
                poll_interval: std::time::Duration::from_millis(20),
                deny_when_stale_for: Some(std::time::Duration::from_millis(100)),
                ..LiveOptions::default()
            })
            .await
            .unwrap(),
    );
    let app = axum::Router::new()
        .route("/t/{tenant}/invoices", get(list))
        .route("/t/{tenant}/invoices/{id}", patch(update))
        .layer(Extension(pool().await))
        .layer(Extension(RowPolicies::new(live.clone())))
        .layer(
            RbacLayer::new(live.clone())
                .trusted_header(TrustedHeader::x_user_id())
                .tenant(TenantSource::path("tenant")),
        );
    let reply = get_req("/t/acme/invoices").user("alice").send(&app).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // The store stops answering: polls fail from now on.
    let other = SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM rbac_meta WHERE key = 'policy_version'")
        .execute(&other)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while !live.is_denying() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "never failed closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    get_req("/t/acme/invoices")
        .user("alice")
        .send(&app)
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    call(Method::PATCH, "/t/acme/invoices/1")
        .user("alice")
        .json_body(r#"{"status": "paid"}"#)
        .send(&app)
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE);
}
