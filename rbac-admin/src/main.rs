//! `rbac-admin`: parses the command line and hands it to [`rbac_admin::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    match rbac_admin::Cli::try_parse() {
        Ok(cli) => rbac_admin::run(cli).into(),
        Err(usage) => rbac_admin::usage_error(&usage).into(),
    }
}
