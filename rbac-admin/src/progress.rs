//! Progress of long operations: a bar with rate and ETA on a terminal, plain `tracing` log lines
//! otherwise (so that logs and CI output stay readable).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::context::Context;

/// One long operation's progress, in steps.
#[derive(Debug)]
pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts reporting `total` steps of `what` (`importing policy.toml`).
    pub fn start(ctx: &Context, what: &str, total: u64) -> Progress {
        let bar = ctx.progress_bars.then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        if bar.is_none() {
            tracing::info!(target: "rbac_admin::progress", "{what}: started ({total} steps)");
        }
        Progress {
            what: what.to_owned(),
            total,
            done: 0,
            bar,
        }
    }

    /// Begins the next step, named `step`.
    pub fn step(&mut self, step: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(step.to_owned());
                bar.set_position(self.done);
            }
            None => tracing::info!(
                target: "rbac_admin::progress",
                "{}: step {}/{}: {step}",
                self.what,
                self.done + 1,
                self.total
            ),
        }
        self.done += 1;
    }

    /// Ends the operation, with a last word (`done`, `nothing to change`).
    pub fn finish(self, outcome: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.total);
                bar.finish_and_clear();
            }
            None => tracing::info!(target: "rbac_admin::progress", "{}: {outcome}", self.what),
        }
    }
}
