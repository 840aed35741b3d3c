//! `policy validate|import|export|test`.

use std::io::Write;
use std::path::Path;

use rbac_core::{Engine, Policy};

use super::load_policy;
use crate::builtin;
use crate::cli::{ExportArgs, ExportAs, Format, ImportArgs, PolicyCommand, PolicyTestArgs};
use crate::context::{Context, authorize_in};
use crate::error::{CliError, Exit};
use crate::output;
use crate::progress::Progress;

/// Runs a `policy` subcommand.
pub async fn run(
    ctx: &Context,
    command: &PolicyCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    match command {
        PolicyCommand::Validate { file } => validate(ctx, file, out, err),
        PolicyCommand::Import(args) => import(ctx, args, out).await,
        PolicyCommand::Export(args) => export(ctx, args, out).await,
        PolicyCommand::Test(args) => test(ctx, args, out).await,
    }
}

/// A valid policy's size, as `validate` reports it.
#[derive(Debug, serde::Serialize)]
struct Valid<'a> {
    file: &'a str,
    valid: bool,
    permissions: usize,
    roles: usize,
    tenants: usize,
    subjects: usize,
}

fn validate(
    ctx: &Context,
    file: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let format = ctx.require_format("policy validate", &[Format::Text, Format::Json])?;
    match Policy::from_toml_file(file) {
        Ok(policy) => {
            let doc = policy.document();
            let shown = file.display().to_string();
            let valid = Valid {
                file: &shown,
                valid: true,
                permissions: doc.permissions.0.len(),
                roles: doc.roles.len(),
                tenants: doc.tenants.len(),
                subjects: doc.subjects.len(),
            };
            if format == Format::Json {
                output::json(out, &valid)?;
            } else {
                writeln!(
                    out,
                    "{}: ok ({} permissions, {} roles, {} tenants, {} subjects)",
                    valid.file, valid.permissions, valid.roles, valid.tenants, valid.subjects
                )?;
            }
            Ok(Exit::Ok)
        }
        Err(e) => {
            writeln!(err, "{e}")?;
            if format == Format::Json {
                // The same verdict on stdout for scripts: `valid: false` and every problem.
                let errors: Vec<String> = match &e {
                    rbac_core::PolicyError::Invalid(v) => {
                        v.issues.iter().map(ToString::to_string).collect()
                    }
                    other => vec![other.to_string()],
                };
                output::json(
                    out,
                    &serde_json::json!({
                        "file": file.display().to_string(),
                        "valid": false,
                        "errors": errors,
                    }),
                )?;
            }
            Ok(Exit::Invalid)
        }
    }
}

async fn import(ctx: &Context, args: &ImportArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    ctx.require_format("policy import", &[Format::Text, Format::Json])?;
    let shown = match (&args.file, &args.casbin_model) {
        (Some(file), _) => file.display().to_string(),
        (None, Some(model)) => model.display().to_string(),
        (None, None) => {
            return Err(CliError::invalid(
                "give FILE.toml or --casbin-model and --casbin-policy",
            ));
        }
    };
    let store = ctx.connect_existing().await?;
    let actor = ctx.actor()?.to_owned();
    ctx.authorize(&store, "system.policy.import", None).await?;
    ctx.confirm(
        &format!(
            "replace the whole policy in `{}` with `{shown}`",
            store.url()
        ),
        args.yes,
    )?;
    let mut progress = Progress::start(ctx, &format!("importing {shown}"), 5);
    progress.step("reading and validating");
    let source = crate::cli::PolicySource {
        policy: args.file.clone(),
        casbin_model: args.casbin_model.clone(),
        casbin_policy: args.casbin_policy.clone(),
    };
    let imported = load_policy(ctx, &source, "system.policy.import", None).await?;
    progress.step("keeping the built-in permissions and roles");
    let mut doc = imported.into_document();
    let added = builtin::merge_into(&mut doc);
    let policy = Policy::from_document(doc).map_err(|e| {
        CliError::invalid(format!(
            "{shown} does not validate with the built-in `system.*` permissions and roles added: {}",
            e.issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ))
    })?;
    progress.step("checking that the importer keeps access");
    if !args.force && authorize_in(&policy, &actor, "system.policy.import", None).is_err() {
        progress.finish("refused");
        return Err(CliError::invalid(format!(
            "refusing to import `{shown}`: `{actor}` would lose `system.policy.import` and nobody \
             could be sure to import again; give `{actor}` a role granting it in the file, or pass --force"
        )));
    }
    progress.step("writing to the database");
    let applied = store.import(&ctx.change_context()?, &policy).await?;
    progress.step("verifying");
    let stored = store.load().await?;
    if stored.document() != policy.document() {
        progress.finish("failed");
        return Err(CliError::other(
            Exit::Failure,
            "the stored policy differs from the imported one after the import; run `rbac-admin diff FILE db`",
        ));
    }
    progress.finish("done");
    if ctx.format == Format::Json {
        output::json(
            out,
            &serde_json::json!({
                "imported": shown,
                "changed": applied.changed,
                "version": applied.version,
                "added_builtins": added,
            }),
        )?;
    } else if applied.changed {
        writeln!(
            out,
            "imported `{shown}` into `{}` (policy version {}){}",
            store.url(),
            applied.version,
            if added.is_empty() {
                String::new()
            } else {
                format!("; kept {} built-in items the file lacks", added.len())
            }
        )?;
    } else {
        writeln!(
            out,
            "no change: `{}` already holds this policy (policy version {})",
            store.url(),
            applied.version
        )?;
    }
    Ok(Exit::Ok)
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|source| CliError::Write {
        path: path.display().to_string(),
        source,
    })
}

async fn export(ctx: &Context, args: &ExportArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let format = ctx.require_format("policy export", &[Format::Text, Format::Json])?;
    let store = ctx.connect_existing().await?;
    let policy = ctx.authorize(&store, "system.policy.export", None).await?;
    match args.export_as {
        ExportAs::Toml => {
            let text = if format == Format::Json {
                let mut text = serde_json::to_string_pretty(policy.document()).map_err(|e| {
                    CliError::other(Exit::Failure, format!("cannot write JSON: {e}"))
                })?;
                text.push('\n');
                text
            } else {
                policy.to_toml_string().map_err(|e| {
                    CliError::other(Exit::Failure, format!("cannot write TOML: {e}"))
                })?
            };
            match &args.out {
                Some(path) => write_file(path, &text)?,
                None => write!(out, "{text}")?,
            }
        }
        ExportAs::Casbin => {
            let Some(dir) = &args.out else {
                return Err(CliError::invalid(
                    "`policy export --as casbin` writes two files: pass --out DIR (model.conf and policy.csv)",
                ));
            };
            let exported = rbac_core::casbin::export(&policy)?;
            std::fs::create_dir_all(dir).map_err(|source| CliError::Write {
                path: dir.display().to_string(),
                source,
            })?;
            write_file(&dir.join("model.conf"), &exported.model)?;
            write_file(&dir.join("policy.csv"), &exported.policy)?;
            writeln!(
                out,
                "wrote {0}/model.conf and {0}/policy.csv",
                dir.display()
            )?;
        }
    }
    Ok(Exit::Ok)
}

/// One expectation that did not hold.
#[derive(Debug, serde::Serialize)]
struct Mismatch {
    line: usize,
    subject: String,
    tenant: String,
    permission: String,
    expected: &'static str,
    actual: &'static str,
    reason: String,
}

/// A line that is not an expectation.
#[derive(Debug, serde::Serialize)]
struct Malformed {
    line: usize,
    problem: String,
}

/// `policy test`'s report.
#[derive(Debug, serde::Serialize)]
struct TestReport {
    file: String,
    expectations: usize,
    passed: usize,
    mismatches: Vec<Mismatch>,
    malformed: Vec<Malformed>,
}

/// Parses `subject tenant permission allow|deny` (tenant `-` or `""`: global scope).
fn parse_expectation(line: &str) -> Result<Option<(String, String, String, bool)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [subject, tenant, permission, expected] = fields.as_slice() else {
        return Err(format!(
            "expected 4 fields `subject tenant permission allow|deny`, found {}",
            fields.len()
        ));
    };
    let tenant = match *tenant {
        "-" | "\"\"" => "",
        t => t,
    };
    let expected = match expected.to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        other => return Err(format!("expected `allow` or `deny`, found `{other}`")),
    };
    rbac_core::name::validate_subject(subject).map_err(|e| format!("bad subject: {e}"))?;
    rbac_core::name::validate_permission(permission).map_err(|e| format!("bad permission: {e}"))?;
    Ok(Some((
        (*subject).to_owned(),
        tenant.to_owned(),
        (*permission).to_owned(),
        expected,
    )))
}

async fn test(ctx: &Context, args: &PolicyTestArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let format = ctx.require_format("policy test", &[Format::Text, Format::Json])?;
    let text = std::fs::read_to_string(&args.file).map_err(|source| CliError::Read {
        path: args.file.display().to_string(),
        source,
    })?;
    let policy = load_policy(ctx, &args.source, "system.policy.check", None).await?;
    let engine = Engine::new(&policy);
    let file = args.file.display().to_string();
    let mut report = TestReport {
        file: file.clone(),
        expectations: 0,
        passed: 0,
        mismatches: Vec::new(),
        malformed: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        match parse_expectation(line) {
            Ok(None) => {}
            Ok(Some((subject, tenant, permission, expected))) => {
                report.expectations += 1;
                let why = engine.explain(&subject, &tenant, &permission);
                if why.decision.is_allowed() == expected {
                    report.passed += 1;
                } else {
                    report.mismatches.push(Mismatch {
                        line: n + 1,
                        subject,
                        tenant,
                        permission,
                        expected: if expected { "allow" } else { "deny" },
                        actual: why.decision.verdict(),
                        // The explanation without its leading verdict (`deny: `).
                        reason: why
                            .to_string()
                            .split_once(": ")
                            .map_or_else(|| why.to_string(), |(_, rest)| rest.to_owned()),
                    });
                }
            }
            Err(problem) => report.malformed.push(Malformed {
                line: n + 1,
                problem,
            }),
        }
    }
    let ok = report.mismatches.is_empty() && report.malformed.is_empty();
    if format == Format::Json {
        output::json(out, &report)?;
    } else {
        for m in &report.mismatches {
            let tenant = if m.tenant.is_empty() { "-" } else { &m.tenant };
            writeln!(
                out,
                "{file}:{}: {} {tenant} {}: expected {}, got {} ({})",
                m.line, m.subject, m.permission, m.expected, m.actual, m.reason
            )?;
        }
        for m in &report.malformed {
            writeln!(out, "{file}:{}: {}", m.line, m.problem)?;
        }
        writeln!(
            out,
            "{}: {} expectations, {} passed, {} mismatched, {} malformed lines",
            if ok { "ok" } else { "FAILED" },
            report.expectations,
            report.passed,
            report.mismatches.len(),
            report.malformed.len()
        )?;
    }
    Ok(if ok { Exit::Ok } else { Exit::Invalid })
}
