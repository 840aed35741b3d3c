//! Row- and field-level policies in handlers: the [`Caller`] extractor hands a handler the
//! caller's row filter for a resource, ready to push into a sqlx query, and [`Redacted`] is a
//! JSON response with what the caller may not read removed.
//!
//! Install [`RowPolicies`] as an [`axum::Extension`] next to the [`RbacLayer`](crate::RbacLayer)
//! (which identifies the caller and the tenant):
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use rbac_axum::rows::{Caller, Redacted, RowPolicies};
//! use rbac_axum::{RbacLayer, TenantSource, TrustedHeader, rbac_core::{Engine, Policy}};
//!
//! async fn list_invoices(caller: Caller) -> Result<Redacted, rbac_axum::rows::RowsRejection> {
//!     let filter = caller.row_filter("invoices")?;
//!     let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT id, status, amount FROM invoices WHERE ");
//!     filter.push_sql(&mut query);
//!     // let rows = query.build().fetch_all(&pool).await?; … turned into JSON records:
//!     let records = serde_json::json!([{"id": 1, "status": "open", "amount": 10}]);
//!     Ok(caller.redacted("invoices", records))
//! }
//!
//! # let policy = Policy::from_toml_str("")?;
//! let engine = std::sync::Arc::new(Engine::new(&policy));
//! let app: Router = Router::new()
//!     .route("/t/{tenant}/invoices", get(list_invoices))
//!     .layer(Extension(RowPolicies::new(engine.clone())))
//!     .layer(RbacLayer::new(engine).trusted_header(TrustedHeader::x_user_id()).tenant(TenantSource::path("tenant")));
//! # Ok::<(), rbac_axum::rbac_core::PolicyError>(())
//! ```
//!
//! Subject attributes (`subject.departments` in a filter) come from an [`AttributeSource`];
//! the default, [`ClaimAttributes`], takes them from the caller's token claims.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use rbac_core::fields::{FieldError, FieldMask};
use rbac_core::resource::{Resource, SubjectAttributes};
use rbac_core::rows::{RowError, RowFilter};
use rbac_core::{Engine, Snapshot};

use crate::layer::Principal;
use crate::rejection::AuthzRejection;

/// Where the current policy snapshot comes from.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The snapshot to answer this request with.
    fn snapshot(&self) -> Arc<Snapshot>;

    /// Whether requests must be refused now, as checks are: a live engine whose policy is
    /// staler than its limit. [`Caller`] then refuses (503) rather than filter rows and mask
    /// fields with an old snapshot. A source that wraps a live engine must forward it: the
    /// default, `false`, is right only for sources that are never stale.
    fn is_denying(&self) -> bool {
        false
    }
}

impl SnapshotSource for Engine {
    fn snapshot(&self) -> Arc<Snapshot> {
        Engine::snapshot(self)
    }
}

#[cfg(feature = "store")]
impl SnapshotSource for rbac_core::store::LiveEngine {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.engine().snapshot()
    }

    fn is_denying(&self) -> bool {
        rbac_core::store::LiveEngine::is_denying(self)
    }
}

impl<T: SnapshotSource + ?Sized> SnapshotSource for Arc<T> {
    fn snapshot(&self) -> Arc<Snapshot> {
        (**self).snapshot()
    }

    fn is_denying(&self) -> bool {
        (**self).is_denying()
    }
}

/// Where a caller's subject attributes come from.
pub trait AttributeSource: Send + Sync + 'static {
    /// The attributes of the caller (its id is the subject's name in the policy).
    fn attributes(&self, principal: &Principal) -> SubjectAttributes;
}

/// Attributes from the caller's token claims (strings, numbers, booleans and arrays of them);
/// see [`SubjectAttributes::from_claims`]. A caller identified by a trusted header has none.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimAttributes;

impl AttributeSource for ClaimAttributes {
    fn attributes(&self, principal: &Principal) -> SubjectAttributes {
        SubjectAttributes::from_claims(principal.subject.clone(), &principal.claims)
    }
}

impl<F> AttributeSource for F
where
    F: Fn(&Principal) -> SubjectAttributes + Send + Sync + 'static,
{
    fn attributes(&self, principal: &Principal) -> SubjectAttributes {
        self(principal)
    }
}

/// The configuration [`Caller`] reads: a snapshot source and an attribute source. Install it
/// with `.layer(axum::Extension(RowPolicies::new(engine)))`.
#[derive(Clone)]
pub struct RowPolicies {
    snapshots: Arc<dyn SnapshotSource>,
    attributes: Arc<dyn AttributeSource>,
}

impl fmt::Debug for RowPolicies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowPolicies").finish_non_exhaustive()
    }
}

impl RowPolicies {
    /// Row policies from `source` (an [`Engine`], a `LiveEngine`), attributes from claims.
    pub fn new(source: impl SnapshotSource) -> RowPolicies {
        RowPolicies {
            snapshots: Arc::new(source),
            attributes: Arc::new(ClaimAttributes),
        }
    }

    /// Takes subject attributes from `source` instead of the token claims.
    pub fn attributes(mut self, source: impl AttributeSource) -> RowPolicies {
        self.attributes = Arc::new(source);
        self
    }
}

/// Why a row or field operation refused the request.
#[derive(Debug)]
#[non_exhaustive]
pub enum RowsRejection {
    /// The caller could not be identified or its tenant resolved (401, 400, 500).
    Authz(Box<AuthzRejection>),
    /// No [`RowPolicies`] extension is installed (500; deny on a configuration error).
    NotConfigured,
    /// The policy is staler than the live engine allows, and checks are denied (503).
    Stale,
    /// The handler asked for a resource the policy does not declare (500).
    UnknownResource(RowError),
    /// The write touches a field the caller may not write (403, naming the field).
    Write(FieldError),
}

impl fmt::Display for RowsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowsRejection::Authz(r) => write!(f, "authorization refused ({})", r.status()),
            RowsRejection::NotConfigured => f.write_str("row policies are not configured"),
            RowsRejection::Stale => f.write_str("the policy is staler than allowed"),
            RowsRejection::UnknownResource(e) => write!(f, "{e}"),
            RowsRejection::Write(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RowsRejection {}

impl RowsRejection {
    /// The status the response will have.
    pub fn status(&self) -> StatusCode {
        match self {
            RowsRejection::Authz(r) => r.status(),
            RowsRejection::NotConfigured | RowsRejection::UnknownResource(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            RowsRejection::Stale => StatusCode::SERVICE_UNAVAILABLE,
            RowsRejection::Write(FieldError::NotWritable { .. }) => StatusCode::FORBIDDEN,
            RowsRejection::Write(FieldError::Row(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            RowsRejection::Write(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for RowsRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            RowsRejection::Authz(r) => (*r).into_response(),
            RowsRejection::NotConfigured | RowsRejection::UnknownResource(_) => {
                tracing::error!(target: "rbac::http", status = status.as_u16(), cause = %self,
                    "request refused: row policies misconfigured");
                problem(status, "the server cannot authorize this request")
            }
            RowsRejection::Stale => {
                tracing::warn!(target: "rbac::http", status = status.as_u16(), cause = %self,
                    "request refused: the policy is out of date");
                problem(
                    status,
                    "the authorization policy is out of date; try again later",
                )
            }
            RowsRejection::Write(ref e) => {
                tracing::info!(target: "rbac::http", status = status.as_u16(), cause = %e,
                    "write refused by a field policy");
                // The field is the client's own input, so naming it tells nothing new.
                let detail = match e {
                    FieldError::NotWritable { field, .. } => {
                        format!("you may not write the field `{field}`")
                    }
                    FieldError::UnknownField { field, .. } => format!("unknown field `{field}`"),
                    _ => "the body must be a JSON object of fields".to_owned(),
                };
                problem(status, &detail)
            }
        }
    }
}

impl From<RowError> for RowsRejection {
    fn from(e: RowError) -> Self {
        RowsRejection::UnknownResource(e)
    }
}

impl From<FieldError> for RowsRejection {
    fn from(e: FieldError) -> Self {
        RowsRejection::Write(e)
    }
}

/// The caller as row and field policies see it: subject, tenant, attributes and the policy
/// snapshot of this request (one snapshot for the whole request, even if a new policy is
/// installed meanwhile).
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Principal,
    snapshot: Arc<Snapshot>,
    attributes: SubjectAttributes,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = RowsRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state)
            .await
            .map_err(|r| RowsRejection::Authz(Box::new(r)))?;
        let Some(policies) = parts.extensions.get::<RowPolicies>().cloned() else {
            return Err(RowsRejection::NotConfigured);
        };
        if policies.snapshots.is_denying() {
            return Err(RowsRejection::Stale);
        }
        let attributes = policies.attributes.attributes(&principal);
        // The policy's subject is the authenticated one, whatever the source says.
        let attributes = if attributes.id() == principal.subject {
            attributes
        } else {
            SubjectAttributes::new(principal.subject.clone())
        };
        Ok(Caller {
            snapshot: policies.snapshots.snapshot(),
            principal,
            attributes,
        })
    }
}

impl Caller {
    /// The authenticated subject.
    pub fn subject(&self) -> &str {
        &self.principal.subject
    }

    /// The request's tenant (empty for the global scope).
    pub fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    /// The subject attributes filters see.
    pub fn attributes(&self) -> &SubjectAttributes {
        &self.attributes
    }

    /// The snapshot this request is answered with.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// The caller's row filter for `resource`: push it into a query with
    /// [`RowFilter::push_sql`], or check one row with [`RowFilter::admits`].
    ///
    /// # Errors
    /// [`RowsRejection::UnknownResource`] (a 500) if the policy declares no such resource.
    pub fn row_filter(&self, resource: &str) -> Result<RowFilter<'_>, RowsRejection> {
        Ok(self
            .snapshot
            .row_filter(&self.attributes, self.tenant(), resource)?)
    }

    /// What the caller may read and write of `resource`.
    ///
    /// # Errors
    /// [`RowsRejection::UnknownResource`] if the policy declares no such resource.
    pub fn field_mask(&self, resource: &str) -> Result<FieldMask, RowsRejection> {
        Ok(self
            .snapshot
            .field_mask(self.subject(), self.tenant(), resource)?)
    }

    /// Refuses a write body that touches a field the caller may not write (a 403 naming it).
    ///
    /// # Errors
    /// [`RowsRejection::Write`] naming the field.
    pub fn check_write(
        &self,
        resource: &str,
        body: &serde_json::Value,
    ) -> Result<(), RowsRejection> {
        Ok(self
            .snapshot
            .check_write(self.subject(), self.tenant(), resource, body)?)
    }

    /// A JSON response of `value` (records or arrays of records of `resource`) with what the
    /// caller may not read removed.
    pub fn redacted(&self, resource: &str, value: impl serde::Serialize) -> Redacted {
        let body = serde_json::to_value(value).map_err(|e| e.to_string());
        let result = body.and_then(|mut body| {
            let mask = self.field_mask(resource).map_err(|e| e.to_string())?;
            mask.redact(&mut body);
            Ok(body)
        });
        Redacted { result }
    }
}

/// A JSON response redacted for its caller; made by [`Caller::redacted`]. If the value cannot
/// be serialised or the resource is unknown, the response is a 500 and nothing is sent.
#[derive(Debug, Clone)]
pub struct Redacted {
    result: Result<serde_json::Value, String>,
}

impl Redacted {
    /// The body that will be sent, if any.
    pub fn value(&self) -> Option<&serde_json::Value> {
        self.result.as_ref().ok()
    }
}

impl IntoResponse for Redacted {
    fn into_response(self) -> Response {
        match self.result {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body.to_string(),
            )
                .into_response(),
            Err(cause) => {
                tracing::error!(target: "rbac::http", %cause, "redacted response not sent");
                problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server cannot produce this response",
                )
            }
        }
    }
}

/// A resource name known at compile time, for [`Rows`].
pub trait RowResource: Send + Sync + 'static {
    /// The resource's name in the policy.
    const NAME: &'static str;
}

/// The caller's row filter for resource `R`, as an extractor: a handler taking `Rows<Invoices>`
/// gets the filter without naming the resource again; an undeclared resource is a 500 before
/// the handler runs.
///
/// ```
/// use rbac_axum::rows::{RowResource, Rows};
/// struct Invoices;
/// impl RowResource for Invoices { const NAME: &'static str = "invoices"; }
///
/// async fn count(rows: Rows<Invoices>) -> String {
///     let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT count(*) FROM invoices WHERE ");
///     rows.filter().push_sql(&mut query);
///     query.sql().as_str().to_owned()
/// }
/// ```
pub struct Rows<R> {
    caller: Caller,
    resource: Arc<Resource>,
    _resource: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Rows<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows")
            .field("caller", &self.caller)
            .field("resource", &self.resource.name())
            .finish()
    }
}

impl<R: RowResource, S: Send + Sync> FromRequestParts<S> for Rows<R> {
    type Rejection = RowsRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let resource = caller.snapshot.resource(R::NAME)?;
        Ok(Rows {
            caller,
            resource,
            _resource: PhantomData,
        })
    }
}

impl<R: RowResource> Rows<R> {
    /// The caller's row filter for `R`.
    pub fn filter(&self) -> RowFilter<'_> {
        // The resource was found in this very snapshot when the extractor ran, so this cannot
        // fail; if it ever did, a filter admitting nothing is the deny-by-default answer.
        self.caller.row_filter(R::NAME).unwrap_or_else(|_| {
            RowFilter::nothing(
                self.resource.clone(),
                self.caller.tenant(),
                &self.caller.attributes,
            )
        })
    }

    /// The caller (for field masks, redaction and write checks).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}
