//! `rbac-admin`: parses the command line and hands it to [`rbac_admin::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = rbac_admin::Cli::parse();
    rbac_admin::run(cli).into()
}
