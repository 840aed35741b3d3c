//! Refusals. Each type has a fixed status, an `application/problem+json` body that says what the
//! client can do and nothing about the policy, and emits one `tracing` event (target
//! `rbac::http`) when it becomes a response.

use std::borrow::Cow;
use std::fmt;

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use rbac_core::Cause;

use crate::requirement::Requirement;

const PROBLEM_JSON: &str = "application/problem+json";

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body.to_string(),
    )
        .into_response()
}

/// Where a refusal happened, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Origin {
    method: Option<Method>,
    path: String,
}

impl Origin {
    fn of(parts: &Parts) -> Origin {
        Origin {
            method: Some(parts.method.clone()),
            path: parts.uri.path().to_owned(),
        }
    }

    fn method(&self) -> &str {
        self.method.as_ref().map_or("", Method::as_str)
    }
}

/// Why a request is unauthenticated, as far as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnauthenticatedKind {
    /// No credentials of any configured kind.
    Missing,
    /// Credentials that do not verify (bad signature, wrong algorithm, audience, issuer, key id,
    /// not yet valid, malformed).
    Invalid,
    /// A token past its `exp`.
    Expired,
}

/// 401: no valid identity. Sent with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthenticated {
    kind: UnauthenticatedKind,
    reason: Cow<'static, str>,
    origin: Origin,
}

impl Unauthenticated {
    /// The status of every `Unauthenticated`.
    pub const STATUS: StatusCode = StatusCode::UNAUTHORIZED;

    /// No credentials were presented.
    pub fn missing() -> Unauthenticated {
        Unauthenticated::new(UnauthenticatedKind::Missing, "no credentials")
    }

    /// Credentials were presented and refused. `reason` goes to the log, never to the client.
    pub fn invalid(reason: impl Into<Cow<'static, str>>) -> Unauthenticated {
        Unauthenticated::new(UnauthenticatedKind::Invalid, reason)
    }

    /// The token has expired.
    pub fn expired() -> Unauthenticated {
        Unauthenticated::new(UnauthenticatedKind::Expired, "token expired")
    }

    fn new(kind: UnauthenticatedKind, reason: impl Into<Cow<'static, str>>) -> Unauthenticated {
        Unauthenticated {
            kind,
            reason: reason.into(),
            origin: Origin::default(),
        }
    }

    pub(crate) fn at(mut self, parts: &Parts) -> Unauthenticated {
        self.origin = Origin::of(parts);
        self
    }

    /// What the client is told.
    pub fn kind(&self) -> UnauthenticatedKind {
        self.kind
    }

    /// The reason logged.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        tracing::info!(
            target: "rbac::http",
            status = Self::STATUS.as_u16(),
            cause = %self.reason,
            method = self.origin.method(),
            path = %self.origin.path,
            "request refused: unauthenticated"
        );
        let detail = match self.kind {
            UnauthenticatedKind::Missing => "authentication is required",
            UnauthenticatedKind::Invalid => "the credentials presented are not valid",
            UnauthenticatedKind::Expired => "the token has expired; obtain a new one",
        };
        let mut response = problem(Self::STATUS, detail);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// Why a request was forbidden, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The authorizer denied the requirement.
    Decision(Cause),
    /// The route carries no requirement and its router denies by default.
    Unmarked,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::Decision(cause) => write!(f, "{cause}"),
            DenyReason::Unmarked => f.write_str("route has no requirement (deny by default)"),
        }
    }
}

/// 403: the caller is known and the decision is deny. The body names neither the requirement nor
/// the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    reason: DenyReason,
    subject: String,
    tenant: String,
    requirement: Option<Requirement>,
    origin: Origin,
}

impl Forbidden {
    /// The status of every `Forbidden`.
    pub const STATUS: StatusCode = StatusCode::FORBIDDEN;

    pub(crate) fn denied(
        cause: Cause,
        requirement: &Requirement,
        subject: &str,
        tenant: &str,
        parts: &Parts,
    ) -> Forbidden {
        Forbidden {
            reason: DenyReason::Decision(cause),
            subject: subject.to_owned(),
            tenant: tenant.to_owned(),
            requirement: Some(*requirement),
            origin: Origin::of(parts),
        }
    }

    pub(crate) fn unmarked(method: &Method, path: &str) -> Forbidden {
        Forbidden {
            reason: DenyReason::Unmarked,
            subject: String::new(),
            tenant: String::new(),
            requirement: None,
            origin: Origin {
                method: Some(method.clone()),
                path: path.to_owned(),
            },
        }
    }

    /// Why (logged, never sent).
    pub fn reason(&self) -> DenyReason {
        self.reason
    }
}

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        let requirement = self.requirement.map(|r| r.to_string()).unwrap_or_default();
        tracing::info!(
            target: "rbac::http",
            status = Self::STATUS.as_u16(),
            cause = %self.reason,
            subject = %self.subject,
            tenant = %self.tenant,
            requirement = %requirement,
            method = self.origin.method(),
            path = %self.origin.path,
            "request refused: forbidden"
        );
        problem(Self::STATUS, "you are not allowed to perform this action")
    }
}

/// Why a tenant could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantProblem {
    /// The configured source (path parameter, header, claim) is absent.
    Missing,
    /// The value is not a valid tenant name, or a header is given more than once.
    Malformed,
}

/// 400: the request's tenant is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTenant {
    problem: TenantProblem,
    source: Cow<'static, str>,
    origin: Origin,
}

impl InvalidTenant {
    /// The status of every `InvalidTenant`.
    pub const STATUS: StatusCode = StatusCode::BAD_REQUEST;

    pub(crate) fn new(problem: TenantProblem, source: String, parts: &Parts) -> InvalidTenant {
        InvalidTenant {
            problem,
            source: source.into(),
            origin: Origin::of(parts),
        }
    }

    /// Missing or malformed.
    pub fn problem(&self) -> TenantProblem {
        self.problem
    }
}

impl IntoResponse for InvalidTenant {
    fn into_response(self) -> Response {
        let cause = match self.problem {
            TenantProblem::Missing => "tenant missing",
            TenantProblem::Malformed => "tenant malformed",
        };
        tracing::info!(
            target: "rbac::http",
            status = Self::STATUS.as_u16(),
            cause,
            source = %self.source,
            method = self.origin.method(),
            path = %self.origin.path,
            "request refused: invalid tenant"
        );
        let detail = match self.problem {
            TenantProblem::Missing => "the request does not name a tenant",
            TenantProblem::Malformed => {
                "the tenant is malformed; tenant names use letters, digits and `_ - . : @ /`"
            }
        };
        problem(Self::STATUS, detail)
    }
}

/// 500: a protected route was reached without [`RbacLayer`](crate::RbacLayer) in front of it.
/// The request is refused (deny is the answer on any configuration error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotConfigured {
    origin: Origin,
}

impl NotConfigured {
    /// The status of every `NotConfigured`.
    pub const STATUS: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;

    pub(crate) fn at(parts: &Parts) -> NotConfigured {
        NotConfigured {
            origin: Origin::of(parts),
        }
    }
}

impl IntoResponse for NotConfigured {
    fn into_response(self) -> Response {
        tracing::error!(
            target: "rbac::http",
            status = Self::STATUS.as_u16(),
            cause = "no RbacLayer in front of a protected route",
            method = self.origin.method(),
            path = %self.origin.path,
            "request refused: authorization is not configured"
        );
        problem(Self::STATUS, "the server cannot authorize this request")
    }
}

/// Any refusal of the guard, the route layers and the [`Principal`](crate::Principal) extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthzRejection {
    /// 401.
    Unauthenticated(Unauthenticated),
    /// 403.
    Forbidden(Forbidden),
    /// 400.
    InvalidTenant(InvalidTenant),
    /// 500.
    NotConfigured(NotConfigured),
}

impl AuthzRejection {
    /// The status the response will have.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthzRejection::Unauthenticated(_) => Unauthenticated::STATUS,
            AuthzRejection::Forbidden(_) => Forbidden::STATUS,
            AuthzRejection::InvalidTenant(_) => InvalidTenant::STATUS,
            AuthzRejection::NotConfigured(_) => NotConfigured::STATUS,
        }
    }
}

impl IntoResponse for AuthzRejection {
    fn into_response(self) -> Response {
        match self {
            AuthzRejection::Unauthenticated(r) => r.into_response(),
            AuthzRejection::Forbidden(r) => r.into_response(),
            AuthzRejection::InvalidTenant(r) => r.into_response(),
            AuthzRejection::NotConfigured(r) => r.into_response(),
        }
    }
}

impl From<Unauthenticated> for AuthzRejection {
    fn from(r: Unauthenticated) -> Self {
        AuthzRejection::Unauthenticated(r)
    }
}

impl From<Forbidden> for AuthzRejection {
    fn from(r: Forbidden) -> Self {
        AuthzRejection::Forbidden(r)
    }
}

impl From<InvalidTenant> for AuthzRejection {
    fn from(r: InvalidTenant) -> Self {
        AuthzRejection::InvalidTenant(r)
    }
}

impl From<NotConfigured> for AuthzRejection {
    fn from(r: NotConfigured) -> Self {
        AuthzRejection::NotConfigured(r)
    }
}
