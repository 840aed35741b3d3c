//! Who is calling: the identity resolvers.

use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use serde_json::{Map, Value};

use crate::rejection::Unauthenticated;

/// A caller: the subject the policy knows, and the token's claims (empty for identities that come
/// without claims).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The subject checked against the policy.
    pub subject: String,
    /// Every claim of the token, for tenant resolution and for handlers.
    pub claims: Arc<Map<String, Value>>,
}

impl Identity {
    /// An identity without claims.
    pub fn new(subject: impl Into<String>) -> Identity {
        Identity {
            subject: subject.into(),
            claims: Arc::default(),
        }
    }

    /// An identity with the claims of a token.
    pub fn with_claims(subject: impl Into<String>, claims: Map<String, Value>) -> Identity {
        Identity {
            subject: subject.into(),
            claims: Arc::new(claims),
        }
    }
}

/// Finds the caller of a request. Resolvers are asked in the order they were added to the
/// [`RbacLayer`](crate::RbacLayer); the first that answers decides.
pub trait IdentityResolver: Send + Sync + 'static {
    /// `Ok(Some(_))`: the caller. `Ok(None)`: no credentials of this resolver's kind; the next
    /// resolver is asked. `Err(_)`: credentials of this kind were presented and are not valid;
    /// the request is refused with 401 and no other resolver is asked.
    fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, Unauthenticated>;
}

/// The subject is taken as-is from a request header set by a trusted proxy in front of the
/// service (for example `X-User-ID`).
///
/// Off unless added with [`RbacLayer::trusted_header`](crate::RbacLayer::trusted_header). Enable
/// it only when every request passes through a proxy that removes the header from client
/// requests and sets it itself: anyone who can reach the service directly can claim to be anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedHeader {
    name: HeaderName,
}

impl TrustedHeader {
    /// Trusts `name`.
    pub fn new(name: HeaderName) -> TrustedHeader {
        TrustedHeader { name }
    }

    /// Trusts `X-User-ID`.
    pub fn x_user_id() -> TrustedHeader {
        TrustedHeader::new(HeaderName::from_static("x-user-id"))
    }

    /// The header trusted.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }
}

impl IdentityResolver for TrustedHeader {
    fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, Unauthenticated> {
        let mut values = parts.headers.get_all(&self.name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        // A proxy that appends its header rather than replacing it leaves the client's first.
        if values.next().is_some() {
            return Err(Unauthenticated::invalid(
                "trusted identity header is given more than once",
            ));
        }
        let subject = value
            .to_str()
            .map_err(|_| Unauthenticated::invalid("trusted identity header is not text"))?;
        rbac_core::name::validate_subject(subject)
            .map_err(|e| Unauthenticated::invalid(format!("trusted identity header: {e}")))?;
        Ok(Some(Identity::new(subject)))
    }
}
