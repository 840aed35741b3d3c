//! `diff OLD NEW`: what access each subject gains or loses between two policies: TOML files, the
//! database's current policy (`db`), a stored version (`db@12`) or a version counted back from
//! the current one (`db~1`: before the last change), rebuilt exactly from the policy history.
//! Effective permissions are compared, so a change of inheritance or a new deny shows up as the
//! access it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use rbac_core::{Policy, Snapshot};

use crate::cli::{DiffArgs, Format};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// One subject's change in one scope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessChange {
    /// The subject.
    pub subject: String,
    /// The tenant (`None`: global scope).
    pub tenant: Option<String>,
    /// Permissions held in NEW and not in OLD.
    pub gained: Vec<String>,
    /// Permissions held in OLD and not in NEW.
    pub lost: Vec<String>,
}

/// Every subject's gained and lost permissions, in every scope of either policy.
pub fn compare(old: &Policy, new: &Policy) -> Vec<AccessChange> {
    let (a, b) = (Snapshot::compile(old), Snapshot::compile(new));
    let (od, nd) = (old.document(), new.document());
    let subjects: BTreeSet<&String> = od.subjects.keys().chain(nd.subjects.keys()).collect();
    let tenants: BTreeSet<&String> = od.tenants.keys().chain(nd.tenants.keys()).collect();
    let scopes = std::iter::once(None).chain(tenants.into_iter().map(|t| Some(t.as_str())));
    let scopes: Vec<Option<&str>> = scopes.collect();
    let mut changes = Vec::new();
    for subject in subjects {
        for tenant in &scopes {
            let t = tenant.unwrap_or(rbac_core::GLOBAL);
            let before: BTreeSet<&str> = a.permissions_of(subject, t).into_iter().collect();
            let after: BTreeSet<&str> = b.permissions_of(subject, t).into_iter().collect();
            if before == after {
                continue;
            }
            changes.push(AccessChange {
                subject: subject.clone(),
                tenant: tenant.map(str::to_owned),
                gained: after.difference(&before).map(|p| (*p).to_owned()).collect(),
                lost: before.difference(&after).map(|p| (*p).to_owned()).collect(),
            });
        }
    }
    changes
}

/// Which stored version a `db`, `db@N` or `db~K` argument names (`None`: not the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Current,
    At(i64),
    Back(i64),
}

fn stored(side: &str) -> Result<Option<Stored>, CliError> {
    let Some(rest) = side.strip_prefix("db") else {
        return Ok(None);
    };
    let number = |text: &str, what: &str| {
        text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            CliError::invalid(format!(
                "`{side}`: {what} must be a whole number (`db@12`, `db~1`)"
            ))
        })
    };
    Ok(match rest.chars().next() {
        None => Some(Stored::Current),
        Some('@') => Some(Stored::At(number(&rest[1..], "the version after `@`")?)),
        Some('~') => Some(Stored::Back(number(&rest[1..], "the count after `~`")?)),
        // A file whose name starts with `db` (`db.toml`, `dbpolicy.toml`).
        Some(_) => None,
    })
}

async fn load(ctx: &Context, side: &str) -> Result<Policy, CliError> {
    let Some(which) = stored(side)? else {
        return Ok(Policy::from_toml_file(side)?);
    };
    let store = ctx.connect_existing().await?;
    // Reading any version of the policy needs the export permission of the current one.
    let current = ctx.authorize(&store, "system.policy.export", None).await?;
    let version = match which {
        Stored::Current => return Ok(current),
        Stored::At(n) => n,
        Stored::Back(k) => store.version().await? - k,
    };
    Ok(store.policy_at(version).await?)
}

/// Runs `diff`.
pub async fn run(ctx: &Context, args: &DiffArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let format = ctx.require_format("diff", &[Format::Text, Format::Json])?;
    let old = load(ctx, &args.old).await?;
    let new = load(ctx, &args.new).await?;
    let changes = compare(&old, &new);
    if format == Format::Json {
        output::json(out, &changes)?;
        return Ok(Exit::Ok);
    }
    if changes.is_empty() {
        writeln!(out, "no subject gains or loses any permission")?;
        return Ok(Exit::Ok);
    }
    let mut by_subject: BTreeMap<&str, Vec<&AccessChange>> = BTreeMap::new();
    for c in &changes {
        by_subject.entry(&c.subject).or_default().push(c);
    }
    for (subject, list) in by_subject {
        writeln!(out, "{subject}")?;
        for c in list {
            writeln!(out, "  {}:", super::scope_words(c.tenant.as_deref()))?;
            for p in &c.gained {
                writeln!(out, "    {} {p}", output::paint("+", "32", ctx.color))?;
            }
            for p in &c.lost {
                writeln!(out, "    {} {p}", output::paint("-", "31", ctx.color))?;
            }
        }
    }
    let (gained, lost): (usize, usize) = changes
        .iter()
        .fold((0, 0), |(g, l), c| (g + c.gained.len(), l + c.lost.len()));
    writeln!(
        out,
        "permissions gained: {gained}, lost: {lost}, in {} subject scope(s)",
        changes.len()
    )?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_sides_are_parsed_and_files_are_left_alone() {
        assert_eq!(stored("db").ok().flatten(), Some(Stored::Current));
        assert_eq!(stored("db@12").ok().flatten(), Some(Stored::At(12)));
        assert_eq!(stored("db~1").ok().flatten(), Some(Stored::Back(1)));
        assert_eq!(stored("db.toml").ok().flatten(), None);
        assert_eq!(stored("policies/db@1.toml").ok().flatten(), None);
        for bad in ["db@", "db@x", "db~-1", "db@-3"] {
            assert!(stored(bad).is_err(), "{bad}");
        }
    }
}
