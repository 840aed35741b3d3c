//! Method routers that remember their handlers, mirroring `axum::routing`.
//!
//! `rbac_axum::routing::get(handler)` builds the same `axum::routing::MethodRouter` as
//! `axum::routing::get(handler)` and also records the method, the handler's type name and
//! whether an attribute macro marked the handler, for [`Router`](crate::Router)'s coverage report
//! and deny-by-default mode.

use std::any::{TypeId, type_name};
use std::convert::Infallible;
use std::fmt;

use axum::extract::Request;
use axum::handler::Handler;
use axum::response::IntoResponse;
use axum::routing::Route;
use tower::{Layer, Service};

use crate::middleware::{UnmarkedLayer, protection_of};
use crate::registry::{HandlerMeta, handler_by_marker};
use crate::requirement::Protection;

/// The extractor tuple of a handler, as in `axum::handler::Handler<T, S>`: tells which type the
/// first extractor has, which is how routers recognise handlers marked by the attribute macros.
///
/// Implemented for the tuples of axum's handler implementations (functions and closures with up
/// to 16 extractors) and for `()`.
pub trait HandlerArgs {
    /// The type id of the first extractor, if there is one.
    fn first_extractor() -> Option<TypeId>;
}

impl HandlerArgs for () {
    fn first_extractor() -> Option<TypeId> {
        None
    }
}

impl<M> HandlerArgs for (M,) {
    fn first_extractor() -> Option<TypeId> {
        None
    }
}

macro_rules! handler_args {
    ($($rest:ident),*) => {
        impl<M, T1: 'static, $($rest),*> HandlerArgs for (M, T1, $($rest,)*) {
            fn first_extractor() -> Option<TypeId> {
                Some(TypeId::of::<T1>())
            }
        }
    };
}

handler_args!();
handler_args!(T2);
handler_args!(T2, T3);
handler_args!(T2, T3, T4);
handler_args!(T2, T3, T4, T5);
handler_args!(T2, T3, T4, T5, T6);
handler_args!(T2, T3, T4, T5, T6, T7);
handler_args!(T2, T3, T4, T5, T6, T7, T8);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9, T10);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14);
handler_args!(T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15);
handler_args!(
    T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15, T16
);

/// What a router knows about one handler.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HandlerKind {
    /// Marked by an attribute macro.
    Marked(&'static HandlerMeta),
    /// A handler without a mark.
    Plain,
    /// A service: what it does cannot be seen.
    Opaque,
}

/// One (method, handler) of a method router.
#[derive(Debug, Clone)]
pub(crate) struct HandlerRecord {
    pub(crate) method: &'static str,
    pub(crate) type_name: &'static str,
    pub(crate) kind: HandlerKind,
    /// What route layers added after the handler say, innermost first.
    pub(crate) layers: Vec<Protection>,
}

fn record<H, T>(method: &'static str) -> HandlerRecord
where
    T: HandlerArgs,
{
    let kind = match T::first_extractor().and_then(handler_by_marker) {
        Some(meta) => HandlerKind::Marked(meta),
        None => HandlerKind::Plain,
    };
    HandlerRecord {
        method,
        type_name: type_name::<H>(),
        kind,
        layers: Vec::new(),
    }
}

/// `axum::routing::MethodRouter` plus what it routes to.
pub struct MethodRouter<S = ()> {
    pub(crate) inner: axum::routing::MethodRouter<S>,
    pub(crate) handlers: Vec<HandlerRecord>,
}

impl<S> fmt::Debug for MethodRouter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodRouter")
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for MethodRouter<S> {
    fn default() -> Self {
        MethodRouter::new()
    }
}

macro_rules! method_fns {
    ($($(#[$doc:meta])* $name:ident => $label:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name<H, T, S>(handler: H) -> MethodRouter<S>
            where
                H: Handler<T, S>,
                T: HandlerArgs + 'static,
                S: Clone + Send + Sync + 'static,
            {
                MethodRouter::new().$name(handler)
            }
        )*

        impl<S: Clone + Send + Sync + 'static> MethodRouter<S> {
            $(
                $(#[$doc])*
                pub fn $name<H, T>(mut self, handler: H) -> Self
                where
                    H: Handler<T, S>,
                    T: HandlerArgs + 'static,
                {
                    let record = record::<H, T>($label);
                    self.inner = match record.kind {
                        HandlerKind::Marked(_) => self.inner.$name(handler),
                        _ => self.inner.$name(handler.layer(UnmarkedLayer)),
                    };
                    self.handlers.push(record);
                    self
                }
            )*
        }
    };
}

method_fns! {
    /// Routes `GET` (and `HEAD`, as axum does) to `handler`.
    get => "GET";
    /// Routes `POST` to `handler`.
    post => "POST";
    /// Routes `PUT` to `handler`.
    put => "PUT";
    /// Routes `PATCH` to `handler`.
    patch => "PATCH";
    /// Routes `DELETE` to `handler`.
    delete => "DELETE";
    /// Routes `HEAD` to `handler`.
    head => "HEAD";
    /// Routes `OPTIONS` to `handler`.
    options => "OPTIONS";
    /// Routes `TRACE` to `handler`.
    trace => "TRACE";
    /// Routes `CONNECT` to `handler`.
    connect => "CONNECT";
}

/// Routes every method to `handler` (`axum::routing::any`).
pub fn any<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: HandlerArgs + 'static,
    S: Clone + Send + Sync + 'static,
{
    let record = record::<H, T>("ANY");
    let inner = match record.kind {
        HandlerKind::Marked(_) => axum::routing::any(handler),
        _ => axum::routing::any(handler.layer(UnmarkedLayer)),
    };
    MethodRouter {
        inner,
        handlers: vec![record],
    }
}

impl<S: Clone + Send + Sync + 'static> MethodRouter<S> {
    /// A method router without handlers.
    pub fn new() -> Self {
        MethodRouter {
            inner: axum::routing::MethodRouter::new(),
            handlers: Vec::new(),
        }
    }

    /// `axum::routing::MethodRouter::layer`; a [`require`](crate::require) or
    /// [`public`](fn@crate::public) layer is recorded for the handlers added so far.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.note(&layer);
        self.inner = self.inner.layer(layer);
        self
    }

    /// `axum::routing::MethodRouter::route_layer`; recorded like [`MethodRouter::layer`].
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.note(&layer);
        self.inner = self.inner.route_layer(layer);
        self
    }

    /// Both method routers' handlers in one (axum panics if a method is routed twice).
    pub fn merge(mut self, other: MethodRouter<S>) -> Self {
        self.inner = self.inner.merge(other.inner);
        self.handlers.extend(other.handlers);
        self
    }

    /// The axum method router.
    pub fn into_inner(self) -> axum::routing::MethodRouter<S> {
        self.inner
    }

    fn note<L: 'static>(&mut self, layer: &L) {
        if let Some(protection) = protection_of(layer) {
            for handler in &mut self.handlers {
                handler.layers.push(protection);
            }
        }
    }
}
