//! `completions` and `man`: generated from the same clap definitions as the parser.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error::{CliError, Exit};

/// Prints a completion script for the shell.
pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let mut command = Cli::command();
    // Generated into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "rbac-admin", &mut script);
    out.write_all(&script)?;
    Ok(Exit::Ok)
}

/// Prints the man page, or writes every page into a directory.
pub fn man(args: &ManArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let command = Cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| CliError::Write {
                path: dir.display().to_string(),
                source,
            })?;
            clap_mangen::generate_to(command, dir).map_err(|source| CliError::Write {
                path: dir.display().to_string(),
                source,
            })?;
            writeln!(out, "wrote man pages to {}", dir.display())?;
        }
        None => clap_mangen::Man::new(command).render(out)?,
    }
    Ok(Exit::Ok)
}
