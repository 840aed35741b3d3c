//! `axum::Router` plus the list of its routes, for the coverage report and deny-by-default.

use std::any::type_name;
use std::convert::Infallible;
use std::fmt;

use axum::Extension;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::Route;
use tower::{Layer, Service};

use crate::coverage::{CoverageOptions, CoverageReport, FALLBACK, nested_path};
use crate::middleware::{DenyUnmarked, UnmarkedLayer, protection_of};
use crate::requirement::Protection;
use crate::routing::{HandlerKind, HandlerRecord, MethodRouter};

/// One route as registered: full path (nest prefixes included), method and handler.
#[derive(Debug, Clone)]
pub(crate) struct RouteEntry {
    pub(crate) path: String,
    pub(crate) handler: HandlerRecord,
}

/// An `axum::Router` that remembers its routes.
///
/// axum cannot list a router's routes, so this wrapper records each one as it is added (through
/// [`routing`](crate::routing)'s method routers), with `nest` prefixes, and which
/// [`require`](crate::require) / [`public`](fn@crate::public) layers cover it. That record is what
/// [`Router::coverage`] reports and what [`Router::deny_by_default`] enforces. The methods mirror
/// axum's; [`Router::into_inner`] gives the `axum::Router` to serve.
pub struct Router<S = ()> {
    inner: axum::Router<S>,
    routes: Vec<RouteEntry>,
    /// The fallback's handlers (and those of nested routers' fallbacks): reported like routes,
    /// but covered only by [`Router::layer`], as axum applies `route_layer` to routes only.
    fallbacks: Vec<RouteEntry>,
    /// Whether this router set a fallback of its own (even one with no handler): axum then
    /// carries its nested routers' fallbacks when it is nested in turn.
    own_fallback: bool,
    deny_by_default: bool,
}

/// The path the coverage report gives a service nested at `prefix`: every path under it.
fn nested_service_path(prefix: &str) -> String {
    format!("{}/…", prefix.trim_end_matches('/'))
}

impl<S> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .field("fallbacks", &self.fallbacks)
            .field("deny_by_default", &self.deny_by_default)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Router<S> {
    fn default() -> Self {
        Router::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Router<S> {
    /// An empty router.
    pub fn new() -> Self {
        Router {
            inner: axum::Router::new(),
            routes: Vec::new(),
            fallbacks: Vec::new(),
            own_fallback: false,
            deny_by_default: false,
        }
    }

    /// Answers 403 on every route whose handler carries neither a requirement nor `#[public]`
    /// and that no [`require`](crate::require) or [`public`](fn@crate::public) layer covers, so that
    /// a forgotten route fails safe. Applies to every route of this router, including nested and
    /// merged ones and those added after this call.
    pub fn deny_by_default(mut self) -> Self {
        self.deny_by_default = true;
        self
    }

    /// `axum::Router::route` with a recording [`MethodRouter`].
    pub fn route(mut self, path: &str, method_router: MethodRouter<S>) -> Self {
        self.routes.extend(
            method_router
                .handlers
                .into_iter()
                .map(|handler| RouteEntry {
                    path: path.to_owned(),
                    handler,
                }),
        );
        self.inner = self.inner.route(path, method_router.inner);
        self
    }

    /// `axum::Router::route_service`. A service cannot be inspected: the route is reported as
    /// `unresolved` unless a route layer covers it, and a deny-by-default router refuses it
    /// likewise.
    pub fn route_service<T>(mut self, path: &str, service: T) -> Self
    where
        T: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        self.routes.push(opaque::<T>(path.to_owned()));
        self.inner = self.inner.route_service(path, UnmarkedLayer.layer(service));
        self
    }

    /// `axum::Router::nest_service`: `service` answers `path` and every path under it. It is
    /// reported as the route `PATH/…` (method `ANY`), `unresolved` unless a route layer covers
    /// it, and a deny-by-default router refuses it likewise, as [`Router::route_service`].
    pub fn nest_service<T>(mut self, path: &str, service: T) -> Self
    where
        T: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        self.routes.push(opaque::<T>(nested_service_path(path)));
        self.inner = self.inner.nest_service(path, UnmarkedLayer.layer(service));
        self
    }

    /// `axum::Router::nest`: the nested routes are recorded under `path`.
    pub fn nest(mut self, path: &str, router: Router<S>) -> Self {
        let Router {
            routes,
            fallbacks,
            own_fallback,
            ..
        } = &router;
        self.routes.extend(routes.iter().map(|r| RouteEntry {
            path: nested_path(path, &r.path),
            handler: r.handler.clone(),
        }));
        // axum carries a nested router's fallbacks over only when it has one of its own.
        let fallbacks = fallbacks.iter().filter(|_| *own_fallback);
        self.fallbacks.extend(fallbacks.map(|r| RouteEntry {
            path: nested_path(path, &r.path),
            handler: r.handler.clone(),
        }));
        self.inner = self.inner.nest(path, router.into_inner());
        self
    }

    /// `axum::Router::merge`.
    pub fn merge(mut self, other: Router<S>) -> Self {
        self.routes.extend(other.routes.iter().cloned());
        self.fallbacks.extend(other.fallbacks.iter().cloned());
        self.own_fallback |= other.own_fallback;
        self.inner = self.inner.merge(other.into_inner());
        self
    }

    /// `axum::Router::layer`; a [`require`](crate::require) or [`public`](fn@crate::public) layer is
    /// recorded for the routes added so far.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.note(&layer, true);
        self.inner = self.inner.layer(layer);
        self
    }

    /// `axum::Router::fallback`, with a method router of this crate
    /// ([`routing::any(handler)`](crate::routing::any)): what answers a path no route matches.
    /// Its handler is reported as the route `(fallback)` (nested: `PREFIX (fallback)`), and
    /// deny-by-default and [`Router::layer`] apply to it as to a route; `route_layer` does
    /// not, as in axum. Without this, a fallback set on the inner `axum::Router` would be
    /// outside both.
    pub fn fallback(mut self, method_router: MethodRouter<S>) -> Self {
        // It replaces this router's own fallback, not those of routers nested before.
        self.fallbacks.retain(|f| f.path != FALLBACK);
        self.own_fallback = true;
        self.fallbacks.extend(
            method_router
                .handlers
                .into_iter()
                .map(|handler| RouteEntry {
                    path: FALLBACK.to_owned(),
                    handler,
                }),
        );
        self.inner = self.inner.fallback(method_router.inner);
        self
    }

    /// `axum::Router::fallback_service`: reported as the route `(fallback)` (method `ANY`),
    /// `unresolved` unless [`Router::layer`] covers it, and refused by a deny-by-default
    /// router likewise, as [`Router::route_service`].
    pub fn fallback_service<T>(mut self, service: T) -> Self
    where
        T: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        self.fallbacks.retain(|f| f.path != FALLBACK);
        self.own_fallback = true;
        self.fallbacks.push(opaque::<T>(FALLBACK.to_owned()));
        self.inner = self.inner.fallback_service(UnmarkedLayer.layer(service));
        self
    }

    /// `axum::Router::route_layer`; recorded like [`Router::layer`].
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.note(&layer, false);
        self.inner = self.inner.route_layer(layer);
        self
    }

    /// `axum::Router::with_state`.
    pub fn with_state<S2>(self, state: S) -> Router<S2> {
        Router {
            inner: self.inner.with_state(state),
            routes: self.routes,
            fallbacks: self.fallbacks,
            own_fallback: self.own_fallback,
            deny_by_default: self.deny_by_default,
        }
    }

    /// The coverage report of every route.
    pub fn coverage(&self) -> CoverageReport {
        self.coverage_with(&CoverageOptions::default())
    }

    /// The coverage report, with module assignment rules.
    pub fn coverage_with(&self, options: &CoverageOptions) -> CoverageReport {
        let all: Vec<RouteEntry> = self.routes.iter().chain(&self.fallbacks).cloned().collect();
        CoverageReport::build(&all, options)
    }

    /// The `axum::Router` to serve (with the deny-by-default marker applied to every route when
    /// that mode is on).
    pub fn into_inner(self) -> axum::Router<S> {
        if self.deny_by_default {
            self.inner.layer(Extension(DenyUnmarked))
        } else {
            self.inner
        }
    }

    /// Records a `require`/`public` layer for the routes so far, and for the fallbacks when
    /// it is a `layer` rather than a `route_layer`.
    fn note<L: 'static>(&mut self, layer: &L, fallbacks_too: bool) {
        if let Some(protection) = protection_of(layer) {
            let fallbacks = if fallbacks_too {
                &mut self.fallbacks[..]
            } else {
                &mut []
            };
            for route in self.routes.iter_mut().chain(fallbacks) {
                route.handler.layers.push(protection);
            }
        }
    }
}

/// The record of a service, whose protection cannot be seen: any method, no marks.
fn opaque<T>(path: String) -> RouteEntry {
    RouteEntry {
        path,
        handler: HandlerRecord {
            method: "ANY",
            type_name: type_name::<T>(),
            kind: HandlerKind::Opaque,
            layers: Vec::new(),
        },
    }
}

impl<S: Clone + Send + Sync + 'static> From<Router<S>> for axum::Router<S> {
    fn from(router: Router<S>) -> Self {
        router.into_inner()
    }
}

impl RouteEntry {
    pub(crate) fn protections(&self) -> impl Iterator<Item = Protection> + '_ {
        let own = match self.handler.kind {
            HandlerKind::Marked(meta) => Some(meta.protection),
            HandlerKind::Plain | HandlerKind::Opaque => None,
        };
        own.into_iter().chain(self.handler.layers.iter().copied())
    }
}
