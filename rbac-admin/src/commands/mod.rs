//! One module per command; each exposes a `run` that takes the [`Context`], its arguments and
//! the output stream, and returns the [`Exit`](crate::Exit) code or a [`CliError`].

pub mod audit;
pub mod check;
pub mod diff;
pub mod docs;
pub mod init;
pub mod matrix;
pub mod perm;
pub mod policy;
pub mod role;
pub mod status;
pub mod tenant;
pub mod user;

use rbac_core::store::Store;
use rbac_core::{Policy, name};

use crate::cli::{PolicySource, TenantScope};
use crate::context::Context;
use crate::error::CliError;

pub(crate) use crate::context::scope_words;

/// The tenant of a `--tenant` flag; `None` (the global scope) when absent or empty.
pub(crate) fn tenant_of(scope: &TenantScope) -> Option<&str> {
    scope.tenant.as_deref().filter(|t| !t.is_empty())
}

/// `" (did you mean `x`?)"` when a close candidate exists.
pub(crate) fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    name::suggest(wanted, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Refuses a tenant the policy does not declare.
pub(crate) fn ensure_tenant(policy: &Policy, tenant: Option<&str>) -> Result<(), CliError> {
    let Some(t) = tenant else { return Ok(()) };
    let doc = policy.document();
    if doc.tenants.contains_key(t) {
        return Ok(());
    }
    Err(CliError::invalid(format!(
        "unknown tenant `{t}`{}; `rbac-admin tenant list` shows the tenants",
        did_you_mean(t, doc.tenants.keys().map(String::as_str))
    )))
}

/// Role names usable in a scope: global roles, plus (in a tenant) that tenant's own roles.
pub(crate) fn roles_in(policy: &Policy, tenant: Option<&str>) -> Vec<String> {
    let doc = policy.document();
    let mut roles: Vec<String> = doc.roles.keys().cloned().collect();
    if let Some(def) = tenant.and_then(|t| doc.tenants.get(t)) {
        for name in def.roles.keys() {
            if !doc.roles.contains_key(name) {
                roles.push(name.clone());
            }
        }
    }
    roles.sort();
    roles
}

/// Refuses a role that does not exist in the scope.
pub(crate) fn ensure_role(
    policy: &Policy,
    tenant: Option<&str>,
    role: &str,
) -> Result<(), CliError> {
    ensure_tenant(policy, tenant)?;
    let roles = roles_in(policy, tenant);
    if roles.iter().any(|r| r == role) {
        return Ok(());
    }
    Err(CliError::invalid(format!(
        "unknown role `{role}` {}{}; `rbac-admin role list{}` shows the roles",
        scope_words(tenant),
        did_you_mean(role, roles.iter().map(String::as_str)),
        tenant.map(|t| format!(" --tenant {t}")).unwrap_or_default()
    )))
}

/// Checks a role or tenant name's spelling.
pub(crate) fn valid_name(what: &str, value: &str) -> Result<(), CliError> {
    name::validate_name(value).map_err(|e| CliError::invalid(format!("bad {what} name: {e}")))
}

/// Checks a subject's spelling.
pub(crate) fn valid_subject(value: &str) -> Result<(), CliError> {
    name::validate_subject(value).map_err(|e| CliError::invalid(format!("bad user name: {e}")))
}

/// Reads the policy a command works on: the named file(s), or the database after checking that
/// the acting user holds `permission` (in `tenant`).
pub(crate) async fn load_policy(
    ctx: &Context,
    source: &PolicySource,
    permission: &str,
    tenant: Option<&str>,
) -> Result<Policy, CliError> {
    match (&source.policy, &source.casbin_model, &source.casbin_policy) {
        (Some(file), _, _) => Ok(Policy::from_toml_file(file)?),
        (None, Some(model), Some(policy)) => Ok(rbac_core::casbin::import_files(model, policy)?),
        _ => {
            let store = ctx.connect_existing().await?;
            ctx.authorize(&store, permission, tenant).await
        }
    }
}

/// Connects and authorizes in one step, keeping the store for changes.
pub(crate) async fn open(
    ctx: &Context,
    permission: &str,
    tenant: Option<&str>,
) -> Result<(Store, Policy), CliError> {
    // Commands that change the policy print a line of text or a JSON object; refuse any other
    // format before anything is changed.
    if !matches!(
        ctx.format,
        crate::cli::Format::Text | crate::cli::Format::Json
    ) {
        return Err(CliError::invalid(format!(
            "this command cannot print --format {}; use text or json",
            ctx.format.name()
        )));
    }
    let store = ctx.connect_existing().await?;
    let policy = ctx.authorize(&store, permission, tenant).await?;
    Ok((store, policy))
}

/// Prints what a change did: `done (policy version N)` or that nothing changed; with
/// `--format json`, `{"changed": .., "version": .., "message": ..}`.
pub(crate) fn report(
    ctx: &Context,
    out: &mut dyn std::io::Write,
    applied: rbac_core::store::Applied,
    done: &str,
) -> Result<(), CliError> {
    let message = if applied.changed {
        format!("{done} (policy version {})", applied.version)
    } else {
        format!("no change: already so (policy version {})", applied.version)
    };
    match ctx.format {
        crate::cli::Format::Json => crate::output::json(
            out,
            &serde_json::json!({
                "changed": applied.changed,
                "version": applied.version,
                "message": message,
            }),
        )?,
        _ => writeln!(out, "{message}")?,
    }
    Ok(())
}
