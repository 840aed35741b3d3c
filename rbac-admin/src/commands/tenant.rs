//! `tenant list|create|delete`.

use std::io::Write;

use rbac_core::store::Change;

use super::{ensure_tenant, open, valid_name};
use crate::cli::{Format, TenantCommand};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// A tenant, as printed.
#[derive(Debug, serde::Serialize)]
struct Tenant {
    name: String,
    description: Option<String>,
    roles: Vec<String>,
    users: usize,
}

/// Runs a `tenant` subcommand.
pub async fn run(
    ctx: &Context,
    command: &TenantCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        TenantCommand::List => {
            let format = ctx.require_format("tenant list", &[Format::Text, Format::Json])?;
            let (_, policy) = open(ctx, "system.roles.read", None).await?;
            let doc = policy.document();
            let tenants: Vec<Tenant> = doc
                .tenants
                .iter()
                .map(|(name, def)| Tenant {
                    name: name.clone(),
                    description: def.description.clone(),
                    roles: def.roles.keys().cloned().collect(),
                    users: doc
                        .subjects
                        .values()
                        .filter(|s| s.tenants.contains_key(name))
                        .count(),
                })
                .collect();
            if format == Format::Json {
                output::json(out, &tenants)?;
            } else {
                let rows: Vec<Vec<String>> = tenants
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.users.to_string(),
                            output::list(&t.roles),
                            t.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(out, &["TENANT", "USERS", "ROLES", "DESCRIPTION"], &rows)?;
            }
            Ok(Exit::Ok)
        }
        TenantCommand::Create { name, description } => {
            valid_name("tenant", name)?;
            let (store, policy) = open(ctx, "system.tenants.manage", None).await?;
            if policy.document().tenants.contains_key(name) && description.is_none() {
                return Err(CliError::invalid(format!(
                    "tenant `{name}` already exists; pass --description to change its description"
                )));
            }
            let applied = store
                .apply_one(
                    &ctx.change_context()?,
                    Change::CreateTenant {
                        name: name.clone(),
                        description: description.clone(),
                    },
                )
                .await?;
            super::report(ctx, out, applied, &format!("created tenant `{name}`"))?;
            Ok(Exit::Ok)
        }
        TenantCommand::Delete { name, yes } => {
            let (store, policy) = open(ctx, "system.tenants.manage", None).await?;
            ensure_tenant(&policy, Some(name))?;
            ctx.confirm(
                &format!("delete tenant `{name}` with its roles and every assignment in it"),
                *yes,
            )?;
            let applied = store
                .apply_one(
                    &ctx.change_context()?,
                    Change::DeleteTenant { name: name.clone() },
                )
                .await?;
            super::report(ctx, out, applied, &format!("deleted tenant `{name}`"))?;
            Ok(Exit::Ok)
        }
    }
}
