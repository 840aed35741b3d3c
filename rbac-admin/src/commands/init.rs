//! `init`: create the database, declare the built-in permissions and roles, make the first
//! root administrator.

use std::io::Write;

use rbac_core::store::ChangeContext;

use super::valid_subject;
use crate::builtin;
use crate::cli::{Format, InitArgs};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// What `init` did.
#[derive(Debug, serde::Serialize)]
struct Initialised {
    db: String,
    admin: String,
    permissions: usize,
    roles: Vec<&'static str>,
    version: i64,
}

/// Runs `init`. Needs no permission (there is nobody to hold one yet), and so refuses a
/// database that already holds a policy.
pub async fn run(ctx: &Context, args: &InitArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let format = ctx.require_format("init", &[Format::Text, Format::Json])?;
    let admin = match (&args.admin, &ctx.actor) {
        (Some(a), _) | (None, Some(a)) => a.clone(),
        (None, None) => {
            return Err(CliError::invalid(
                "no administrator: pass --admin NAME (the first user to hold the `root` role)",
            ));
        }
    };
    valid_subject(&admin)?;
    let store = ctx.connect_or_create().await?;
    let version = store.version().await?;
    if version > 0 {
        return Err(CliError::invalid(format!(
            "the policy database `{}` is already initialised (policy version {version}); nothing was changed. \
             `rbac-admin status` shows it",
            store.url()
        )));
    }
    let mut change_ctx = ChangeContext::new(ctx.actor.clone().unwrap_or_else(|| admin.clone()));
    change_ctx.comment = Some(
        ctx.comment
            .clone()
            .unwrap_or_else(|| "rbac-admin init".to_owned()),
    );
    let applied = store
        .apply(&change_ctx, &builtin::init_changes(&admin))
        .await?;
    let done = Initialised {
        db: store.url().to_owned(),
        admin,
        permissions: builtin::PERMISSIONS.len(),
        roles: builtin::ROLES.iter().map(|(name, _, _)| *name).collect(),
        version: applied.version,
    };
    if format == Format::Json {
        output::json(out, &done)?;
    } else {
        writeln!(
            out,
            "initialised `{}`: {} built-in permissions, roles {}; `{}` holds `{}` (policy version {})",
            done.db,
            done.permissions,
            done.roles.join(", "),
            done.admin,
            builtin::ROOT_ROLE,
            done.version
        )?;
    }
    Ok(Exit::Ok)
}
