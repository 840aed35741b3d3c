//! `matrix`: the effective role × permission matrix, after inheritance and denies.
//!
//! Each role's effective permissions are computed by the engine itself: the policy's subjects are
//! replaced by one probe subject per role, holding only that role in the scope, and the compiled
//! snapshot is asked. So the matrix can never disagree with a check.

use std::collections::BTreeMap;
use std::io::Write;

use rbac_core::{Cause, Policy, Snapshot};

use super::{ensure_tenant, load_policy, roles_in, tenant_of};
use crate::cli::{Format, MatrixArgs};
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// The role's chain grants it and nothing denies it.
    Allow,
    /// Something in the role's chain denies it (a deny wins).
    Deny,
    /// Nothing grants it.
    None,
}

impl Cell {
    fn text(self) -> &'static str {
        match self {
            Cell::Allow => "x",
            Cell::Deny => "D",
            Cell::None => ".",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Cell::Allow => "allow",
            Cell::Deny => "deny",
            Cell::None => "",
        }
    }
}

/// The computed matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Matrix {
    /// The tenant (`None`: global scope).
    pub tenant: Option<String>,
    /// The module filter.
    pub module: Option<String>,
    /// Roles, in name order.
    pub roles: Vec<String>,
    /// Permissions, in name order.
    pub permissions: Vec<String>,
    /// `cells[role][permission]`: `allow` or `deny`; permissions nothing grants are left out.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
}

impl Matrix {
    /// The cell of a role and permission.
    pub fn cell(&self, role: &str, permission: &str) -> Cell {
        self.cells
            .get(role)
            .and_then(|row| row.get(permission))
            .copied()
            .unwrap_or(Cell::None)
    }
}

/// Whether `permission` belongs to `module` (`finance` covers `finance.invoices.read`).
pub fn in_module(permission: &str, module: Option<&str>) -> bool {
    module.is_none_or(|m| {
        permission == m
            || permission
                .strip_prefix(m)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Each role's decision on each declared permission in `tenant`, computed by the engine.
pub fn compute(policy: &Policy, tenant: Option<&str>, module: Option<&str>) -> Matrix {
    let roles = roles_in(policy, tenant);
    let mut doc = policy.document().clone();
    doc.subjects.clear();
    for role in &roles {
        // Probe subjects are named after their role; the real subjects were removed above.
        doc.assign(role, tenant, role);
    }
    let permissions: Vec<String> = doc
        .permissions
        .names()
        .filter(|p| in_module(p, module))
        .map(str::to_owned)
        .collect();
    let mut cells = BTreeMap::new();
    // The probe document only adds valid assignments to a valid policy, so it validates; if it
    // ever did not, every cell stays empty (deny), never allow.
    if let Ok(probe) = Policy::from_document(doc) {
        let snapshot = Snapshot::compile(&probe);
        let scope = tenant.unwrap_or(rbac_core::GLOBAL);
        for role in &roles {
            let mut row = BTreeMap::new();
            for permission in &permissions {
                let cell = match snapshot.check(role, scope, permission).cause() {
                    Cause::Granted => Cell::Allow,
                    Cause::ExplicitDeny => Cell::Deny,
                    _ => continue,
                };
                row.insert(permission.clone(), cell);
            }
            cells.insert(role.clone(), row);
        }
    }
    Matrix {
        tenant: tenant.map(str::to_owned),
        module: module.map(str::to_owned),
        roles,
        permissions,
        cells,
    }
}

/// Runs `matrix`.
pub async fn run(ctx: &Context, args: &MatrixArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let format = ctx.require_format(
        "matrix",
        &[Format::Text, Format::Csv, Format::Json, Format::Html],
    )?;
    let tenant = tenant_of(&args.scope);
    let policy = load_policy(ctx, &args.source, "system.roles.read", tenant).await?;
    ensure_tenant(&policy, tenant)?;
    let module = args.module.as_deref();
    if let Some(m) = module
        && !policy
            .document()
            .permissions
            .names()
            .any(|p| in_module(p, Some(m)))
    {
        return Err(CliError::invalid(format!(
            "no permission is declared in module `{m}`; `rbac-admin perm list` shows them"
        )));
    }
    let matrix = compute(&policy, tenant, module);
    match format {
        Format::Json => output::json(out, &matrix)?,
        Format::Csv => write_csv(&matrix, out)?,
        Format::Html => write!(out, "{}", to_html(&matrix))?,
        _ => write_text(&matrix, out)?,
    }
    Ok(Exit::Ok)
}

fn write_text(m: &Matrix, out: &mut dyn Write) -> std::io::Result<()> {
    let scope = m
        .tenant
        .as_deref()
        .map_or("global scope".to_owned(), |t| format!("tenant `{t}`"));
    writeln!(
        out,
        "effective permissions in the {scope} (x allow, D denied, . not granted)"
    )?;
    let mut header = vec!["PERMISSION"];
    header.extend(m.roles.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = m
        .permissions
        .iter()
        .map(|p| {
            let mut row = vec![p.clone()];
            row.extend(m.roles.iter().map(|r| m.cell(r, p).text().to_owned()));
            row
        })
        .collect();
    output::table(out, &header, &rows)
}

fn write_csv(m: &Matrix, out: &mut dyn Write) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    let mut header = vec!["permission"];
    header.extend(m.roles.iter().map(String::as_str));
    writer
        .write_record(&header)
        .map_err(std::io::Error::other)?;
    for p in &m.permissions {
        let mut row = vec![p.as_str()];
        row.extend(m.roles.iter().map(|r| m.cell(r, p).word()));
        writer.write_record(&row).map_err(std::io::Error::other)?;
    }
    writer.flush()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained HTML page (inline style, no script, no external resource).
pub fn to_html(m: &Matrix) -> String {
    let scope = m.tenant.as_deref().map_or("global scope".to_owned(), |t| {
        format!("tenant {}", escape(t))
    });
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!("<title>rbac matrix: {scope}</title>\n"));
    html.push_str(
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         th,td{border:1px solid #ccc;padding:.2em .5em;text-align:center}\
         th.p,td.p{text-align:left;font-family:monospace}\
         .allow{background:#d4f7d4}.deny{background:#f7d4d4}</style>\n</head>\n<body>\n",
    );
    html.push_str(&format!(
        "<h1>Effective permissions: {scope}</h1>\n<p>{} roles, {} permissions{}. \
         ✓ allowed, ✗ denied (a deny wins), blank: not granted.</p>\n<table>\n<tr><th class=\"p\">permission</th>",
        m.roles.len(),
        m.permissions.len(),
        m.module
            .as_deref()
            .map(|x| format!(" in module {}", escape(x)))
            .unwrap_or_default()
    ));
    for role in &m.roles {
        html.push_str(&format!("<th>{}</th>", escape(role)));
    }
    html.push_str("</tr>\n");
    for p in &m.permissions {
        html.push_str(&format!("<tr><td class=\"p\">{}</td>", escape(p)));
        for role in &m.roles {
            let cell = match m.cell(role, p) {
                Cell::Allow => "<td class=\"allow\">✓</td>",
                Cell::Deny => "<td class=\"deny\">✗</td>",
                Cell::None => "<td></td>",
            };
            html.push_str(cell);
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_match_whole_segments() {
        assert!(in_module("finance.invoices.read", Some("finance")));
        assert!(in_module("finance.invoices.read", Some("finance.invoices")));
        assert!(!in_module("financed.x", Some("finance")));
        assert!(in_module("anything", None));
    }
}
