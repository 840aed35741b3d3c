//! What every command runner receives: where the database is, who acts, how to print, and
//! whether a person is at the terminal.

use std::future::Future;
use std::io::{IsTerminal, Write};

use rbac_core::store::{ChangeContext, Store, StoreError, StoreOptions};
use rbac_core::{Policy, Snapshot};

use crate::builtin;
use crate::cli::{Format, GlobalArgs};
use crate::error::CliError;

/// The global context of one invocation.
#[derive(Debug, Clone)]
pub struct Context {
    /// The policy database URL (`--db`, `RBAC_DATABASE_URL`).
    pub db_url: String,
    /// Who performs the operation (`--actor`, `RBAC_ACTOR`, else `$USER`), if known.
    pub actor: Option<String>,
    /// Why (`--comment`), recorded with changes.
    pub comment: Option<String>,
    /// The output format (`--format`).
    pub format: Format,
    /// Whether to colour text output: standard output is a terminal and `NO_COLOR` is unset.
    pub color: bool,
    /// Whether a person can answer questions: standard input and standard error are terminals.
    pub interactive: bool,
    /// Whether standard error is a terminal (progress bars rather than log lines).
    pub progress_bars: bool,
}

/// Whether `NO_COLOR` asks for no colour (<https://no-color.org>: set and not empty).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

impl Context {
    /// The context from the global flags and the process's terminals and environment.
    pub fn from_args(global: &GlobalArgs) -> Context {
        // An actor given but empty (`--actor "$SVC"` with `SVC` unset) is no actor: falling
        // back to the login user would act, and be audited, as someone else.
        let actor = match &global.actor {
            Some(given) => Some(given.clone()).filter(|a| !a.is_empty()),
            // clap reads an empty `RBAC_ACTOR` as absent.
            None if std::env::var_os("RBAC_ACTOR").is_some_and(|v| v.is_empty()) => None,
            None => std::env::var("USER")
                .ok()
                .filter(|a| !a.is_empty())
                .or_else(|| std::env::var("USERNAME").ok().filter(|a| !a.is_empty())),
        };
        Context {
            db_url: global.db.clone(),
            actor,
            comment: global.comment.clone(),
            format: global.format,
            color: !no_color() && std::io::stdout().is_terminal(),
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            progress_bars: std::io::stderr().is_terminal(),
        }
    }

    /// The acting user, or a clear error when none is known.
    pub fn actor(&self) -> Result<&str, CliError> {
        self.actor.as_deref().ok_or(CliError::NoActor)
    }

    /// Who and why, for the audit trail.
    pub fn change_context(&self) -> Result<ChangeContext, CliError> {
        let ctx = ChangeContext::new(self.actor()?);
        Ok(match &self.comment {
            Some(c) => ctx.comment(c.clone()),
            None => ctx,
        })
    }

    /// Refuses formats a command does not print, with the list of those it does.
    pub fn require_format(&self, command: &str, supported: &[Format]) -> Result<Format, CliError> {
        if supported.contains(&self.format) {
            return Ok(self.format);
        }
        let names: Vec<&str> = supported.iter().map(|f| f.name()).collect();
        Err(CliError::invalid(format!(
            "`{command}` cannot print --format {}; use one of: {}",
            self.format.name(),
            names.join(", ")
        )))
    }

    /// Runs an async operation to completion on a single-threaded runtime. Synchronous command
    /// runners (such as `backup`'s) call this; it must not be called from inside another
    /// `block_on`.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output, CliError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::other(crate::Exit::Failure, format!("cannot start: {e}")))?;
        Ok(runtime.block_on(future))
    }

    /// Asks before a destructive action. `--yes` skips the question; without a terminal to ask
    /// on, the action is refused rather than done unasked.
    pub fn confirm(&self, action: &str, yes: bool) -> Result<(), CliError> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(CliError::NeedsConfirmation {
                action: action.to_owned(),
            });
        }
        let mut err = std::io::stderr();
        write!(err, "{action}? [y/N] ")?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(CliError::Aborted),
        }
    }

    /// Opens the policy database. An SQLite file that does not exist yet is an error (it is
    /// created only by `init`), so that a mistyped `--db` never yields an empty policy.
    pub async fn connect_existing(&self) -> Result<Store, CliError> {
        if let Some(path) = sqlite_file(&self.db_url)
            && !std::path::Path::new(&path).exists()
        {
            return Err(CliError::NotInitialised(format!(
                "no policy database at `{path}`: run `rbac-admin init --admin NAME` to create \
                 one, or point --db (or RBAC_DATABASE_URL) at an existing one"
            )));
        }
        let options = StoreOptions {
            existing_only: true,
            ..store_options()
        };
        match Store::connect_with(&self.db_url, options).await {
            Err(StoreError::NotAPolicyDatabase { url }) => Err(CliError::NotInitialised(format!(
                "`{url}` holds no policy database: run `rbac-admin init --admin NAME` to \
                 create one, or point --db (or RBAC_DATABASE_URL) at an existing one; nothing \
                 was written to it"
            ))),
            other => Ok(other?),
        }
    }

    /// Opens (creating an SQLite file if needed) the policy database.
    pub async fn connect_or_create(&self) -> Result<Store, CliError> {
        Ok(Store::connect_with(&self.db_url, store_options()).await?)
    }

    /// Loads the stored policy and checks that the acting user holds `permission` in `tenant`
    /// (`None`: globally). Unknown actor, tenant or permission, or an empty database: denied.
    pub async fn authorize(
        &self,
        store: &Store,
        permission: &str,
        tenant: Option<&str>,
    ) -> Result<Policy, CliError> {
        let actor = self.actor()?.to_owned();
        let policy = store.load().await?;
        if !builtin::is_initialised(&policy) {
            return Err(CliError::NotInitialised(format!(
                "the policy database `{}` has no administrator yet: run `rbac-admin init --admin NAME` first",
                store.url()
            )));
        }
        if let Some(t) = tenant
            && !policy.document().tenants.contains_key(t)
        {
            // Say "unknown tenant" only to someone who may act globally; to anyone else the
            // answer is the same denial as for a tenant that exists.
            authorize_in(&policy, &actor, permission, None)?;
            crate::commands::ensure_tenant(&policy, Some(t))?;
        }
        authorize_in(&policy, &actor, permission, tenant)?;
        Ok(policy)
    }
}

/// A command-line tool needs few connections, and should say soon when the server is down.
fn store_options() -> StoreOptions {
    StoreOptions {
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(5),
        ..StoreOptions::default()
    }
}

/// Checks that `actor` holds `permission` in `tenant` under `policy`.
pub fn authorize_in(
    policy: &Policy,
    actor: &str,
    permission: &str,
    tenant: Option<&str>,
) -> Result<(), CliError> {
    let snapshot = Snapshot::compile(policy);
    let decision = snapshot.check(actor, tenant.unwrap_or(rbac_core::GLOBAL), permission);
    tracing::debug!(actor, permission, tenant, %decision, cause = %decision.cause(), "authorization");
    if decision.is_allowed() {
        Ok(())
    } else {
        Err(CliError::Denied {
            actor: actor.to_owned(),
            permission: permission.to_owned(),
            scope: scope_words(tenant),
        })
    }
}

/// `globally` or ``in tenant `acme` ``.
pub fn scope_words(tenant: Option<&str>) -> String {
    match tenant {
        None | Some("") => "globally".to_owned(),
        Some(t) => format!("in tenant `{t}`"),
    }
}

/// The file of an SQLite URL (`sqlite://rbac.db?mode=rwc` → `rbac.db`); `None` for other
/// databases and in-memory SQLite.
pub fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://rbac.db").as_deref(), Some("rbac.db"));
        assert_eq!(
            sqlite_file("sqlite:///tmp/x.db?mode=rwc").as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
