//! The naive model: every `(subject, tenant)` mapped to the set of permission names it holds,
//! precomputed from the policy document with straightforward code (no rbac-core engine). It is
//! also the independent oracle when engines disagree.
//!
//! Identical sets are shared (`Arc`), else the scale shape would need tens of GiB of strings.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use rbac_core::PolicyDocument;
use rbac_core::name::Pattern;

/// `(subject, tenant)` → permission names, with std's SipHash.
pub struct Naive {
    map: hashbrown::HashMap<(String, String), Arc<HashSet<String>>, RandomState>,
    pub distinct_sets: usize,
}

/// A borrowed `(subject, tenant)` key: hashes like `(String, String)`.
#[derive(Hash)]
struct Key<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for Key<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

type Expansions<'a> = HashMap<&'a str, Rc<Vec<&'a str>>>;
type Sets<'a> = HashMap<(Vec<&'a str>, &'a str), Arc<HashSet<String>>>;

/// The permissions a grant or deny pattern names (memoised).
fn expand<'a>(
    doc: &'a PolicyDocument,
    memo: &mut Expansions<'a>,
    pattern: &'a str,
) -> Rc<Vec<&'a str>> {
    memo.entry(pattern)
        .or_insert_with(|| {
            Rc::new(match Pattern::parse(pattern) {
                Ok(Pattern::Exact(_)) if doc.permissions.contains(pattern) => vec![pattern],
                Ok(p) => doc.permissions.names().filter(|n| p.matches(n)).collect(),
                Err(_) => Vec::new(),
            })
        })
        .clone()
}

/// The permissions of a set of held roles in a tenant (`""`: global scope): every grant of the
/// roles and their ancestors, minus every deny (memoised by role set and scope).
fn effective<'a>(
    doc: &'a PolicyDocument,
    memo: &mut Expansions<'a>,
    sets: &mut Sets<'a>,
    mut held: Vec<&'a str>,
    tenant: &'a str,
) -> Arc<HashSet<String>> {
    held.sort_unstable();
    held.dedup();
    // Tenant layers only matter in tenants that have some.
    let scope = match doc.tenants.get_key_value(tenant) {
        Some((name, def)) if !def.roles.is_empty() => name.as_str(),
        _ => "",
    };
    let key = (held, scope);
    if let Some(set) = sets.get(&key) {
        return set.clone();
    }
    let layers = |role: &str| {
        let global = doc.roles.get(role);
        let scoped = doc.tenants.get(scope).and_then(|t| t.roles.get(role));
        global.into_iter().chain(scoped)
    };
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = key.0.clone();
    while let Some(role) = stack.pop() {
        if reached.insert(role) {
            for layer in layers(role) {
                stack.extend(layer.inherits.iter().map(String::as_str));
            }
        }
    }
    let mut granted: HashSet<&str> = HashSet::new();
    let mut denied: HashSet<&str> = HashSet::new();
    for role in &reached {
        for layer in layers(role) {
            for g in &layer.grants {
                granted.extend(expand(doc, memo, g).iter());
            }
            for d in &layer.denies {
                denied.extend(expand(doc, memo, d).iter());
            }
        }
    }
    let set: HashSet<String> = granted
        .into_iter()
        .filter(|p| !denied.contains(p))
        .map(str::to_owned)
        .collect();
    let set = Arc::new(set);
    sets.insert(key, set.clone());
    set
}

impl Naive {
    pub fn build(doc: &PolicyDocument) -> Naive {
        let mut memo = Expansions::new();
        let mut sets = Sets::new();
        let mut map = hashbrown::HashMap::with_hasher(RandomState::new());
        for (subject, def) in &doc.subjects {
            let global: Vec<&str> = def.roles.iter().map(String::as_str).collect();
            if !global.is_empty() {
                let set = effective(doc, &mut memo, &mut sets, global.clone(), "");
                map.insert((subject.clone(), String::new()), set);
                for tenant in doc.tenants.keys() {
                    if !def.tenants.contains_key(tenant) {
                        let set = effective(doc, &mut memo, &mut sets, global.clone(), tenant);
                        map.insert((subject.clone(), tenant.clone()), set);
                    }
                }
            }
            for (tenant, roles) in &def.tenants {
                let mut held = global.clone();
                held.extend(roles.iter().map(String::as_str));
                let set = effective(doc, &mut memo, &mut sets, held, tenant);
                map.insert((subject.clone(), tenant.clone()), set);
            }
        }
        Naive {
            map,
            distinct_sets: sets.len(),
        }
    }

    #[inline]
    pub fn check(&self, subject: &str, tenant: &str, permission: &str) -> bool {
        self.map
            .get(&Key(subject, tenant))
            .is_some_and(|set| set.contains(permission))
    }

    pub fn entries(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_key_finds_the_owned_key() {
        let mut doc = PolicyDocument::default();
        doc.permissions.declare("a.read", "");
        doc.permissions.declare("a.write", "");
        doc.role_mut("r").grants = vec!["a.*".into()];
        doc.role_mut("r").denies = vec!["a.write".into()];
        doc.tenants.entry("t".into()).or_default();
        doc.assign("alice", Some("t"), "r");
        let naive = Naive::build(&doc);
        assert!(naive.check("alice", "t", "a.read"));
        assert!(!naive.check("alice", "t", "a.write"));
        assert!(!naive.check("alice", "", "a.read"));
        assert!(!naive.check("bob", "t", "a.read"));
    }
}
