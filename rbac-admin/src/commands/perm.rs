//! `perm list|add|remove`: the permission registry.

use std::io::Write;

use rbac_core::store::Change;

use super::{did_you_mean, matrix::in_module, open};
use crate::cli::{Format, PermCommand};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// A declared permission, as printed.
#[derive(Debug, serde::Serialize)]
struct Permission<'a> {
    name: &'a str,
    description: &'a str,
}

/// Runs a `perm` subcommand.
pub async fn run(
    ctx: &Context,
    command: &PermCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        PermCommand::List { module } => {
            let format = ctx.require_format("perm list", &[Format::Text, Format::Json])?;
            let (_, policy) = open(ctx, "system.roles.read", None).await?;
            let registry = &policy.document().permissions.0;
            let items: Vec<Permission<'_>> = registry
                .iter()
                .filter(|(name, _)| in_module(name, module.as_deref()))
                .map(|(name, description)| Permission { name, description })
                .collect();
            if format == Format::Json {
                output::json(out, &items)?;
            } else {
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|p| vec![p.name.to_owned(), p.description.to_owned()])
                    .collect();
                output::table(out, &["PERMISSION", "DESCRIPTION"], &rows)?;
            }
            Ok(Exit::Ok)
        }
        PermCommand::Add { name, description } => {
            rbac_core::name::validate_permission(name)
                .map_err(|e| CliError::invalid(format!("bad permission name: {e}")))?;
            let (store, policy) = open(ctx, "system.permissions.manage", None).await?;
            // Without `-d`, a declared permission keeps its description (as `role create` and
            // `tenant create` keep theirs): re-running a provisioning script changes nothing.
            let description = match description {
                Some(d) => d.clone(),
                None => policy
                    .document()
                    .permissions
                    .0
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.clone()),
            };
            let applied = store
                .apply_one(
                    &ctx.change_context()?,
                    Change::DeclarePermission {
                        name: name.clone(),
                        description,
                    },
                )
                .await?;
            super::report(ctx, out, applied, &format!("declared permission `{name}`"))?;
            Ok(Exit::Ok)
        }
        PermCommand::Remove { name, yes } => {
            let (store, policy) = open(ctx, "system.permissions.manage", None).await?;
            let registry = &policy.document().permissions;
            if !registry.contains(name) {
                return Err(CliError::invalid(format!(
                    "unknown permission `{name}`{}; `rbac-admin perm list` shows them",
                    did_you_mean(name, registry.names())
                )));
            }
            // The CLI's own permissions gate every command, this one included: removed, no
            // one could run any command again, nor `init` (the policy is not empty).
            if crate::builtin::PERMISSIONS.iter().any(|(p, _)| p == name) {
                return Err(CliError::invalid(format!(
                    "`{name}` is one of rbac-admin's own permissions, which gate its commands; \
                     it cannot be removed"
                )));
            }
            ctx.confirm(&format!("remove permission `{name}`"), *yes)?;
            let applied = store
                .apply_one(
                    &ctx.change_context()?,
                    Change::RemovePermission { name: name.clone() },
                )
                .await?;
            super::report(ctx, out, applied, &format!("removed permission `{name}`"))?;
            Ok(Exit::Ok)
        }
    }
}
