//! The casbin peers: the real `casbin::Enforcer` and `casbin::CachedEnforcer`.

use std::sync::Arc;

use casbin::prelude::*;
use casbin::{Cache, CachedApi, DefaultCache, EnforceArgs};

use crate::shapes::Query;

/// A request in casbin's form.
pub struct CasbinQuery {
    sub: String,
    dom: Option<String>,
    obj: String,
    act: String,
}

impl CasbinQuery {
    pub fn new(q: &Query, domains: bool) -> CasbinQuery {
        let (obj, act) = q.object_action();
        CasbinQuery {
            sub: q.subject.clone(),
            dom: domains.then(|| q.tenant.clone()),
            obj: obj.to_owned(),
            act: act.to_owned(),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    }
}

pub fn enforcer(model: &str, csv: &str) -> casbin::Result<Enforcer> {
    runtime().block_on(async {
        let m = DefaultModel::from_str(model).await?;
        Enforcer::new(m, StringAdapter::new(csv)).await
    })
}

/// casbin's own cache, shared so that the benchmark can pre-fill it while the enforcer is in use.
pub struct SharedCache(Arc<DefaultCache<u64, bool>>);

impl Cache<u64, bool> for SharedCache {
    fn get(&self, k: &u64) -> Option<bool> {
        self.0.get(k)
    }
    fn has(&self, k: &u64) -> bool {
        self.0.has(k)
    }
    fn set(&self, k: u64, v: bool) {
        self.0.set(k, v)
    }
    fn clear(&self) {
        self.0.clear()
    }
}

/// A `CachedEnforcer` whose cache (casbin's `DefaultCache`) holds `capacity` decisions (casbin's
/// default is 200), and a handle on that cache.
pub fn cached(
    model: &str,
    csv: &str,
    capacity: usize,
) -> casbin::Result<(CachedEnforcer, Arc<DefaultCache<u64, bool>>)> {
    runtime().block_on(async {
        let m = DefaultModel::from_str(model).await?;
        let mut e = CachedEnforcer::new(m, StringAdapter::new(csv)).await?;
        let cache = Arc::new(DefaultCache::new(capacity));
        e.set_cache(Box::new(SharedCache(cache.clone())));
        Ok((e, cache))
    })
}

/// Puts known decisions into the cache under the key `CachedEnforcer::enforce` computes for the
/// same request (`EnforceArgs::cache_key` of the same tuple).
pub fn prefill(cache: &DefaultCache<u64, bool>, queries: &[CasbinQuery], answers: &[bool]) {
    for (q, &a) in queries.iter().zip(answers) {
        let key = match &q.dom {
            Some(dom) => (q.sub.as_str(), dom.as_str(), q.obj.as_str(), q.act.as_str()).cache_key(),
            None => (q.sub.as_str(), q.obj.as_str(), q.act.as_str()).cache_key(),
        };
        cache.set(key, a);
    }
}

/// Whether the model has domains (a `dom` request field).
pub fn has_domains(model: &str) -> bool {
    model
        .lines()
        .any(|l| l.trim_start().starts_with("r =") && l.contains("dom"))
}

#[inline]
pub fn enforce<E: CoreApi>(e: &E, q: &CasbinQuery) -> bool {
    let r = match &q.dom {
        Some(dom) => e.enforce((q.sub.as_str(), dom.as_str(), q.obj.as_str(), q.act.as_str())),
        None => e.enforce((q.sub.as_str(), q.obj.as_str(), q.act.as_str())),
    };
    match r {
        Ok(b) => b,
        Err(err) => panic!(
            "casbin refused the request ({}, {:?}, {}, {}): {err}",
            q.sub, q.dom, q.obj, q.act
        ),
    }
}
