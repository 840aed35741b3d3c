//! `role list|show|create|delete|grant|revoke|deny|undeny|inherit|uninherit`.

use std::io::Write;

use rbac_core::store::Change;
use rbac_core::{Policy, RoleDef};

use super::{ensure_role, ensure_tenant, open, report, scope_words, tenant_of, valid_name};
use crate::cli::{Format, InheritArgs, RoleCommand, RuleArgs};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// One layer of a role (its rules in one scope), as printed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Layer {
    /// The role.
    pub name: String,
    /// `None` for the global layer.
    pub tenant: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Inherited roles.
    pub inherits: Vec<String>,
    /// Grants.
    pub grants: Vec<String>,
    /// Denies.
    pub denies: Vec<String>,
    /// Subjects holding the role in this scope.
    pub holders: Vec<String>,
}

fn layer(policy: &Policy, tenant: Option<&str>, name: &str, def: &RoleDef) -> Layer {
    let holders = policy
        .document()
        .subjects
        .iter()
        .filter(|(_, s)| match tenant {
            None => s.roles.iter().any(|r| r == name),
            Some(t) => s
                .tenants
                .get(t)
                .is_some_and(|l| l.iter().any(|r| r == name)),
        })
        .map(|(subject, _)| subject.clone())
        .collect();
    Layer {
        name: name.to_owned(),
        tenant: tenant.map(str::to_owned),
        description: def.description.clone(),
        inherits: def.inherits.clone(),
        grants: def.grants.clone(),
        denies: def.denies.clone(),
        holders,
    }
}

/// The layers in a scope: global roles, and (in a tenant) that tenant's layers.
fn layers(policy: &Policy, tenant: Option<&str>) -> Vec<Layer> {
    let doc = policy.document();
    let mut out: Vec<Layer> = doc
        .roles
        .iter()
        .map(|(name, def)| layer(policy, None, name, def))
        .collect();
    if let Some(t) = tenant
        && let Some(def) = doc.tenants.get(t)
    {
        out.extend(
            def.roles
                .iter()
                .map(|(name, def)| layer(policy, Some(t), name, def)),
        );
    }
    out.sort_by(|a, b| (&a.name, &a.tenant).cmp(&(&b.name, &b.tenant)));
    out
}

/// `show`'s answer.
#[derive(Debug, serde::Serialize)]
struct Shown {
    name: String,
    tenant: Option<String>,
    layers: Vec<Layer>,
    effective: Vec<String>,
    denied: Vec<String>,
}

/// Runs a `role` subcommand.
pub async fn run(
    ctx: &Context,
    command: &RoleCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        RoleCommand::List(scope) => {
            let format = ctx.require_format("role list", &[Format::Text, Format::Json])?;
            let tenant = tenant_of(scope);
            let (_, policy) = open(ctx, "system.roles.read", tenant).await?;
            ensure_tenant(&policy, tenant)?;
            let all = layers(&policy, tenant);
            if format == Format::Json {
                output::json(out, &all)?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|l| {
                        vec![
                            l.name.clone(),
                            l.tenant.clone().unwrap_or_else(|| "global".to_owned()),
                            output::list(&l.inherits),
                            output::list(&l.grants),
                            output::list(&l.denies),
                            l.holders.len().to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    out,
                    &["ROLE", "SCOPE", "INHERITS", "GRANTS", "DENIES", "HOLDERS"],
                    &rows,
                )?;
            }
            Ok(Exit::Ok)
        }
        RoleCommand::Show { role, scope } => {
            let format = ctx.require_format("role show", &[Format::Text, Format::Json])?;
            let tenant = tenant_of(scope);
            let (_, policy) = open(ctx, "system.roles.read", tenant).await?;
            ensure_role(&policy, tenant, role)?;
            let shown = show(&policy, tenant, role);
            if format == Format::Json {
                output::json(out, &shown)?;
            } else {
                write_shown(&shown, out)?;
            }
            Ok(Exit::Ok)
        }
        RoleCommand::Create {
            role,
            description,
            scope,
        } => {
            valid_name("role", role)?;
            let tenant = tenant_of(scope);
            let (store, policy) = open(ctx, "system.roles.manage", tenant).await?;
            ensure_tenant(&policy, tenant)?;
            let doc = policy.document();
            let exists = match tenant {
                None => doc.roles.contains_key(role),
                Some(t) => doc
                    .tenants
                    .get(t)
                    .is_some_and(|d| d.roles.contains_key(role)),
            };
            if exists && description.is_none() {
                return Err(CliError::invalid(format!(
                    "role `{role}` already exists {}; pass --description to change its description",
                    scope_words(tenant)
                )));
            }
            let applied = store
                .apply_one(
                    &ctx.change_context()?,
                    Change::CreateRole {
                        tenant: tenant.map(str::to_owned),
                        name: role.clone(),
                        description: description.clone(),
                    },
                )
                .await?;
            report(
                ctx,
                out,
                applied,
                &format!("created role `{role}` {}", scope_words(tenant)),
            )?;
            Ok(Exit::Ok)
        }
        RoleCommand::Delete { role, scope, yes } => {
            let tenant = tenant_of(scope);
            let (store, policy) = open(ctx, "system.roles.manage", tenant).await?;
            ensure_role(&policy, tenant, role)?;
            if let Some(t) = tenant
                && !policy
                    .document()
                    .tenants
                    .get(t)
                    .is_some_and(|d| d.roles.contains_key(role))
            {
                return Err(CliError::invalid(format!(
                    "role `{role}` is a global role with no layer in tenant `{t}`; to delete it, run without --tenant"
                )));
            }
            let in_use = in_use(&policy, tenant, role);
            if !in_use.is_empty() {
                let held = in_use
                    .iter()
                    .any(|why| why.starts_with("held by") || why.starts_with("inherited by"));
                let hint = if held {
                    format!(
                        "unassign and uninherit it first (`rbac-admin user unassign USER {role} \
                         [--tenant T]`, `rbac-admin role uninherit ROLE {role} [--tenant T]`)"
                    )
                } else {
                    "delete its rules in those tenants first".to_owned()
                };
                return Err(CliError::invalid(format!(
                    "role `{role}` {} is still in use ({}); {hint}",
                    scope_words(tenant),
                    in_use.join("; ")
                )));
            }
            let action = format!("delete role `{role}` {}", scope_words(tenant));
            ctx.confirm(&action, *yes)?;
            let applied = store
                .apply_one(
                    &ctx.change_context()?,
                    Change::DeleteRole {
                        tenant: tenant.map(str::to_owned),
                        name: role.clone(),
                    },
                )
                .await?;
            report(
                ctx,
                out,
                applied,
                &format!("deleted role `{role}` {}", scope_words(tenant)),
            )?;
            Ok(Exit::Ok)
        }
        RoleCommand::Grant(args) => rule(ctx, args, Rule::Grant, out).await,
        RoleCommand::Revoke(args) => rule(ctx, args, Rule::Revoke, out).await,
        RoleCommand::Deny(args) => rule(ctx, args, Rule::Deny, out).await,
        RoleCommand::Undeny(args) => rule(ctx, args, Rule::Undeny, out).await,
        RoleCommand::Inherit(args) => inherit(ctx, args, true, out).await,
        RoleCommand::Uninherit(args) => inherit(ctx, args, false, out).await,
    }
}

/// Why deleting a role (layer) would leave the policy dangling: who holds it and which roles
/// inherit it. A tenant layer of a global role can always go (the global role stays).
fn in_use(policy: &Policy, tenant: Option<&str>, role: &str) -> Vec<String> {
    let doc = policy.document();
    if tenant.is_some() && doc.roles.contains_key(role) {
        return Vec::new();
    }
    let mut holders = Vec::new();
    for (subject, def) in &doc.subjects {
        if tenant.is_none() && def.roles.iter().any(|r| r == role) {
            holders.push(format!("`{subject}` globally"));
        }
        for (t, roles) in &def.tenants {
            if tenant.is_none_or(|want| want == t) && roles.iter().any(|r| r == role) {
                holders.push(format!("`{subject}` in `{t}`"));
            }
        }
    }
    let mut inheritors = Vec::new();
    if tenant.is_none() {
        for (name, def) in &doc.roles {
            if def.inherits.iter().any(|p| p == role) {
                inheritors.push(format!("`{name}`"));
            }
        }
    }
    for (t, def) in &doc.tenants {
        if tenant.is_none_or(|want| want == t) {
            for (name, layer) in &def.roles {
                if layer.inherits.iter().any(|p| p == role) {
                    inheritors.push(format!("`{name}` in `{t}`"));
                }
            }
        }
    }
    // A global role's rules in a tenant would outlive it as a role of the tenant's own.
    let mut layers = Vec::new();
    if tenant.is_none() && doc.roles.contains_key(role) {
        for (t, _) in doc.tenant_layers(role).filter(|(_, l)| l.has_rules()) {
            layers.push(format!(
                "`{t}` (`rbac-admin role delete {role} --tenant {t}`)"
            ));
        }
    }
    let mut why = Vec::new();
    if !holders.is_empty() {
        why.push(format!("held by {}", holders.join(", ")));
    }
    if !inheritors.is_empty() {
        why.push(format!("inherited by {}", inheritors.join(", ")));
    }
    if !layers.is_empty() {
        why.push(format!("with rules of its own in {}", layers.join(", ")));
    }
    why
}

fn show(policy: &Policy, tenant: Option<&str>, role: &str) -> Shown {
    let doc = policy.document();
    let mut found = Vec::new();
    if let Some(def) = doc.roles.get(role) {
        found.push(layer(policy, None, role, def));
    }
    if let Some(t) = tenant
        && let Some(def) = doc.tenants.get(t).and_then(|d| d.roles.get(role))
    {
        found.push(layer(policy, Some(t), role, def));
    }
    let matrix = super::matrix::compute(policy, tenant, None);
    let row = |cell| {
        matrix
            .permissions
            .iter()
            .filter(|p| matrix.cell(role, p) == cell)
            .cloned()
            .collect::<Vec<_>>()
    };
    Shown {
        name: role.to_owned(),
        tenant: tenant.map(str::to_owned),
        layers: found,
        effective: row(super::matrix::Cell::Allow),
        denied: row(super::matrix::Cell::Deny),
    }
}

fn write_shown(shown: &Shown, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "role {} ({})",
        shown.name,
        scope_words(shown.tenant.as_deref())
    )?;
    for l in &shown.layers {
        let which = l.tenant.as_deref().map_or("global layer".to_owned(), |t| {
            format!("layer in tenant `{t}`")
        });
        writeln!(out, "{which}:")?;
        if let Some(d) = &l.description {
            writeln!(out, "  description: {d}")?;
        }
        writeln!(out, "  inherits:    {}", output::list(&l.inherits))?;
        writeln!(out, "  grants:      {}", output::list(&l.grants))?;
        writeln!(out, "  denies:      {}", output::list(&l.denies))?;
        writeln!(out, "  held by:     {}", output::list(&l.holders))?;
    }
    writeln!(out, "effective permissions ({}):", shown.effective.len())?;
    for p in &shown.effective {
        writeln!(out, "  {p}")?;
    }
    if !shown.denied.is_empty() {
        writeln!(out, "denied ({}):", shown.denied.len())?;
        for p in &shown.denied {
            writeln!(out, "  {p}")?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Grant,
    Revoke,
    Deny,
    Undeny,
}

async fn rule(
    ctx: &Context,
    args: &RuleArgs,
    kind: Rule,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    rbac_core::name::Pattern::parse(&args.pattern).map_err(|e| {
        CliError::invalid(format!(
            "bad permission pattern: {e}; use a permission (`finance.invoices.read`) or a trailing wildcard (`finance.*`)"
        ))
    })?;
    let tenant = tenant_of(&args.scope);
    let (store, policy) = open(ctx, "system.roles.manage", tenant).await?;
    ensure_role(&policy, tenant, &args.role)?;
    let (tenant_s, role, pattern) = (
        tenant.map(str::to_owned),
        args.role.clone(),
        args.pattern.clone(),
    );
    let change = match kind {
        Rule::Grant => Change::Grant {
            tenant: tenant_s,
            role,
            pattern,
        },
        Rule::Revoke => Change::Revoke {
            tenant: tenant_s,
            role,
            pattern,
        },
        Rule::Deny => Change::Deny {
            tenant: tenant_s,
            role,
            pattern,
        },
        Rule::Undeny => Change::Undeny {
            tenant: tenant_s,
            role,
            pattern,
        },
    };
    let applied = store.apply_one(&ctx.change_context()?, change).await?;
    let what = match kind {
        Rule::Grant => "now grants",
        Rule::Revoke => "no longer grants",
        Rule::Deny => "now denies",
        Rule::Undeny => "no longer denies",
    };
    report(
        ctx,
        out,
        applied,
        &format!(
            "role `{}` {what} `{}` {}",
            args.role,
            args.pattern,
            scope_words(tenant)
        ),
    )?;
    Ok(Exit::Ok)
}

async fn inherit(
    ctx: &Context,
    args: &InheritArgs,
    add: bool,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    let tenant = tenant_of(&args.scope);
    let (store, policy) = open(ctx, "system.roles.manage", tenant).await?;
    ensure_role(&policy, tenant, &args.role)?;
    ensure_role(&policy, tenant, &args.parent)?;
    let (tenant_s, role, parent) = (
        tenant.map(str::to_owned),
        args.role.clone(),
        args.parent.clone(),
    );
    let change = if add {
        Change::Inherit {
            tenant: tenant_s,
            role,
            parent,
        }
    } else {
        Change::Uninherit {
            tenant: tenant_s,
            role,
            parent,
        }
    };
    let applied = store.apply_one(&ctx.change_context()?, change).await?;
    let done = if add {
        format!(
            "role `{}` now inherits `{}` {}",
            args.role,
            args.parent,
            scope_words(tenant)
        )
    } else {
        format!(
            "role `{}` no longer inherits `{}` {}",
            args.role,
            args.parent,
            scope_words(tenant)
        )
    };
    report(ctx, out, applied, &done)?;
    Ok(Exit::Ok)
}
