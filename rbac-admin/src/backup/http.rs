//! The backup module over HTTP: an [`rbac_axum::Router`] (deny by default, every route
//! protected with `#[require_permission]`, so it shows in the coverage report) calling the
//! same library functions as the CLI.
//!
//! | route | permission | body / answer |
//! |---|---|---|
//! | `POST /backups` | `system.backup.create` | `{"kind": "full", "scope": "all"}` → 201, the summary |
//! | `GET /backups` | `system.backup.read` | the backups the caller may read |
//! | `GET /backups/{id}` | `system.backup.read` | the manifest |
//! | `GET /backups/{id}/download` | `system.backup.download` | one tar archive |
//! | `POST /backups/{id}/verify` | `system.backup.verify` | `{"deep": false}` → the report |
//! | `POST /backups/{id}/restore` | `system.backup.restore` | `{"dry_run": true, "tables": [], "modules": [], "tenant": null}` → the report |
//! | `DELETE /backups/{id}` | `system.backup.delete` | 204 |
//! | `GET /backups/logs` | `system.backup.read` | `?status=&operation=&limit=` → the log |
//! | `GET /backups/schedules` | `system.backup.read` | the schedules the caller may read |
//! | `POST /backups/schedules` | `system.backup.schedule` | `{"name", "cron", "time_zone", "kind", "scope", "retention"}` → 201 |
//! | `DELETE /backups/schedules/{id}` | `system.backup.schedule` | 204 |
//!
//! Two checks guard each operation. The route attribute decides the permission in the
//! request's tenant, as the application's [`rbac_axum::RbacLayer`] resolves it (with
//! `TenantSource::Global`, only global grants pass; with a header or claim source, a tenant
//! admin passes in their tenant). The library then checks the permission for the backup's
//! scope (a tenant grant covers exactly `tenant:T`). Either refusal is a 403.
//!
//! Ids are validated before anything is read: a backup id has the strict
//! `YYYYMMDDTHHMMSSZ-xxxxxxxx` shape and a schedule is named by its number or a name of
//! letters, digits, `-`, `_` and `.`, so no id can reach a path outside the backup location
//! (400 otherwise). A restore's `dry_run` defaults to `true`, and a restore over HTTP always
//! targets the configured database (no `to` URL from a request). Errors are
//! `application/problem+json`; server-side failures are logged with their reason and answered
//! with a generic 500.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rbac_axum::Principal;
use rbac_axum::routing::{delete, get, post};
use serde::Deserialize;

use super::model::{BackupError, BackupId, BackupKind, Operation, Scope};
use super::retention::RetentionPolicy;
use super::schedule::{JobKind, NewSchedule, Schedule, ScheduleError, ScheduleStore};
use super::{
    Actor, Authorizer, BackupService, CreateRequest, LogQuery, NoProgress, RestoreRequest,
    Selector, Status,
};

/// What the routes work with: the backup service, the schedule store and the decision source
/// the library checks scopes with (usually the same engine the `RbacLayer` holds).
#[derive(Clone)]
pub struct BackupApi {
    service: Arc<BackupService>,
    schedules: ScheduleStore,
    authorizer: Arc<dyn Authorizer>,
}

impl std::fmt::Debug for BackupApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupApi").finish_non_exhaustive()
    }
}

impl BackupApi {
    /// The routes' state.
    pub fn new(
        service: Arc<BackupService>,
        schedules: ScheduleStore,
        authorizer: Arc<dyn Authorizer>,
    ) -> BackupApi {
        BackupApi {
            service,
            schedules,
            authorizer,
        }
    }
}

/// The backup routes, deny by default, ready to be merged into an application (which adds
/// its `RbacLayer`).
pub fn router(api: BackupApi) -> rbac_axum::Router {
    rbac_axum::Router::new()
        .route("/backups", post(create).get(list))
        .route("/backups/logs", get(logs))
        .route("/backups/schedules", get(list_schedules).post(add_schedule))
        .route("/backups/schedules/{id}", delete(remove_schedule))
        .route("/backups/{id}", get(show).delete(remove))
        .route("/backups/{id}/download", get(download))
        .route("/backups/{id}/verify", post(verify))
        .route("/backups/{id}/restore", post(restore))
        .deny_by_default()
        .with_state(api)
}

/// An HTTP error: a status and a message safe to show.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.0.canonical_reason().unwrap_or("Error"),
            "status": self.0.as_u16(),
            "detail": self.1,
        });
        (
            self.0,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<BackupError> for Problem {
    fn from(e: BackupError) -> Problem {
        let status = match &e {
            BackupError::Denied { .. } => StatusCode::FORBIDDEN,
            BackupError::InvalidId(_) | BackupError::InvalidInput(_) | BackupError::Schema(_) => {
                StatusCode::BAD_REQUEST
            }
            BackupError::NotFound(_) | BackupError::NoMatch(_) => StatusCode::NOT_FOUND,
            BackupError::Busy(_) | BackupError::NeedsFull(_) => StatusCode::CONFLICT,
            BackupError::Key(_)
            | BackupError::CorruptChunk { .. }
            | BackupError::CorruptManifest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::FORBIDDEN {
            // Like the guards: a refusal does not say what is missing.
            return Problem(status, "the caller may not do this".into());
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(target: "rbac::backup", error = %e, "backup request failed");
            return Problem(
                status,
                "the backup operation failed; the server log has the reason".into(),
            );
        }
        Problem(status, e.to_string())
    }
}

impl From<ScheduleError> for Problem {
    fn from(e: ScheduleError) -> Problem {
        match e {
            ScheduleError::NotFound(_) => Problem(StatusCode::NOT_FOUND, e.to_string()),
            ScheduleError::Duplicate(_) => Problem(StatusCode::CONFLICT, e.to_string()),
            ScheduleError::Scope(b) => b.into(),
            ScheduleError::Database(_) | ScheduleError::UnsupportedUrl(_) => {
                tracing::error!(target: "rbac::backup", error = %e, "schedule request failed");
                Problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the schedule operation failed; the server log has the reason".into(),
                )
            }
            other => Problem(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

type Answer = Result<Response, Problem>;

fn backup_id(raw: &str) -> Result<BackupId, Problem> {
    raw.parse().map_err(Problem::from)
}

fn schedule_key(raw: &str) -> Result<&str, Problem> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && raw != "."
        && raw != "..";
    if ok {
        Ok(raw)
    } else {
        Err(Problem(
            StatusCode::BAD_REQUEST,
            "invalid schedule id: use its number or name (letters, digits, `-`, `_`, `.`)".into(),
        ))
    }
}

fn actor<'a>(api: &'a BackupApi, who: &'a Principal) -> Actor<'a> {
    Actor::new(&who.subject, &*api.authorizer)
}

/// `POST /backups` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default = "full")]
    kind: BackupKind,
    #[serde(default = "all")]
    scope: Scope,
}

fn full() -> BackupKind {
    BackupKind::Full
}

fn all() -> Scope {
    Scope::All
}

#[rbac_axum::require_permission("system.backup.create")]
async fn create(
    State(api): State<BackupApi>,
    who: Principal,
    Json(body): Json<CreateBody>,
) -> Answer {
    let request = CreateRequest {
        kind: body.kind,
        scope: body.scope,
    };
    let m = super::create(&api.service, &request, &actor(&api, &who), &NoProgress).await?;
    Ok((StatusCode::CREATED, Json(m.summary())).into_response())
}

#[rbac_axum::require_permission("system.backup.read")]
async fn list(State(api): State<BackupApi>, who: Principal) -> Answer {
    Ok(Json(api.service.list(&actor(&api, &who)).await?).into_response())
}

#[rbac_axum::require_permission("system.backup.read")]
async fn show(State(api): State<BackupApi>, who: Principal, Path(id): Path<String>) -> Answer {
    let id = backup_id(&id)?;
    Ok(Json(api.service.show(&actor(&api, &who), &id).await?).into_response())
}

#[rbac_axum::require_permission("system.backup.download")]
async fn download(State(api): State<BackupApi>, who: Principal, Path(id): Path<String>) -> Answer {
    let id = backup_id(&id)?;
    // Streamed: one stored object (a chunk of a few MiB) in memory at a time.
    let (length, stream) = api
        .service
        .clone()
        .download_stream(&actor(&api, &who), &id)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.tar\""),
            ),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /backups/{id}/verify` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    #[serde(default)]
    deep: bool,
}

#[rbac_axum::require_permission("system.backup.verify")]
async fn verify(
    State(api): State<BackupApi>,
    who: Principal,
    Path(id): Path<String>,
    body: Option<Json<VerifyBody>>,
) -> Answer {
    let id = backup_id(&id)?;
    let deep = body.map(|Json(b)| b.deep).unwrap_or_default();
    let report = api
        .service
        .verify(&actor(&api, &who), &id, deep, &NoProgress)
        .await?;
    Ok(Json(report).into_response())
}

/// `POST /backups/{id}/restore` body (optional: a dry run of everything by default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    modules: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
}

fn yes() -> bool {
    true
}

#[rbac_axum::require_permission("system.backup.restore")]
async fn restore(
    State(api): State<BackupApi>,
    who: Principal,
    Path(id): Path<String>,
    body: Option<Json<RestoreBody>>,
) -> Answer {
    let id = backup_id(&id)?;
    let body = body.map(|Json(b)| b).unwrap_or(RestoreBody {
        dry_run: true,
        tables: Vec::new(),
        modules: Vec::new(),
        tenant: None,
    });
    let request = RestoreRequest {
        from: Selector::Id(id),
        tables: body.tables,
        modules: body.modules,
        tenant: body.tenant,
        to: None,
        dry_run: body.dry_run,
    };
    let report = api
        .service
        .restore(&request, &actor(&api, &who), &NoProgress)
        .await?;
    Ok(Json(report).into_response())
}

#[rbac_axum::require_permission("system.backup.delete")]
async fn remove(State(api): State<BackupApi>, who: Principal, Path(id): Path<String>) -> Answer {
    let id = backup_id(&id)?;
    api.service.delete(&actor(&api, &who), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /backups/logs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogParams {
    status: Option<Status>,
    operation: Option<String>,
    limit: Option<u32>,
}

#[rbac_axum::require_permission("system.backup.read")]
async fn logs(State(api): State<BackupApi>, who: Principal, Query(q): Query<LogParams>) -> Answer {
    let query = LogQuery {
        operation: q.operation,
        status: q.status,
        backup_id: None,
        limit: q.limit.map(|l| l.min(1000)),
        ..LogQuery::default()
    };
    Ok(Json(api.service.logs(&actor(&api, &who), &query).await?).into_response())
}

#[rbac_axum::require_permission("system.backup.read")]
async fn list_schedules(State(api): State<BackupApi>, who: Principal) -> Answer {
    let actor = actor(&api, &who);
    let global = actor.may(Operation::Read, &Scope::All);
    let visible: Vec<Schedule> = api
        .schedules
        .list()
        .await?
        .into_iter()
        .filter(|s| global || actor.may(Operation::Read, &s.scope))
        .collect();
    Ok(Json(visible).into_response())
}

/// `POST /backups/schedules` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    name: String,
    cron: String,
    #[serde(default = "utc")]
    time_zone: String,
    #[serde(default = "full_job")]
    kind: JobKind,
    #[serde(default = "all")]
    scope: Scope,
    #[serde(default)]
    retention: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

fn full_job() -> JobKind {
    JobKind::Full
}

#[rbac_axum::require_permission("system.backup.schedule")]
async fn add_schedule(
    State(api): State<BackupApi>,
    who: Principal,
    Json(body): Json<ScheduleBody>,
) -> Answer {
    actor(&api, &who).require(Operation::Schedule, &body.scope)?;
    let retention: Option<RetentionPolicy> = body
        .retention
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(ScheduleError::from)?;
    let new = NewSchedule {
        name: body.name,
        cron: body.cron,
        time_zone: body.time_zone,
        kind: body.kind,
        scope: body.scope,
        retention,
        created_by: who.subject.clone(),
    };
    let s = api.schedules.add(&new, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

#[rbac_axum::require_permission("system.backup.schedule")]
async fn remove_schedule(
    State(api): State<BackupApi>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer {
    let key = schedule_key(&id)?;
    let s = api.schedules.get(key).await?;
    actor(&api, &who).require(Operation::Schedule, &s.scope)?;
    api.schedules.remove(&s.id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
