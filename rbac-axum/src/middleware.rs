//! The middleware form: `route_layer(require("finance.accounts.read"))` and its siblings.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::layer::authorize;
use crate::requirement::{Protection, Requirement};

/// Marks a request as covered by a route layer ([`require`] and siblings after they allowed it,
/// or [`public`]), for deny-by-default routers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Covered;

/// Requires the permission `permission` (a string or a [`Permission`](crate::Permission)
/// constant). Behaves exactly like `#[require_permission(...)]`: same decisions, statuses, bodies
/// and log events, and the same entry in the coverage report when added to a
/// [`Router`](crate::Router).
///
/// Apply it with `route_layer` so that it runs after routing (a path-parameter tenant is only
/// known then) and only for matched routes. It runs before the handler's extractors, so before
/// the body is read.
pub fn require(permission: impl Into<&'static str>) -> RequireLayer {
    RequireLayer::new(Requirement::Permission(permission.into()))
}

/// Requires at least one of `permissions`.
pub fn require_any(permissions: &'static [&'static str]) -> RequireLayer {
    RequireLayer::new(Requirement::Any(permissions))
}

/// Requires every one of `permissions`.
pub fn require_all(permissions: &'static [&'static str]) -> RequireLayer {
    RequireLayer::new(Requirement::All(permissions))
}

/// Requires the role `role` in the request's tenant.
pub fn require_role(role: &'static str) -> RequireLayer {
    RequireLayer::new(Requirement::Role(role))
}

/// Requires any permission of `module`.
pub fn require_module(module: &'static str) -> RequireLayer {
    RequireLayer::new(Requirement::Module(module))
}

/// Marks routes as deliberately public: they count as public in the coverage report and pass a
/// deny-by-default router. It checks nothing.
pub fn public() -> PublicLayer {
    PublicLayer
}

/// A route layer that decides a [`Requirement`]; see [`require`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequireLayer {
    requirement: Requirement,
}

impl RequireLayer {
    /// Requires `requirement`.
    pub fn new(requirement: Requirement) -> RequireLayer {
        RequireLayer { requirement }
    }

    /// What it requires.
    pub fn requirement(&self) -> Requirement {
        self.requirement
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> RequireService<S> {
        RequireService {
            inner,
            requirement: self.requirement,
        }
    }
}

/// The service of [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct RequireService<S> {
    inner: S,
    requirement: Requirement,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<Request> for RequireService<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was driven to readiness serves this request; the fresh one stays.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let requirement = self.requirement;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            if let Err(rejection) = authorize(&mut parts, &requirement).await {
                return Ok(rejection.into_response());
            }
            parts.extensions.insert(Covered);
            let response = inner.call(Request::from_parts(parts, body)).await?;
            Ok(response.into_response())
        })
    }
}

/// The layer of [`public`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublicLayer;

impl<S> Layer<S> for PublicLayer {
    type Service = PublicService<S>;

    fn layer(&self, inner: S) -> PublicService<S> {
        PublicService { inner }
    }
}

/// The service of [`PublicLayer`].
#[derive(Debug, Clone)]
pub struct PublicService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for PublicService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        request.extensions_mut().insert(Covered);
        self.inner.call(request)
    }
}

/// What a layer given to a [`Router`](crate::Router) means for coverage: found by downcasting,
/// since layers are opaque.
pub(crate) fn protection_of<L: 'static>(layer: &L) -> Option<Protection> {
    let any: &dyn std::any::Any = layer;
    if let Some(require) = any.downcast_ref::<RequireLayer>() {
        return Some(Protection::Requires(require.requirement));
    }
    any.downcast_ref::<PublicLayer>()
        .map(|_| Protection::Public)
}

/// Answers 403 for requests that reach an unmarked handler in a deny-by-default router without
/// having passed a route layer that covers them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnmarkedLayer;

impl<S> Layer<S> for UnmarkedLayer {
    type Service = UnmarkedService<S>;

    fn layer(&self, inner: S) -> UnmarkedService<S> {
        UnmarkedService { inner }
    }
}

/// Inserted by a deny-by-default [`Router`](crate::Router) into every request it routes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenyUnmarked;

#[derive(Debug, Clone)]
pub(crate) struct UnmarkedService<S> {
    inner: S,
}

impl<S> Service<Request> for UnmarkedService<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let extensions = request.extensions();
        if extensions.get::<DenyUnmarked>().is_some() && extensions.get::<Covered>().is_none() {
            let rejection =
                crate::rejection::Forbidden::unmarked(request.method(), request.uri().path());
            return Box::pin(std::future::ready(Ok(rejection.into_response())));
        }
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move { Ok(inner.call(request).await?.into_response()) })
    }
}
