//! The `rbac-admin` command line, as a library: [`Cli`] is the clap definition, [`run`] carries
//! a parsed command out and returns an [`Exit`] code. `main.rs` only parses and dispatches.
//!
//! ```text
//! rbac-admin check --policy policy.toml alice acme finance.invoices.read --explain
//! rbac-admin check --policy policy.toml --batch queries.csv
//! rbac-admin check --casbin-model model.conf --casbin-policy policy.csv --batch queries.csv
//! rbac-admin policy validate policy.toml
//! rbac-admin coverage report.json --min 90
//! rbac-admin coverage --src path/to/app/src --format markdown
//! ```
//!
//! Exit codes ([`Exit`]): 0 success (for a single check: allowed), 1 runtime failure,
//! 2 denied (single check), 3 invalid input or policy, 4 route coverage below `--min`.
//! Usage errors are clap's (exit 2, with the usage printed).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rbac_core::{Engine, Policy};

pub mod check;
pub mod coverage;
pub mod static_coverage;

/// Exit codes, documented and stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success; for a single check, allowed.
    Ok = 0,
    /// Something failed at run time (I/O, a broken pipe excepted).
    Failure = 1,
    /// A single check was denied.
    Denied = 2,
    /// The input or the policy is invalid; every problem was printed.
    Invalid = 3,
    /// Route coverage is below the required minimum.
    BelowMinimum = 4,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

/// Administer role-based access control: check decisions and validate policies.
#[derive(Debug, Parser)]
#[command(name = "rbac-admin", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decide `subject tenant permission` queries against a policy.
    Check(CheckArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show which routes are protected by what, from a saved report or from source.
    Coverage(CoverageArgs),
}

/// `coverage` arguments.
#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// A report saved as JSON by the application (`CoverageReport::to_json_string`).
    #[arg(
        value_name = "REPORT.json",
        required_unless_present = "src",
        conflicts_with = "src"
    )]
    pub report: Option<PathBuf>,
    /// Build the report from the application's source instead (static analysis with syn).
    #[arg(long, value_name = "DIR")]
    pub src: Option<PathBuf>,
    /// Exit with code 4 when fewer than this percentage of routes are protected or public.
    #[arg(long, value_name = "PERCENT")]
    pub min: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: coverage::ReportFormat,
}

/// Where the policy comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct PolicySource {
    /// A TOML policy file.
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["casbin_model", "casbin_policy"])]
    pub policy: Option<PathBuf>,
    /// A casbin model (`.conf`); needs `--casbin-policy`.
    #[arg(long, value_name = "M.conf", requires = "casbin_policy")]
    pub casbin_model: Option<PathBuf>,
    /// A casbin policy CSV; needs `--casbin-model`.
    #[arg(long, value_name = "P.csv", requires = "casbin_model")]
    pub casbin_policy: Option<PathBuf>,
}

/// `check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    /// The policy.
    pub source: PolicySource,
    /// A CSV file of queries, one `subject,tenant,permission` a line (empty tenant: global
    /// scope); `-` reads standard input. Prints one `allow` or `deny` a line, in order.
    #[arg(long, value_name = "QUERIES.csv", conflicts_with = "query")]
    pub batch: Option<PathBuf>,
    /// Also print the reason: the role chain and the rule that decided.
    #[arg(long)]
    pub explain: bool,
    /// One query: SUBJECT TENANT PERMISSION (use "" for the global scope).
    #[arg(num_args = 3, value_names = ["SUBJECT", "TENANT", "PERMISSION"], required_unless_present = "batch")]
    pub query: Vec<String>,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a TOML policy: print every error, exit 3 if there is any.
    Validate {
        /// The policy file.
        file: PathBuf,
    },
}

/// Carries out a parsed command, printing to standard output and standard error.
pub fn run(cli: Cli) -> Exit {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(cli, &mut stdout.lock(), &mut stderr.lock())
}

/// Like [`run`], writing to the given streams.
pub fn run_with(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let result = match cli.command {
        Command::Check(args) => check_command(&args, out, err),
        Command::Policy(PolicyCommand::Validate { file }) => validate_command(&file, out, err),
        Command::Coverage(args) => coverage_command(&args, out, err),
    };
    match result {
        Ok(exit) => exit,
        // A closed pipe (`| head`) is not an error worth a message.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            e.exit()
        }
    }
}

/// Errors that end a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] rbac_core::PolicyError),
    /// The casbin model or policy could not be imported.
    #[error(transparent)]
    Casbin(#[from] rbac_core::casbin::CasbinError),
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The coverage report could not be produced.
    #[error(transparent)]
    Coverage(#[from] coverage::CoverageError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    fn exit(&self) -> Exit {
        match self {
            CliError::Policy(rbac_core::PolicyError::Io { .. }) | CliError::Read { .. } => {
                Exit::Invalid
            }
            CliError::Casbin(rbac_core::casbin::CasbinError::Io { .. }) => Exit::Invalid,
            CliError::Policy(_) | CliError::Casbin(_) | CliError::Coverage(_) => Exit::Invalid,
            CliError::Io(_) => Exit::Failure,
        }
    }
}

fn load(source: &PolicySource) -> Result<Policy, CliError> {
    match (&source.policy, &source.casbin_model, &source.casbin_policy) {
        (Some(file), _, _) => Ok(Policy::from_toml_file(file)?),
        (None, Some(model), Some(policy)) => Ok(rbac_core::casbin::import_files(model, policy)?),
        // clap's argument group and `requires` make this unreachable; say so plainly if not.
        _ => Err(CliError::Read {
            path: "--policy".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no policy given"),
        }),
    }
}

fn check_command(
    args: &CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let engine = Engine::new(&load(&args.source)?);
    if let Some(batch) = &args.batch {
        let (name, text) = if batch.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
                CliError::Read {
                    path: "<stdin>".into(),
                    source,
                }
            })?;
            ("<stdin>".to_owned(), text)
        } else {
            let text = std::fs::read_to_string(batch).map_err(|source| CliError::Read {
                path: batch.display().to_string(),
                source,
            })?;
            (batch.display().to_string(), text)
        };
        let summary = check::run_batch(&engine, &text, &name, args.explain, out, err)?;
        return Ok(if summary.malformed > 0 {
            Exit::Invalid
        } else {
            Exit::Ok
        });
    }
    let [subject, tenant, permission] = args.query.as_slice() else {
        return Ok(Exit::Invalid);
    };
    let decision = engine.check(subject, tenant, permission);
    if args.explain {
        writeln!(out, "{}", engine.explain(subject, tenant, permission))?;
    } else {
        writeln!(out, "{decision}")?;
    }
    Ok(if decision.is_allowed() {
        Exit::Ok
    } else {
        Exit::Denied
    })
}

fn validate_command(
    file: &std::path::Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    match Policy::from_toml_file(file) {
        Ok(policy) => {
            let doc = policy.document();
            writeln!(
                out,
                "{}: ok ({} permissions, {} roles, {} tenants, {} subjects)",
                file.display(),
                doc.permissions.0.len(),
                doc.roles.len(),
                doc.tenants.len(),
                doc.subjects.len()
            )?;
            Ok(Exit::Ok)
        }
        Err(e) => {
            writeln!(err, "{e}")?;
            Ok(Exit::Invalid)
        }
    }
}

fn coverage_command(
    args: &CoverageArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let (report, notes) = match (&args.src, &args.report) {
        (Some(dir), _) => coverage::report_from_source(dir)?,
        (None, Some(file)) => (coverage::load_report(file)?, Vec::new()),
        (None, None) => return Ok(Exit::Invalid),
    };
    coverage::render(&report, &notes, args.format, out)?;
    if let Some(min) = args.min {
        let percent = report.totals.percent();
        if percent < min {
            writeln!(
                err,
                "coverage {percent:.1}% is below the required {min}%: {} unprotected, {} unresolved",
                report.totals.unprotected, report.totals.unresolved
            )?;
            return Ok(Exit::BelowMinimum);
        }
    }
    Ok(Exit::Ok)
}
