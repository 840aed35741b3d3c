//! `rbac-admin coverage`: render a saved coverage report, or build one from source, and fail
//! below a minimum.

use std::io::Write;
use std::path::Path;

use rbac_axum::coverage::{CoverageReport, RequirementReport, RouteReport};

use crate::static_coverage::{self, Requirement};

/// Output formats of a coverage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// An aligned table with totals per module.
    Text,
    /// The stable JSON contract (`routes`, `totals`, `modules`).
    Json,
    /// A Markdown table.
    Markdown,
    /// A self-contained HTML page.
    Html,
}

/// Why a coverage report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    /// The saved report could not be read.
    #[error("cannot read the coverage report `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The saved report is not a coverage report.
    #[error("`{path}` is not a coverage report: {message}")]
    Json {
        /// The file.
        path: String,
        /// What the JSON parser said.
        message: String,
    },
    /// The source tree could not be analysed.
    #[error(transparent)]
    Scan(#[from] static_coverage::ScanError),
}

/// Reads a report saved as JSON (by `CoverageReport::to_json_string`).
pub fn load_report(path: &Path) -> Result<CoverageReport, CoverageError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CoverageError::Read {
        path: shown.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| CoverageError::Json {
        path: shown,
        message: e.to_string(),
    })
}

/// Builds a report from the application's source; the second value lists why each unresolved
/// route could not be resolved.
pub fn report_from_source(dir: &Path) -> Result<(CoverageReport, Vec<String>), CoverageError> {
    let routes = static_coverage::scan(dir)?;
    let mut notes = Vec::new();
    let reports = routes
        .into_iter()
        .map(|r| {
            if let Some(reason) = &r.reason {
                notes.push(format!("{} {} ({}): {reason}", r.method, r.path, r.file));
            }
            let module = r.requirement.as_ref().and_then(Requirement::module);
            RouteReport {
                method: r.method,
                path: r.path,
                handler: r.handler,
                module,
                status: r.status,
                requirement: r.requirement.map(|req| match req {
                    Requirement::Permissions {
                        mode: "any",
                        permissions,
                    } => RequirementReport::Any { permissions },
                    Requirement::Permissions {
                        mode: "all",
                        permissions,
                    } => RequirementReport::All { permissions },
                    Requirement::Permissions { permissions, .. } => {
                        RequirementReport::Permission { permissions }
                    }
                    Requirement::Role(role) => RequirementReport::Role { role },
                    Requirement::Module(module) => RequirementReport::Module { module },
                    Requirement::Public => RequirementReport::Public,
                }),
            }
        })
        .collect();
    Ok((CoverageReport::from_routes(reports), notes))
}

/// Writes the report in `format`; `notes` (reasons for unresolved routes) follow a text report.
pub fn render(
    report: &CoverageReport,
    notes: &[String],
    format: ReportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        ReportFormat::Text => {
            write!(out, "{}", report.to_text())?;
            if !notes.is_empty() {
                writeln!(out, "\nunresolved, and why:")?;
                for note in notes {
                    writeln!(out, "  {note}")?;
                }
            }
            Ok(())
        }
        ReportFormat::Json => writeln!(out, "{}", report.to_json_string()),
        ReportFormat::Markdown => write!(out, "{}", report.to_markdown()),
        ReportFormat::Html => write!(out, "{}", report.to_html()),
    }
}
