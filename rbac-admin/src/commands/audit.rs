//! `audit list|export|verify`.

use std::io::Write;

use rbac_core::store::AuditQuery;

use super::open;
use crate::cli::{AuditCommand, AuditFilter, Format};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::{output, time};

fn query(filter: &AuditFilter) -> Result<AuditQuery, CliError> {
    Ok(AuditQuery {
        actor: filter.by.clone(),
        subject: filter.subject.clone(),
        tenant: filter.tenant.clone(),
        permission: filter.permission.clone(),
        since_ms: filter
            .since
            .as_deref()
            .map(|t| time::parse("--since", t))
            .transpose()?,
        until_ms: filter
            .until
            .as_deref()
            .map(|t| time::parse("--until", t))
            .transpose()?,
    })
}

/// Keeps the last `limit` items.
fn last<T>(mut items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit
        && items.len() > n
    {
        items.drain(..items.len() - n);
    }
    items
}

/// Runs an `audit` subcommand.
pub async fn run(
    ctx: &Context,
    command: &AuditCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        AuditCommand::List(filter) => {
            let format = ctx.require_format("audit list", &[Format::Text, Format::Json])?;
            let q = query(filter)?;
            let (store, _) = open(ctx, "system.audit.read", None).await?;
            if filter.decisions {
                let records = last(store.decisions(&q).await?, filter.limit);
                if format == Format::Json {
                    output::json(out, &records)?;
                } else {
                    let rows: Vec<Vec<String>> = records
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                time::format_ms(r.at_ms),
                                r.subject.clone(),
                                if r.tenant.is_empty() {
                                    "-".to_owned()
                                } else {
                                    r.tenant.clone()
                                },
                                r.permission.clone(),
                                output::verdict(r.allowed, ctx.color),
                                r.cause.clone(),
                                r.version.to_string(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &[
                            "ID",
                            "TIME",
                            "SUBJECT",
                            "TENANT",
                            "PERMISSION",
                            "DECISION",
                            "CAUSE",
                            "VERSION",
                        ],
                        &rows,
                    )?;
                }
            } else {
                let records = last(store.audit(&q).await?, filter.limit);
                if format == Format::Json {
                    output::json(out, &records)?;
                } else {
                    let rows: Vec<Vec<String>> = records
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                time::format_ms(r.at_ms),
                                r.actor.clone(),
                                r.action.clone(),
                                r.version.to_string(),
                                r.comment.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &["ID", "TIME", "ACTOR", "ACTION", "VERSION", "COMMENT"],
                        &rows,
                    )?;
                }
            }
            Ok(Exit::Ok)
        }
        AuditCommand::Export { filter, out: path } => {
            // JSON lines whatever the format; anything but text or json is a mistake.
            ctx.require_format("audit export", &[Format::Text, Format::Json])?;
            let q = query(filter)?;
            let (store, _) = open(ctx, "system.audit.read", None).await?;
            let mut buffer = Vec::new();
            let count = if filter.decisions {
                let records = last(store.decisions(&q).await?, filter.limit);
                for r in &records {
                    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
                    writeln!(buffer, "{line}")?;
                }
                records.len()
            } else {
                let records = last(store.audit(&q).await?, filter.limit);
                for r in &records {
                    let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
                    writeln!(buffer, "{line}")?;
                }
                records.len()
            };
            match path {
                Some(path) => {
                    std::fs::write(path, &buffer).map_err(|source| CliError::Write {
                        path: path.display().to_string(),
                        source,
                    })?;
                    writeln!(out, "exported {count} records to {}", path.display())?;
                }
                None => out.write_all(&buffer)?,
            }
            Ok(Exit::Ok)
        }
        AuditCommand::Verify => {
            let format = ctx.require_format("audit verify", &[Format::Text, Format::Json])?;
            let (store, _) = open(ctx, "system.audit.verify", None).await?;
            let report = store.verify_audit().await?;
            let intact = report.is_intact();
            if format == Format::Json {
                output::json(
                    out,
                    &serde_json::json!({
                        "intact": intact,
                        "changes": report.changes,
                        "first_broken_change": report.first_broken_change,
                        "decisions": report.decisions,
                        "first_broken_decision": report.first_broken_decision,
                    }),
                )?;
            } else {
                let line = |what: &str, count: i64, broken: Option<i64>| match broken {
                    None => format!("{what}: {count} records, chain intact"),
                    Some(id) => format!(
                        "{what}: chain BROKEN at record {id} (edited, deleted or reordered); \
                         restore from a backup and investigate who had write access"
                    ),
                };
                writeln!(
                    out,
                    "{}",
                    line("policy changes", report.changes, report.first_broken_change)
                )?;
                writeln!(
                    out,
                    "{}",
                    line("decisions", report.decisions, report.first_broken_decision)
                )?;
            }
            Ok(if intact { Exit::Ok } else { Exit::Invalid })
        }
    }
}
