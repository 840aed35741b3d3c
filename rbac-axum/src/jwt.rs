//! JWT bearer tokens: one pinned algorithm, keys chosen by `kid` from a set that can be replaced
//! while the service runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::AUTHORIZATION;
use http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::{Map, Value};

pub use jsonwebtoken::{Algorithm, DecodingKey};

use crate::identity::{Identity, IdentityResolver};
use crate::rejection::Unauthenticated;

/// Verification keys by key id (`kid`), plus an optional key for tokens without one.
#[derive(Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, DecodingKey>,
    default: Option<DecodingKey>,
}

impl KeySet {
    /// An empty set: every token is refused.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Adds (or replaces) the key for tokens whose header says `kid`.
    pub fn with_key(mut self, kid: impl Into<String>, key: DecodingKey) -> KeySet {
        self.by_kid.insert(kid.into(), key);
        self
    }

    /// The key for tokens whose header has no `kid`. Without one, such tokens are refused.
    pub fn with_default_key(mut self, key: DecodingKey) -> KeySet {
        self.default = Some(key);
        self
    }

    /// The key ids, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }

    fn key_for(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => self.default.as_ref(),
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.kids().collect();
        kids.sort_unstable();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("default", &self.default.is_some())
            .finish()
    }
}

/// A [`KeySet`] shared between the layer and whoever rotates keys. Clones share the set;
/// [`JwtKeys::rotate`] swaps it atomically, so a request verifies against the old set or the new
/// one, never a mix.
#[derive(Clone, Debug)]
pub struct JwtKeys {
    current: Arc<ArcSwap<KeySet>>,
}

impl JwtKeys {
    /// Starts from `set`.
    pub fn new(set: KeySet) -> JwtKeys {
        JwtKeys {
            current: Arc::new(ArcSwap::from_pointee(set)),
        }
    }

    /// Replaces the whole set.
    pub fn rotate(&self, set: KeySet) {
        self.current.store(Arc::new(set));
    }

    /// Adds or replaces one key.
    pub fn insert(&self, kid: impl Into<String>, key: DecodingKey) {
        let kid = kid.into();
        self.current.rcu(|set| {
            let mut next = KeySet::clone(set);
            next.by_kid.insert(kid.clone(), key.clone());
            next
        });
    }

    /// Removes one key: tokens signed with it are refused from now on.
    pub fn remove(&self, kid: &str) {
        self.current.rcu(|set| {
            let mut next = KeySet::clone(set);
            next.by_kid.remove(kid);
            next
        });
    }

    /// The set in force.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }
}

/// Identity from `Authorization: Bearer <JWT>`.
///
/// - The algorithm is fixed by configuration: a token whose header names any other `alg` is
///   refused before its signature is looked at.
/// - The key is the set's key for the token's `kid` (unknown `kid`: refused).
/// - `exp` is required; `nbf` is checked when present; `aud` and `iss` are required and checked
///   when configured. The clock leeway defaults to 30 seconds.
/// - The subject is the `sub` claim (required).
/// - An `Authorization` header given more than once, or a bearer one whose token is empty or
///   not text, is refused (401), never taken for no credentials, so that no later resolver
///   decides who the caller is.
#[derive(Clone)]
pub struct Jwt {
    algorithm: Algorithm,
    keys: JwtKeys,
    validation: Validation,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &self.algorithm)
            .field("keys", &self.keys)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway", &self.validation.leeway)
            .finish()
    }
}

impl Jwt {
    /// Verifies tokens signed with `algorithm` by a key of `keys`.
    pub fn new(algorithm: Algorithm, keys: JwtKeys) -> Jwt {
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Jwt {
            algorithm,
            keys,
            validation,
        }
    }

    /// Requires `iss` to be `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Jwt {
        self.validation.set_issuer(&[issuer.into()]);
        self.validation
            .required_spec_claims
            .insert("iss".to_owned());
        self
    }

    /// Requires `aud` to be (or contain) `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Jwt {
        self.validation.set_audience(&[audience.into()]);
        self.validation.validate_aud = true;
        self.validation
            .required_spec_claims
            .insert("aud".to_owned());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (whole seconds), at most [`Jwt::MAX_LEEWAY`]:
    /// a longer one is cut to it.
    pub fn leeway(mut self, leeway: Duration) -> Jwt {
        self.validation.leeway = leeway.as_secs().min(Jwt::MAX_LEEWAY.as_secs());
        self
    }

    /// The longest clock leeway [`Jwt::leeway`] takes: one day. A leeway longer than the time
    /// since 1970 would make jsonwebtoken's `now - leeway` overflow; one of days already
    /// accepts tokens that expired days ago.
    pub const MAX_LEEWAY: Duration = Duration::from_secs(24 * 60 * 60);

    /// The keys, for rotation.
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl IdentityResolver for Jwt {
    fn resolve(&self, parts: &Parts) -> Result<Option<Identity>, Unauthenticated> {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        // Credentials that cannot be read are refused, not taken for none (which would let a
        // later resolver decide who the caller is).
        if values.next().is_some() {
            return Err(Unauthenticated::invalid(
                "the Authorization header is given more than once",
            ));
        }
        // Another scheme (Basic, say, in Latin-1) is a later resolver's to read.
        let bytes = value.as_bytes();
        let scheme = bytes.split(|&b| b == b' ').next().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return Ok(None);
        }
        let value = value
            .to_str()
            .map_err(|_| Unauthenticated::invalid("the bearer token is not text"))?;
        let Some(token) = bearer(value) else {
            return Err(Unauthenticated::invalid("the bearer token is empty"));
        };
        let header =
            decode_header(token).map_err(|e| Unauthenticated::invalid(format!("token: {e}")))?;
        if header.alg != self.algorithm {
            return Err(Unauthenticated::invalid(format!(
                "token algorithm {:?} is not the configured {:?}",
                header.alg, self.algorithm
            )));
        }
        let keys = self.keys.current.load();
        let Some(key) = keys.key_for(header.kid.as_deref()) else {
            return Err(Unauthenticated::invalid(match header.kid {
                Some(kid) => format!("token key id `{kid}` is not in the key set"),
                None => "token has no key id and no default key is set".to_owned(),
            }));
        };
        let data =
            decode::<Map<String, Value>>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => Unauthenticated::expired(),
                    ErrorKind::ImmatureSignature => Unauthenticated::invalid("token not yet valid"),
                    ErrorKind::InvalidAudience => Unauthenticated::invalid("token audience"),
                    ErrorKind::InvalidIssuer => Unauthenticated::invalid("token issuer"),
                    ErrorKind::InvalidSignature => Unauthenticated::invalid("token signature"),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        Unauthenticated::invalid(format!("token lacks the `{claim}` claim"))
                    }
                    _ => Unauthenticated::invalid(format!("token: {e}")),
                }
            })?;
        let subject = match data.claims.get("sub") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(Unauthenticated::invalid("token `sub` is not a string")),
        };
        rbac_core::name::validate_subject(&subject)
            .map_err(|e| Unauthenticated::invalid(format!("token `sub`: {e}")))?;
        Ok(Some(Identity::with_claims(subject, data.claims)))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_tokens_are_found_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
