//! `user list|show|assign|unassign`: subjects and the roles they hold.

use std::collections::BTreeMap;
use std::io::Write;

use rbac_core::store::Change;
use rbac_core::{Policy, Snapshot};

use super::{
    did_you_mean, ensure_role, ensure_tenant, open, report, scope_words, tenant_of, valid_subject,
};
use crate::cli::{AssignArgs, Format, UserCommand};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// A user's roles, as listed.
#[derive(Debug, serde::Serialize)]
struct Listed {
    user: String,
    global_roles: Vec<String>,
    tenant_roles: BTreeMap<String, Vec<String>>,
}

/// A user's access in one scope.
#[derive(Debug, serde::Serialize)]
struct ScopeAccess {
    tenant: Option<String>,
    roles: Vec<String>,
    permissions: Vec<String>,
}

/// `user show`'s answer.
#[derive(Debug, serde::Serialize)]
struct Shown {
    user: String,
    scopes: Vec<ScopeAccess>,
}

/// Runs a `user` subcommand.
pub async fn run(
    ctx: &Context,
    command: &UserCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        UserCommand::List(scope) => {
            let format = ctx.require_format("user list", &[Format::Text, Format::Json])?;
            let tenant = tenant_of(scope);
            let (_, policy) = open(ctx, "system.users.read", tenant).await?;
            ensure_tenant(&policy, tenant)?;
            let users: Vec<Listed> = policy
                .document()
                .subjects
                .iter()
                .filter(|(_, s)| tenant.is_none_or(|t| s.tenants.contains_key(t)))
                .map(|(name, s)| Listed {
                    user: name.clone(),
                    global_roles: s.roles.clone(),
                    tenant_roles: s
                        .tenants
                        .iter()
                        .filter(|(t, _)| tenant.is_none_or(|want| want == t.as_str()))
                        .map(|(t, r)| (t.clone(), r.clone()))
                        .collect(),
                })
                .collect();
            if format == Format::Json {
                output::json(out, &users)?;
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        let tenants: Vec<String> = u
                            .tenant_roles
                            .iter()
                            .map(|(t, r)| format!("{t}: {}", r.join(", ")))
                            .collect();
                        vec![
                            u.user.clone(),
                            output::list(&u.global_roles),
                            if tenants.is_empty() {
                                "-".to_owned()
                            } else {
                                tenants.join("; ")
                            },
                        ]
                    })
                    .collect();
                output::table(out, &["USER", "GLOBAL ROLES", "TENANT ROLES"], &rows)?;
            }
            Ok(Exit::Ok)
        }
        UserCommand::Show { user } => {
            let format = ctx.require_format("user show", &[Format::Text, Format::Json])?;
            let (_, policy) = open(ctx, "system.users.read", None).await?;
            let shown = show(&policy, user)?;
            if format == Format::Json {
                output::json(out, &shown)?;
            } else {
                writeln!(out, "user {}", shown.user)?;
                for s in &shown.scopes {
                    writeln!(out, "{}:", scope_words(s.tenant.as_deref()))?;
                    writeln!(out, "  roles:       {}", output::list(&s.roles))?;
                    writeln!(out, "  permissions: {}", output::list(&s.permissions))?;
                }
            }
            Ok(Exit::Ok)
        }
        UserCommand::Assign(args) => assign(ctx, args, true, out).await,
        UserCommand::Unassign(args) => assign(ctx, args, false, out).await,
    }
}

fn show(policy: &Policy, user: &str) -> Result<Shown, CliError> {
    let doc = policy.document();
    let Some(def) = doc.subjects.get(user) else {
        return Err(CliError::invalid(format!(
            "unknown user `{user}`{}; `rbac-admin user list` shows them",
            did_you_mean(user, doc.subjects.keys().map(String::as_str))
        )));
    };
    let snapshot = Snapshot::compile(policy);
    let mut scopes = vec![ScopeAccess {
        tenant: None,
        roles: def.roles.clone(),
        permissions: owned(snapshot.permissions_of(user, rbac_core::GLOBAL)),
    }];
    for (tenant, roles) in &def.tenants {
        scopes.push(ScopeAccess {
            tenant: Some(tenant.clone()),
            roles: roles.clone(),
            permissions: owned(snapshot.permissions_of(user, tenant)),
        });
    }
    Ok(Shown {
        user: user.to_owned(),
        scopes,
    })
}

fn owned(names: Vec<&str>) -> Vec<String> {
    names.into_iter().map(str::to_owned).collect()
}

async fn assign(
    ctx: &Context,
    args: &AssignArgs,
    add: bool,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    valid_subject(&args.user)?;
    let tenant = tenant_of(&args.scope);
    let (store, policy) = open(ctx, "system.users.manage", tenant).await?;
    ensure_role(&policy, tenant, &args.role)?;
    let (subject, tenant_s, role) = (
        args.user.clone(),
        tenant.map(str::to_owned),
        args.role.clone(),
    );
    let change = if add {
        Change::Assign {
            subject,
            tenant: tenant_s,
            role,
        }
    } else {
        Change::Unassign {
            subject,
            tenant: tenant_s,
            role,
        }
    };
    let applied = store.apply_one(&ctx.change_context()?, change).await?;
    let done = if add {
        format!(
            "assigned role `{}` to `{}` {}",
            args.role,
            args.user,
            scope_words(tenant)
        )
    } else {
        format!(
            "took role `{}` from `{}` {}",
            args.role,
            args.user,
            scope_words(tenant)
        )
    };
    report(ctx, out, applied, &done)?;
    Ok(Exit::Ok)
}
