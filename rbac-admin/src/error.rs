//! Exit codes and the one error type every command returns.
//!
//! Each [`CliError`] prints as one line saying what is wrong and what to do, and maps to one
//! [`Exit`] code. The codes are a contract for scripts; see the crate docs for the table.

use rbac_core::store::StoreError;

/// Exit codes, documented and stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum Exit {
    /// Success; for a single check, allowed.
    Ok = 0,
    /// Something failed at run time: the database is unreachable or not initialised, an I/O
    /// error, a question at the terminal answered "no".
    Failure = 1,
    /// A check was denied, or the acting user (`--actor`) lacks the permission the command needs.
    Denied = 2,
    /// The input or the policy is invalid (unknown name, bad file, a change validation refuses,
    /// a policy test that does not hold, a broken audit chain); every problem was printed.
    Invalid = 3,
    /// Route coverage is below the required minimum.
    BelowMinimum = 4,
}

/// The name kept for the public type of earlier versions' callers.
pub type ExitCode = Exit;

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

/// Errors that end a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] rbac_core::PolicyError),
    /// The casbin model or policy could not be imported or exported.
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
    /// A file could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The coverage report could not be produced.
    #[error(transparent)]
    Coverage(#[from] crate::coverage::CoverageError),
    /// The policy database failed or refused a change.
    #[error("{}", store_message(.0))]
    Store(#[from] StoreError),
    /// The database does not exist or holds no initialised policy.
    #[error("{0}")]
    NotInitialised(String),
    /// The acting user may not do this.
    #[error(
        "denied: `{actor}` lacks `{permission}` {scope}; ask an administrator to grant it, or pass --actor NAME (or set RBAC_ACTOR) to act as someone who holds it"
    )]
    Denied {
        /// Who tried.
        actor: String,
        /// The permission the command needs.
        permission: String,
        /// `globally` or `in tenant `acme``.
        scope: String,
    },
    /// No acting user could be determined.
    #[error(
        "no acting user: pass --actor NAME or set RBAC_ACTOR (the name is checked against the policy and recorded in the audit trail)"
    )]
    NoActor,
    /// Bad input on the command line or in a file: one line, with what to do.
    #[error("{0}")]
    Invalid(String),
    /// A destructive command got no confirmation.
    #[error(
        "refusing to {action} without confirmation: standard input is not a terminal; pass --yes to confirm"
    )]
    NeedsConfirmation {
        /// What would have been done (`delete role `x``).
        action: String,
    },
    /// The user answered "no".
    #[error("aborted: nothing was changed")]
    Aborted,
    /// A failure with its own exit code, for commands defined outside this crate's core set
    /// (such as `backup`): the message is printed as is.
    #[error("{message}")]
    Other {
        /// The code to exit with.
        exit: Exit,
        /// One line: what is wrong and what to do.
        message: String,
    },
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}

/// A store error on one line: validation problems are joined with `; ` rather than printed one
/// a line, and a missing database names the command that creates it.
fn store_message(e: &StoreError) -> String {
    match e {
        StoreError::Invalid(errors) => {
            let issues: Vec<String> = errors.issues.iter().map(ToString::to_string).collect();
            format!(
                "change rejected, nothing was written: {}",
                issues.join("; ")
            )
        }
        StoreError::Connect { .. } => {
            format!("{e}; check --db (or RBAC_DATABASE_URL) and that the server is running")
        }
        other => other.to_string(),
    }
}

impl CliError {
    /// A bad-input error with a message saying what is wrong and what to do.
    pub fn invalid(message: impl Into<String>) -> CliError {
        CliError::Invalid(message.into())
    }

    /// An error with an explicit exit code (for subcommands wired in from other modules).
    pub fn other(exit: Exit, message: impl Into<String>) -> CliError {
        CliError::Other {
            exit,
            message: message.into(),
        }
    }

    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Policy(_)
            | CliError::Casbin(_)
            | CliError::Read { .. }
            | CliError::Coverage(_)
            | CliError::Invalid(_)
            | CliError::NeedsConfirmation { .. }
            | CliError::NoActor => Exit::Invalid,
            CliError::Store(e) => match e {
                StoreError::Invalid(_)
                | StoreError::Change(_)
                | StoreError::UnsupportedUrl { .. }
                | StoreError::VersionUnavailable { .. } => Exit::Invalid,
                _ => Exit::Failure,
            },
            CliError::Denied { .. } => Exit::Denied,
            CliError::Other { exit, .. } => *exit,
            CliError::NotInitialised(_)
            | CliError::Aborted
            | CliError::Write { .. }
            | CliError::Io(_) => Exit::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_contract() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Failure.code(), 1);
        assert_eq!(Exit::Denied.code(), 2);
        assert_eq!(Exit::Invalid.code(), 3);
        assert_eq!(Exit::BelowMinimum.code(), 4);
        assert_eq!(CliError::Aborted.exit(), Exit::Failure);
        assert_eq!(CliError::invalid("x").exit(), Exit::Invalid);
        assert_eq!(
            CliError::Denied {
                actor: "a".into(),
                permission: "p".into(),
                scope: "globally".into()
            }
            .exit(),
            Exit::Denied
        );
    }
}
