//! The command line, as clap definitions. Completions and the man page are generated from these
//! same types (`rbac-admin completions SHELL`, `rbac-admin man`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default policy database: an SQLite file `rbac.db` in the current directory.
pub const DEFAULT_DB_URL: &str = "sqlite://rbac.db";

/// Administer role-based access control: roles, grants, users, checks, coverage and audit.
///
/// Exit codes: 0 ok (a check: allowed), 1 runtime failure, 2 denied (a check, or the acting
/// user lacks the permission the command needs), 3 invalid input or policy, 4 route coverage
/// below --min.
///
/// Environment: RBAC_DATABASE_URL (--db), RBAC_ACTOR (--actor), RBAC_LOG (log filter, e.g.
/// `info`), NO_COLOR (no colour). Every database command checks the actor against the built-in
/// `system.*` permissions (see `rbac-admin init`).
#[derive(Debug, Parser)]
#[command(name = "rbac-admin", version, args_override_self = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The policy database: `sqlite://FILE` (created by `init`) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        global = true,
        env = "RBAC_DATABASE_URL",
        default_value = DEFAULT_DB_URL,
        value_name = "URL",
        hide_env_values = true
    )]
    pub db: String,
    /// Who performs the operation: checked against the policy and recorded in the audit trail.
    /// Defaults to the login name ($USER).
    #[arg(long, global = true, env = "RBAC_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
    /// Why: a comment recorded with every change in the audit trail.
    #[arg(long, global = true, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Output format; each command lists the ones it supports (text and json everywhere data is
    /// printed; csv and html for `matrix`; markdown and html for `coverage`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// JSON for scripts.
    Json,
    /// Comma-separated values (`matrix`).
    Csv,
    /// A self-contained HTML page (`matrix`, `coverage`).
    Html,
    /// A Markdown table (`coverage`).
    Markdown,
}

impl Format {
    /// The name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Markdown => "markdown",
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database, apply migrations, declare the built-in `system.*` permissions and
    /// roles, and make a first root administrator.
    Init(InitArgs),
    /// Schema version, counts, last backup, policy version and audit chain state.
    Status,
    /// List, declare and remove permissions.
    #[command(subcommand)]
    Perm(PermCommand),
    /// List, show, create and delete roles; grant, revoke, deny and inherit.
    #[command(subcommand)]
    Role(RoleCommand),
    /// List and show users (subjects); assign and unassign roles.
    #[command(subcommand)]
    User(UserCommand),
    /// List, create and delete tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Decide `subject tenant permission` queries against a policy file or the database.
    Check(CheckArgs),
    /// Whether the acting user (--actor) holds a permission (exit 0 yes, 2 no).
    CanI(CanIArgs),
    /// The effective role × permission matrix, after inheritance and denies.
    Matrix(MatrixArgs),
    /// What access each subject gains or loses between two policies.
    Diff(DiffArgs),
    /// Import, export, validate and test policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show which routes are protected by what, from a saved report or from source.
    Coverage(CoverageArgs),
    /// List, export and verify the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create, list, verify, restore, delete and prune backups; schedules and the scheduler.
    Backup(crate::backup::cli::BackupArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a directory.
    Man(ManArgs),
}

/// `init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The first root administrator (holds the built-in `root` role globally). Defaults to the
    /// acting user.
    #[arg(long, value_name = "NAME")]
    pub admin: Option<String>,
}

/// Scope flag shared by many commands.
#[derive(Debug, Args, Clone, Default)]
pub struct TenantScope {
    /// The tenant; without it, the global scope.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

/// `perm` subcommands.
#[derive(Debug, Subcommand)]
pub enum PermCommand {
    /// List declared permissions.
    List {
        /// Only permissions of this module (`finance` lists `finance.*`).
        #[arg(long, value_name = "MODULE")]
        module: Option<String>,
    },
    /// Declare a permission (or change its description).
    Add {
        /// The permission (`finance.invoices.read`).
        name: String,
        /// What it allows.
        #[arg(long, short = 'd', value_name = "TEXT")]
        description: Option<String>,
    },
    /// Remove a permission from the registry (refused while a role names it).
    Remove {
        /// The permission.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `role` subcommands.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List roles (global ones, or those usable in --tenant).
    List(TenantScope),
    /// Show a role: rules, inheritance, effective permissions and holders.
    Show {
        /// The role.
        role: String,
        /// Scope.
        #[command(flatten)]
        scope: TenantScope,
    },
    /// Create a role (with --tenant: a custom role of that tenant).
    Create {
        /// The role.
        role: String,
        /// What it is for.
        #[arg(long, short = 'd', value_name = "TEXT")]
        description: Option<String>,
        /// Scope.
        #[command(flatten)]
        scope: TenantScope,
    },
    /// Delete a role (with --tenant: its layer in that tenant). Asks for confirmation.
    Delete {
        /// The role.
        role: String,
        /// Scope.
        #[command(flatten)]
        scope: TenantScope,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Let a role allow a permission or pattern (`finance.*`).
    Grant(RuleArgs),
    /// Remove a grant.
    Revoke(RuleArgs),
    /// Make a role refuse a permission or pattern; a deny wins over every grant.
    Deny(RuleArgs),
    /// Remove a deny.
    Undeny(RuleArgs),
    /// Make ROLE inherit PARENT's grants and denies.
    Inherit(InheritArgs),
    /// Remove an inheritance.
    Uninherit(InheritArgs),
}

/// `role grant|revoke|deny|undeny` arguments.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// The role.
    pub role: String,
    /// A permission or trailing wildcard (`finance.*`, `*`).
    pub pattern: String,
    /// Scope (with --tenant, a rule that applies only in that tenant).
    #[command(flatten)]
    pub scope: TenantScope,
}

/// `role inherit|uninherit` arguments.
#[derive(Debug, Args)]
pub struct InheritArgs {
    /// The inheriting role.
    pub role: String,
    /// The inherited role.
    pub parent: String,
    /// Scope (with --tenant, inheritance that applies only in that tenant).
    #[command(flatten)]
    pub scope: TenantScope,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users and their roles (with --tenant: those holding a role there).
    List(TenantScope),
    /// Show a user's roles and effective permissions in every scope.
    Show {
        /// The user (subject).
        user: String,
    },
    /// Give a user a role, globally or in --tenant.
    Assign(AssignArgs),
    /// Take a role away from a user.
    Unassign(AssignArgs),
}

/// `user assign|unassign` arguments.
#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The user (subject).
    pub user: String,
    /// The role.
    pub role: String,
    /// Scope.
    #[command(flatten)]
    pub scope: TenantScope,
}

/// `tenant` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List tenants.
    List,
    /// Create a tenant (or change its description).
    Create {
        /// The tenant.
        name: String,
        /// A readable name.
        #[arg(long, short = 'd', value_name = "TEXT")]
        description: Option<String>,
    },
    /// Delete a tenant with its roles and every assignment in it. Asks for confirmation.
    Delete {
        /// The tenant.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Where a policy comes from: files, or (without any of these) the database.
#[derive(Debug, Args, Default)]
pub struct PolicySource {
    /// A TOML policy file (instead of the database).
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["casbin_model", "casbin_policy"])]
    pub policy: Option<PathBuf>,
    /// A casbin model (`.conf`); needs `--casbin-policy`.
    #[arg(long, value_name = "M.conf", requires = "casbin_policy")]
    pub casbin_model: Option<PathBuf>,
    /// A casbin policy CSV; needs `--casbin-model`.
    #[arg(long, value_name = "P.csv", requires = "casbin_model")]
    pub casbin_policy: Option<PathBuf>,
}

impl PolicySource {
    /// Whether a file was named (otherwise the database is used).
    pub fn is_file(&self) -> bool {
        self.policy.is_some() || self.casbin_model.is_some()
    }
}

/// `check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy (default: the database).
    #[command(flatten)]
    pub source: PolicySource,
    /// A CSV file of queries, one `subject,tenant,permission` a line (empty tenant: global
    /// scope); `-` reads standard input. Prints one `allow` or `deny` a line, in order (with
    /// `--format json`, one JSON object a line).
    #[arg(long, value_name = "QUERIES.csv", conflicts_with = "query")]
    pub batch: Option<PathBuf>,
    /// Also print the reason: the role chain and the rule that decided.
    #[arg(long)]
    pub explain: bool,
    /// One query: SUBJECT TENANT PERMISSION (use "" for the global scope).
    #[arg(num_args = 3, value_names = ["SUBJECT", "TENANT", "PERMISSION"], required_unless_present = "batch")]
    pub query: Vec<String>,
}

/// `can-i` arguments.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// The permission.
    pub permission: String,
    /// Scope.
    #[command(flatten)]
    pub scope: TenantScope,
    /// Also print the reason.
    #[arg(long)]
    pub explain: bool,
}

/// `matrix` arguments.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The policy (default: the database).
    #[command(flatten)]
    pub source: PolicySource,
    /// Roles as they apply in this tenant (global and the tenant's own); default: global scope.
    #[command(flatten)]
    pub scope: TenantScope,
    /// Only permissions of this module (`finance` shows `finance.*`).
    #[arg(long, value_name = "MODULE")]
    pub module: Option<String>,
}

/// `diff` arguments.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old policy: a TOML file; `db` for the database's current policy; `db@N` for the
    /// database's policy at version N; `db~K` for K versions before the current one.
    pub old: String,
    /// The new policy: a TOML file, `db`, `db@N` or `db~K`.
    pub new: String,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a TOML policy: print every error, exit 3 if there is any.
    Validate {
        /// The policy file.
        file: PathBuf,
    },
    /// Replace the database's policy with a TOML file or a casbin model and policy. Built-in
    /// `system.*` permissions and roles are kept when the file lacks them. Asks for confirmation.
    Import(ImportArgs),
    /// Write the database's policy as TOML (default) or as a casbin model and policy.
    Export(ExportArgs),
    /// Check a file of expected decisions (`alice org1 finance.invoices.read allow`, one a
    /// line; `-` or `""` for the global scope) and report every mismatch (exit 3 if any).
    Test(PolicyTestArgs),
}

/// `policy import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A TOML policy file (or use --casbin-model and --casbin-policy).
    #[arg(value_name = "FILE.toml", required_unless_present = "casbin_model", conflicts_with_all = ["casbin_model", "casbin_policy"])]
    pub file: Option<PathBuf>,
    /// A casbin model (`.conf`); needs `--casbin-policy`.
    #[arg(long, value_name = "M.conf", requires = "casbin_policy")]
    pub casbin_model: Option<PathBuf>,
    /// A casbin policy CSV; needs `--casbin-model`.
    #[arg(long, value_name = "P.csv", requires = "casbin_model")]
    pub casbin_policy: Option<PathBuf>,
    /// Import even if the acting user would lose `system.policy.import` (locking themselves out).
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportAs {
    /// The TOML policy document.
    Toml,
    /// A casbin model and policy CSV (needs --out-dir or prints both, separated).
    Casbin,
}

/// `policy export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write.
    #[arg(long = "as", value_enum, default_value = "toml")]
    pub export_as: ExportAs,
    /// Write to this file (TOML) or directory (casbin: `model.conf` and `policy.csv`) instead
    /// of standard output.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// `policy test` arguments.
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The file of expected decisions.
    pub file: PathBuf,
    /// The policy (default: the database).
    #[command(flatten)]
    pub source: PolicySource,
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
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List policy changes (or, with --decisions, recorded decisions).
    List(AuditFilter),
    /// Write policy-change records as JSON lines.
    Export {
        /// Which records.
        #[command(flatten)]
        filter: AuditFilter,
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Recompute both hash chains and report the first broken link (exit 3 if any).
    Verify,
}

/// Audit filters.
#[derive(Debug, Args, Default)]
pub struct AuditFilter {
    /// Changes made by this actor (decisions have no actor: use `--subject`).
    #[arg(long, value_name = "ACTOR", conflicts_with = "decisions")]
    pub by: Option<String>,
    /// Records that mention this subject.
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// Records that mention this tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Records that mention this permission (or a wildcard covering it).
    #[arg(long, value_name = "PERMISSION")]
    pub permission: Option<String>,
    /// From this time on: `2026-11-23`, `2026-11-23T10:00:00Z` or Unix milliseconds.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only the last N records.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Recorded decisions instead of policy changes.
    #[arg(long)]
    pub decisions: bool,
}

/// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man` arguments.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `rbac-admin.1` and one page per subcommand into this directory.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}
