//! The leading extractors the attribute macros add to a handler.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::layer::authorize;
use crate::rejection::AuthzRejection;
use crate::requirement::Requirement;

/// The requirement of one handler, carried by the zero-sized type the attribute macro generates.
/// Not public API.
#[doc(hidden)]
pub trait RouteRequirement: 'static {
    /// What the handler requires.
    const REQUIREMENT: Requirement;
}

/// Decides `R`'s requirement from the request head, before any other extractor runs (so before
/// the body is read). Added as the first argument by `#[require_permission]`, `#[require_role]`
/// and `#[require_module]`. Not public API.
#[doc(hidden)]
pub struct Guard<R>(PhantomData<fn() -> R>);

impl<R> fmt::Debug for Guard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guard")
    }
}

impl<R: RouteRequirement, S: Send + Sync> FromRequestParts<S> for Guard<R> {
    type Rejection = AuthzRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authorize(parts, &R::REQUIREMENT).await?;
        Ok(Guard(PhantomData))
    }
}

/// Marks a `#[public]` handler so that routers recognise it; extracts nothing and never fails.
/// Not public API.
#[doc(hidden)]
pub struct Public<R>(PhantomData<fn() -> R>);

impl<R> fmt::Debug for Public<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Public")
    }
}

impl<R: 'static, S: Send + Sync> FromRequestParts<S> for Public<R> {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Public(PhantomData))
    }
}
