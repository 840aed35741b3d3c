//! The layer that puts the authorizer and the resolvers into every request, and the one function
//! every guard and route layer decides with.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use http::Request;
use http::request::Parts;
use serde_json::{Map, Value};
use tower::{Layer, Service};

use crate::authorizer::{Authorizer, evaluate};
use crate::identity::{Identity, IdentityResolver, TrustedHeader};
use crate::jwt::Jwt;
use crate::rejection::{AuthzRejection, Forbidden, NotConfigured, Unauthenticated};
use crate::requirement::Requirement;
use crate::tenant::TenantSource;

#[derive(Clone)]
pub(crate) struct Config {
    authorizer: Arc<dyn Authorizer>,
    identities: Vec<Arc<dyn IdentityResolver>>,
    tenant: TenantSource,
}

/// The request extension the layer inserts.
#[derive(Clone)]
pub(crate) struct Installed(Arc<Config>);

/// Puts an [`Authorizer`], the identity resolvers and the tenant source into every request that
/// passes through it, for the guards of the attribute macros, the route layers
/// ([`require`](crate::require) and siblings) and the [`Principal`] extractor. It refuses
/// nothing by itself; apply it with `Router::layer` so that it wraps every route.
///
/// No identity resolver is on by default: add [`RbacLayer::jwt`],
/// [`RbacLayer::trusted_header`] or your own with [`RbacLayer::identity`]. The tenant defaults to
/// the global scope; choose a source with [`RbacLayer::tenant`].
#[derive(Clone)]
pub struct RbacLayer {
    config: Arc<Config>,
}

impl fmt::Debug for RbacLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RbacLayer")
            .field("identities", &self.config.identities.len())
            .field("tenant", &self.config.tenant)
            .finish_non_exhaustive()
    }
}

impl RbacLayer {
    /// Decides with `authorizer`.
    pub fn new(authorizer: impl Authorizer) -> RbacLayer {
        RbacLayer {
            config: Arc::new(Config {
                authorizer: Arc::new(authorizer),
                identities: Vec::new(),
                tenant: TenantSource::Global,
            }),
        }
    }

    /// Accepts JWT bearer tokens.
    pub fn jwt(self, jwt: Jwt) -> RbacLayer {
        self.identity(jwt)
    }

    /// Trusts a header set by a proxy for the subject. See [`TrustedHeader`] before enabling it.
    pub fn trusted_header(self, header: TrustedHeader) -> RbacLayer {
        self.identity(header)
    }

    /// Adds an identity resolver; resolvers are asked in the order added.
    pub fn identity(mut self, resolver: impl IdentityResolver) -> RbacLayer {
        Arc::make_mut(&mut self.config)
            .identities
            .push(Arc::new(resolver));
        self
    }

    /// Where the tenant comes from.
    pub fn tenant(mut self, source: TenantSource) -> RbacLayer {
        Arc::make_mut(&mut self.config).tenant = source;
        self
    }
}

impl<S> Layer<S> for RbacLayer {
    type Service = RbacService<S>;

    fn layer(&self, inner: S) -> RbacService<S> {
        RbacService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`RbacLayer`].
#[derive(Clone)]
pub struct RbacService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for RbacService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RbacService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for RbacService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        request
            .extensions_mut()
            .insert(Installed(self.config.clone()));
        self.inner.call(request)
    }
}

/// The authenticated caller of a request and the tenant it acts in.
///
/// As an extractor it resolves the identity and the tenant (401 and 400 as the guards do) but
/// checks no requirement; behind a guard or a route layer it reuses what they resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The subject checked against the policy.
    pub subject: String,
    /// The tenant (`""` for the global scope).
    pub tenant: String,
    /// The token's claims (empty for identities without claims).
    pub claims: Arc<Map<String, Value>>,
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthzRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal(parts).await.map(|(p, _)| p)
    }
}

fn identify(config: &Config, parts: &Parts) -> Result<Identity, Unauthenticated> {
    for resolver in &config.identities {
        if let Some(identity) = resolver.resolve(parts)? {
            return Ok(identity);
        }
    }
    Err(Unauthenticated::missing())
}

async fn principal(parts: &mut Parts) -> Result<(Principal, Arc<Config>), AuthzRejection> {
    let Some(Installed(config)) = parts.extensions.get::<Installed>().cloned() else {
        return Err(NotConfigured::at(parts).into());
    };
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok((principal.clone(), config));
    }
    let identity = identify(&config, parts).map_err(|e| e.at(parts))?;
    let tenant = config.tenant.resolve(parts, &identity).await?;
    let principal = Principal {
        subject: identity.subject,
        tenant,
        claims: identity.claims,
    };
    parts.extensions.insert(principal.clone());
    Ok((principal, config))
}

/// Resolves the caller and decides `requirement`: 500 without the layer, 401 without a valid
/// identity, 400 without a valid tenant, 403 on deny.
pub(crate) async fn authorize(
    parts: &mut Parts,
    requirement: &Requirement,
) -> Result<Principal, AuthzRejection> {
    let (principal, config) = principal(parts).await?;
    let verdict = evaluate(
        &*config.authorizer,
        &principal.subject,
        &principal.tenant,
        requirement,
    );
    if verdict.is_allowed() {
        Ok(principal)
    } else {
        Err(Forbidden::denied(
            verdict.cause(),
            requirement,
            &principal.subject,
            &principal.tenant,
            parts,
        )
        .into())
    }
}
