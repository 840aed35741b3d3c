//! Progress reporting for long operations; the CLI shows a bar on a terminal and log lines
//! otherwise, the library only calls this trait.

/// Receives progress of a long operation. All methods have empty defaults.
pub trait Progress: Send + Sync {
    /// A new phase begins (e.g. `table invoices`), with a total of units if known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more units (rows) done.
    fn advance(&self, _n: u64) {}
    /// The operation finished (successfully or not).
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
