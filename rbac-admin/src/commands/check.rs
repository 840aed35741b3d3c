//! `check` (against files or the database) and `can-i` (the acting user).

use std::io::Write;

use rbac_core::{Engine, Explanation};

use super::{load_policy, tenant_of};
use crate::check::{BatchOptions, Decided, run_batch_from};
use crate::cli::{CanIArgs, CheckArgs, Format};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

fn print(
    ctx: &Context,
    why: &Explanation,
    explain: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let allowed = why.decision.is_allowed();
    if ctx.format == Format::Json {
        return output::json(out, &Decided::new(why, None, explain));
    }
    if explain {
        let text = why.to_string();
        let rest = text.split_once(':').map_or("", |(_, rest)| rest);
        writeln!(out, "{}:{rest}", output::verdict(allowed, ctx.color))
    } else {
        writeln!(out, "{}", output::verdict(allowed, ctx.color))
    }
}

/// Runs `check`: a file policy needs no permission; the database needs `system.policy.check`
/// (in the query's tenant; globally for a batch).
pub async fn run(
    ctx: &Context,
    args: &CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    ctx.require_format("check", &[Format::Text, Format::Json])?;
    let tenant = match args.query.as_slice() {
        [_, t, _] if !t.is_empty() => Some(t.as_str()),
        _ => None,
    };
    let policy = if args.source.is_file() {
        load_policy(ctx, &args.source, "system.policy.check", None).await?
    } else {
        // The permission is checked in the query's tenant; a tenant the policy does not know is
        // not an error but a deny, so the asker then needs the permission globally.
        let store = ctx.connect_existing().await?;
        let known = store
            .load()
            .await?
            .document()
            .tenants
            .contains_key(tenant.unwrap_or_default());
        ctx.authorize(&store, "system.policy.check", tenant.filter(|_| known))
            .await?
    };
    let engine = Engine::new(&policy);
    if let Some(batch) = &args.batch {
        let options = BatchOptions {
            explain: args.explain,
            json_lines: ctx.format == Format::Json,
        };
        // Read as a stream: answers come out while a pipe is still being written, and a
        // file of any length takes one chunk of memory.
        let summary = if batch.as_os_str() == "-" {
            let stdin = std::io::stdin().lock();
            run_batch_from(&engine, stdin, "<stdin>", options, out, err)?
        } else {
            let name = batch.display().to_string();
            let file = std::fs::File::open(batch).map_err(|source| CliError::Read {
                path: name.clone(),
                source,
            })?;
            run_batch_from(&engine, file, &name, options, out, err)?
        };
        return Ok(if summary.malformed > 0 {
            Exit::Invalid
        } else {
            Exit::Ok
        });
    }
    let [subject, tenant, permission] = args.query.as_slice() else {
        return Err(CliError::invalid(
            "give SUBJECT TENANT PERMISSION (\"\" for the global scope) or --batch FILE",
        ));
    };
    // Malformed names are refused as `--batch` refuses them (exit 3): a typo must not read
    // as a deny (exit 2).
    rbac_core::name::validate_subject(subject)
        .map_err(|e| CliError::invalid(format!("bad subject: {e}")))?;
    if !tenant.is_empty() {
        rbac_core::name::validate_name(tenant)
            .map_err(|e| CliError::invalid(format!("bad tenant: {e}")))?;
    }
    rbac_core::name::validate_permission(permission)
        .map_err(|e| CliError::invalid(format!("bad permission: {e}")))?;
    let why = engine.explain(subject, tenant, permission);
    print(ctx, &why, args.explain, out)?;
    Ok(if why.decision.is_allowed() {
        Exit::Ok
    } else {
        Exit::Denied
    })
}

/// Runs `can-i`: whether the acting user holds a permission. Anyone may ask about themself.
pub async fn can_i(ctx: &Context, args: &CanIArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    ctx.require_format("can-i", &[Format::Text, Format::Json])?;
    let actor = ctx.actor()?.to_owned();
    let store = ctx.connect_existing().await?;
    let policy = store.load().await?;
    let tenant = tenant_of(&args.scope).unwrap_or(rbac_core::GLOBAL);
    let why = Engine::new(&policy).explain(&actor, tenant, &args.permission);
    if ctx.format == Format::Json || args.explain {
        print(ctx, &why, args.explain, out)?;
    } else {
        let word = if why.decision.is_allowed() {
            "yes"
        } else {
            "no"
        };
        writeln!(
            out,
            "{}",
            output::paint(
                word,
                if why.decision.is_allowed() {
                    "32"
                } else {
                    "31"
                },
                ctx.color
            )
        )?;
    }
    Ok(if why.decision.is_allowed() {
        Exit::Ok
    } else {
        Exit::Denied
    })
}
