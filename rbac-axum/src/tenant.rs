//! Which tenant a request acts in.

use axum::extract::{FromRequestParts, RawPathParams};
use http::HeaderName;
use http::request::Parts;
use serde_json::Value;

use crate::identity::Identity;
use crate::rejection::{InvalidTenant, TenantProblem};

/// Where the tenant of a request comes from. A request whose source is absent is refused with 400,
/// and so is one whose value is not a valid tenant name. A well-formed but unknown tenant is a
/// deny (403) like any other: the response does not tell which tenants exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TenantSource {
    /// Every check runs in the global scope (`""`): for applications without tenants.
    #[default]
    Global,
    /// A path parameter, such as `tenant` in `/t/{tenant}/invoices`. Only available where axum
    /// has matched the route: in handlers and in `route_layer`s, not in a router-wide `layer`.
    Path(String),
    /// A request header, such as `X-Tenant-ID`.
    Header(HeaderName),
    /// A string claim of the identity's token, such as `tenant`.
    Claim(String),
}

impl TenantSource {
    /// From the path parameter `name`.
    pub fn path(name: impl Into<String>) -> TenantSource {
        TenantSource::Path(name.into())
    }

    /// From the header `name`.
    pub fn header(name: HeaderName) -> TenantSource {
        TenantSource::Header(name)
    }

    /// From the token claim `name`.
    pub fn claim(name: impl Into<String>) -> TenantSource {
        TenantSource::Claim(name.into())
    }

    pub(crate) async fn resolve(
        &self,
        parts: &mut Parts,
        identity: &Identity,
    ) -> Result<String, InvalidTenant> {
        let (value, source) = match self {
            TenantSource::Global => return Ok(String::new()),
            TenantSource::Path(name) => {
                let params = RawPathParams::from_request_parts(parts, &()).await.ok();
                let value = params.and_then(|params| {
                    params
                        .iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| Ok(value.to_owned()))
                });
                (value, format!("path parameter `{name}`"))
            }
            TenantSource::Header(name) => {
                // Given twice, the tenant is ambiguous: a proxy or handler reading the other
                // value would act in a tenant that was not checked.
                let mut values = parts.headers.get_all(name).iter();
                let value = values.next().map(|first| match values.next() {
                    Some(_) => Err(()),
                    None => first.to_str().map(str::to_owned).map_err(|_| ()),
                });
                (value, format!("header `{name}`"))
            }
            TenantSource::Claim(name) => {
                let value = identity.claims.get(name).map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(()),
                });
                (value, format!("claim `{name}`"))
            }
        };
        match value {
            None => Err(InvalidTenant::new(TenantProblem::Missing, source, parts)),
            Some(Err(())) => Err(InvalidTenant::new(TenantProblem::Malformed, source, parts)),
            Some(Ok(tenant)) => match rbac_core::name::validate_name(&tenant) {
                Ok(()) => Ok(tenant),
                Err(_) => Err(InvalidTenant::new(TenantProblem::Malformed, source, parts)),
            },
        }
    }
}
