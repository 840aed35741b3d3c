//! The route coverage report: every route of a [`Router`](crate::Router), what protects it, and
//! totals per module. The report types serialize to the JSON contract described on
//! [`CoverageReport`] and deserialize from it, so a saved report can be loaded and rendered again.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::requirement::{Protection, Requirement};
use crate::router::RouteEntry;
use crate::routing::HandlerKind;

/// How a route stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A requirement (attribute or route layer) protects it.
    Protected,
    /// Deliberately open (`#[public]` or the `public()` layer).
    Public,
    /// A handler that carries nothing and no layer covers: probably forgotten.
    Unprotected,
    /// A service whose protection cannot be seen (`route_service`), with no covering layer.
    Unresolved,
}

impl Status {
    /// `protected`, `public`, `unprotected` or `unresolved`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Protected => "protected",
            Status::Public => "public",
            Status::Unprotected => "unprotected",
            Status::Unresolved => "unresolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A route's requirement as reported, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RequirementReport {
    /// One permission (`permissions` has one element).
    Permission {
        /// The permission.
        permissions: Vec<String>,
    },
    /// At least one of `permissions`.
    Any {
        /// The permissions.
        permissions: Vec<String>,
    },
    /// Every one of `permissions`.
    All {
        /// The permissions.
        permissions: Vec<String>,
    },
    /// A role.
    Role {
        /// The role.
        role: String,
    },
    /// Any permission of a module.
    Module {
        /// The module.
        module: String,
    },
    /// Deliberately public.
    Public,
    /// Several requirements that each apply (an attribute and route layers, for example), the
    /// handler's own first.
    Every {
        /// The requirements.
        requirements: Vec<RequirementReport>,
    },
}

impl RequirementReport {
    fn of(requirement: &Requirement) -> RequirementReport {
        let names = |ps: &[&str]| ps.iter().map(|p| (*p).to_owned()).collect();
        match *requirement {
            Requirement::Permission(p) => RequirementReport::Permission {
                permissions: vec![p.to_owned()],
            },
            Requirement::Any(ps) => RequirementReport::Any {
                permissions: names(ps),
            },
            Requirement::All(ps) => RequirementReport::All {
                permissions: names(ps),
            },
            Requirement::Role(r) => RequirementReport::Role { role: r.to_owned() },
            Requirement::Module(m) => RequirementReport::Module {
                module: m.to_owned(),
            },
        }
    }
}

impl fmt::Display for RequirementReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequirementReport::Permission { permissions } => f.write_str(&permissions.join(", ")),
            RequirementReport::Any { permissions } => {
                write!(f, "any({})", permissions.join(", "))
            }
            RequirementReport::All { permissions } => {
                write!(f, "all({})", permissions.join(", "))
            }
            RequirementReport::Role { role } => write!(f, "role {role}"),
            RequirementReport::Module { module } => write!(f, "module {module}"),
            RequirementReport::Public => f.write_str("public"),
            RequirementReport::Every { requirements } => {
                let parts: Vec<String> = requirements.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join(" + "))
            }
        }
    }
}

/// One route of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteReport {
    /// `GET`, `POST`, …, or `ANY`.
    pub method: String,
    /// The path as registered, nest prefixes included (`/api/finance/accounts/{id}`).
    pub path: String,
    /// The handler: `module::path::name` for marked handlers, the type name otherwise.
    pub handler: String,
    /// The module the route counts under, if any.
    pub module: Option<String>,
    /// How it stands.
    pub status: Status,
    /// What protects it; `None` (JSON `null`) for unprotected and unresolved routes.
    pub requirement: Option<RequirementReport>,
}

/// Route counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Every route.
    pub routes: usize,
    /// Protected by a requirement.
    pub protected: usize,
    /// Deliberately public.
    pub public: usize,
    /// Carrying nothing.
    pub unprotected: usize,
    /// Services that cannot be inspected.
    pub unresolved: usize,
}

impl Totals {
    fn add(&mut self, status: Status) {
        self.routes += 1;
        match status {
            Status::Protected => self.protected += 1,
            Status::Public => self.public += 1,
            Status::Unprotected => self.unprotected += 1,
            Status::Unresolved => self.unresolved += 1,
        }
    }

    /// Routes that carry a decision: protected or deliberately public.
    pub fn covered(&self) -> usize {
        self.protected + self.public
    }

    /// `covered / routes` in percent; 100 for no routes.
    pub fn percent(&self) -> f64 {
        if self.routes == 0 {
            100.0
        } else {
            self.covered() as f64 * 100.0 / self.routes as f64
        }
    }
}

/// Which module a route counts under, beyond what its requirement says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverageOptions {
    path_modules: Vec<(String, String)>,
}

impl CoverageOptions {
    /// No rules: a route's module is its attribute's `module = "…"`, else its requirement's
    /// first permission segment.
    pub fn new() -> CoverageOptions {
        CoverageOptions::default()
    }

    /// Routes under `prefix` (whole segments: `/api/crm` covers `/api/crm` and `/api/crm/leads`,
    /// not `/api/crmx`) count under `module`, unless their attribute names a module. The longest
    /// matching prefix wins. This is how unprotected routes get a module.
    pub fn module_for_path(
        mut self,
        prefix: impl Into<String>,
        module: impl Into<String>,
    ) -> CoverageOptions {
        self.path_modules.push((prefix.into(), module.into()));
        self
    }

    fn module_by_path(&self, path: &str) -> Option<&str> {
        // A nested router's fallback (`/api (fallback)`) answers under its prefix.
        let path = path.strip_suffix(" (fallback)").unwrap_or(path);
        self.path_modules
            .iter()
            .filter(|(prefix, _)| {
                let prefix = prefix.trim_end_matches('/');
                path.strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, module)| module.as_str())
    }
}

/// The coverage of a router. Its JSON form ([`CoverageReport::to_json`]) is a stable contract:
///
/// ```json
/// {
///   "routes": [
///     { "method": "GET", "path": "/api/finance/accounts/{id}",
///       "handler": "app::finance::get_account", "module": "finance", "status": "protected",
///       "requirement": { "kind": "permission", "permissions": ["finance.accounts.read"] } }
///   ],
///   "totals": { "routes": 1, "protected": 1, "public": 0, "unprotected": 0, "unresolved": 0 },
///   "modules": { "finance": { "routes": 1, "protected": 1, "public": 0, "unprotected": 0, "unresolved": 0 } }
/// }
/// ```
///
/// `status` is one of `protected`, `public`, `unprotected`, `unresolved`. `requirement` is `null`
/// or an object whose `kind` is `permission`, `any`, `all` (with `permissions`), `role` (with
/// `role`), `module` (with `module`), `public`, or `every` (with `requirements`, when an
/// attribute and route layers both apply). `module` is `null` for a route without one; such
/// routes count in `totals` only. Routes are ordered by path, then method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageReport {
    /// Every route.
    pub routes: Vec<RouteReport>,
    /// Counts over every route.
    pub totals: Totals,
    /// Counts per module, by module name.
    pub modules: BTreeMap<String, Totals>,
}

/// The path the coverage report gives a router's fallback (nested: `PREFIX (fallback)`).
pub const FALLBACK: &str = "(fallback)";

/// The path the coverage report gives the route `path` of a router nested at `prefix`, as
/// axum joins them; a nested fallback (`(fallback)`, or `INNER (fallback)` from deeper down)
/// becomes `PREFIX (fallback)` or `PREFIX/INNER (fallback)`. `rbac-admin coverage --src`
/// names nested routes with it too, so that both reports agree.
///
/// ```
/// use rbac_axum::coverage::nested_path;
///
/// assert_eq!(nested_path("/api", "/invoices"), "/api/invoices");
/// assert_eq!(nested_path("/api", "/"), "/api");
/// assert_eq!(nested_path("/api/", "/invoices"), "/api/invoices");
/// assert_eq!(nested_path("/api", "(fallback)"), "/api (fallback)");
/// assert_eq!(nested_path("/t/{tenant}", "/admin (fallback)"), "/t/{tenant}/admin (fallback)");
/// ```
pub fn nested_path(prefix: &str, path: &str) -> String {
    match path.strip_suffix(FALLBACK) {
        Some(inner) => {
            let joined = join(prefix, inner.trim_end());
            let joined = joined.trim_end_matches('/');
            let joined = if joined.is_empty() { "/" } else { joined };
            format!("{joined} {FALLBACK}")
        }
        None => join(prefix, path),
    }
}

/// `prefix` and `path` joined as axum joins a nest prefix and a nested route.
fn join(prefix: &str, path: &str) -> String {
    if prefix.ends_with('/') {
        format!("{prefix}{}", path.trim_start_matches('/'))
    } else if path == "/" {
        prefix.to_owned()
    } else {
        format!("{prefix}{path}")
    }
}

const METHOD_ORDER: [&str; 10] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "ANY",
];

fn method_rank(method: &str) -> usize {
    METHOD_ORDER
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHOD_ORDER.len())
}

impl CoverageReport {
    pub(crate) fn build(entries: &[RouteEntry], options: &CoverageOptions) -> CoverageReport {
        CoverageReport::from_routes(entries.iter().map(|e| route(e, options)).collect())
    }

    /// A report of `routes` (from another source, such as a static analysis of the source
    /// code): ordered by path then method, with totals computed.
    pub fn from_routes(mut routes: Vec<RouteReport>) -> CoverageReport {
        routes.sort_by(|a, b| {
            (a.path.as_str(), method_rank(&a.method), a.handler.as_str()).cmp(&(
                b.path.as_str(),
                method_rank(&b.method),
                b.handler.as_str(),
            ))
        });
        let mut totals = Totals::default();
        let mut modules: BTreeMap<String, Totals> = BTreeMap::new();
        for r in &routes {
            totals.add(r.status);
            if let Some(module) = &r.module {
                modules.entry(module.clone()).or_default().add(r.status);
            }
        }
        CoverageReport {
            routes,
            totals,
            modules,
        }
    }

    /// The routes with a given status.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &RouteReport> {
        self.routes.iter().filter(move |r| r.status == status)
    }

    /// The permissions that routes require and `authorizer`'s policy does not declare (a typo in
    /// a string literal, or a permission not yet added to the policy), each with the routes that
    /// name it and a likely intended name.
    pub fn undeclared_permissions<A: crate::Authorizer + ?Sized>(
        &self,
        authorizer: &A,
    ) -> Vec<UndeclaredPermission> {
        let declared = crate::registry::declared_permissions();
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.routes {
            for p in r.requirement.iter().flat_map(permissions_in) {
                if !authorizer.is_declared(&p) {
                    found
                        .entry(p)
                        .or_default()
                        .push(format!("{} {}", r.method, r.path));
                }
            }
        }
        found
            .into_iter()
            .map(|(permission, routes)| {
                let suggestion = rbac_core::name::suggest(
                    &permission,
                    declared
                        .iter()
                        .map(|p| p.as_str())
                        .filter(|p| authorizer.is_declared(p)),
                )
                .map(str::to_owned);
                UndeclaredPermission {
                    permission,
                    routes,
                    suggestion,
                }
            })
            .collect()
    }

    /// The roles (`#[require_role]`, `require_role`) and modules (`#[require_module]`) that
    /// routes require and `authorizer`'s policy does not define, each with the routes that
    /// name it. The macros check only their form: a misspelt role or module compiles, is
    /// reported as protected, and answers 403 to everyone. A test asserting this is empty
    /// catches it (with [`CoverageReport::undeclared_permissions`] for permissions).
    ///
    /// ```
    /// # use rbac_axum::{Router, routing::get, require_role};
    /// # use rbac_axum::rbac_core::{Engine, Policy};
    /// #[require_role("admn")]
    /// async fn settings() -> &'static str { "settings" }
    ///
    /// let policy = Policy::from_toml_str("[roles.admin]")?;
    /// let app: Router = Router::new().route("/settings", get(settings));
    /// let unknown = app.coverage().undeclared_roles_and_modules(&Engine::new(&policy));
    /// assert_eq!(unknown[0].to_string(), "role `admn` is not defined in the policy (required by GET /settings)");
    /// # Ok::<(), rbac_axum::rbac_core::PolicyError>(())
    /// ```
    pub fn undeclared_roles_and_modules<A: crate::Authorizer + ?Sized>(
        &self,
        authorizer: &A,
    ) -> Vec<UndeclaredName> {
        let mut found: BTreeMap<(NameKind, String), Vec<String>> = BTreeMap::new();
        for r in &self.routes {
            for (kind, name) in r.requirement.iter().flat_map(roles_and_modules_in) {
                let known = match kind {
                    NameKind::Role => authorizer.is_role(&name),
                    NameKind::Module => authorizer.is_module(&name),
                };
                if !known {
                    found
                        .entry((kind, name))
                        .or_default()
                        .push(format!("{} {}", r.method, r.path));
                }
            }
        }
        found
            .into_iter()
            .map(|((kind, name), routes)| UndeclaredName { kind, name, routes })
            .collect()
    }

    /// The report as JSON (see the type's documentation for the shape).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The report as indented JSON text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// `crm 0/12, finance 26/26, total 38/166 = 22.9%`: covered (protected or public) over all
    /// routes, per module and in total.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .modules
            .iter()
            .map(|(m, t)| format!("{m} {}/{}", t.covered(), t.routes))
            .collect();
        parts.push(format!(
            "total {}/{} = {:.1}%",
            self.totals.covered(),
            self.totals.routes,
            self.totals.percent()
        ));
        parts.join(", ")
    }

    /// An aligned text table and the summary.
    pub fn to_text(&self) -> String {
        let header = [
            "METHOD",
            "PATH",
            "HANDLER",
            "MODULE",
            "STATUS",
            "REQUIREMENT",
        ];
        let rows: Vec<[String; 6]> = self.routes.iter().map(cells).collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&header);
        for row in &rows {
            line(&row.each_ref().map(String::as_str));
        }
        out.push('\n');
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// A Markdown table and the summary.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Route coverage\n\n");
        let _ = writeln!(out, "{}\n", self.summary());
        out.push_str("| Method | Path | Handler | Module | Status | Requirement |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for row in self.routes.iter().map(cells) {
            let escaped: Vec<String> = row
                .iter()
                .map(|c| format!("`{}`", c.replace('|', "\\|")))
                .collect();
            let _ = writeln!(out, "| {} |", escaped.join(" | "));
        }
        out.push_str("\n| Module | Routes | Protected | Public | Unprotected | Unresolved |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        for (name, t) in self
            .modules
            .iter()
            .map(|(m, t)| (m.as_str(), t))
            .chain([("total", &self.totals)])
        {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} |",
                t.routes, t.protected, t.public, t.unprotected, t.unresolved
            );
        }
        out
    }

    /// A self-contained HTML page (inline style, no scripts, no external resources).
    pub fn to_html(&self) -> String {
        let mut out = String::from(concat!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<title>Route coverage</title>\n<style>\n",
            "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}\n",
            "table{border-collapse:collapse;margin:1rem 0}\n",
            "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}\n",
            "td{font-family:ui-monospace,monospace;font-size:.9rem}\n",
            "tr.protected td.status{background:#dcfce7}\n",
            "tr.public td.status{background:#e0f2fe}\n",
            "tr.unprotected td.status{background:#fee2e2;font-weight:bold}\n",
            "tr.unresolved td.status{background:#fef3c7;font-weight:bold}\n",
            "</style>\n</head>\n<body>\n<h1>Route coverage</h1>\n",
        ));
        let _ = writeln!(out, "<p>{}</p>", html(&self.summary()));
        out.push_str("<table>\n<tr><th>Method</th><th>Path</th><th>Handler</th><th>Module</th><th>Status</th><th>Requirement</th></tr>\n");
        for (r, row) in self.routes.iter().zip(self.routes.iter().map(cells)) {
            let [method, path, handler, module, status, requirement] = row.map(|c| html(&c));
            let _ = writeln!(
                out,
                "<tr class=\"{}\"><td>{method}</td><td>{path}</td><td>{handler}</td><td>{module}</td><td class=\"status\">{status}</td><td>{requirement}</td></tr>",
                r.status
            );
        }
        out.push_str("</table>\n<table>\n<tr><th>Module</th><th>Routes</th><th>Protected</th><th>Public</th><th>Unprotected</th><th>Unresolved</th><th>Covered</th></tr>\n");
        for (name, t) in self
            .modules
            .iter()
            .map(|(m, t)| (m.as_str(), t))
            .chain([("total", &self.totals)])
        {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
                html(name),
                t.routes,
                t.protected,
                t.public,
                t.unprotected,
                t.unresolved,
                t.percent()
            );
        }
        out.push_str("</table>\n</body>\n</html>\n");
        out
    }
}

impl fmt::Display for CoverageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A permission that routes require and the policy does not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeclaredPermission {
    /// The permission as written.
    pub permission: String,
    /// `METHOD /path` of each route naming it.
    pub routes: Vec<String>,
    /// A declared permission (from `permissions!`) close enough to be the intended one.
    pub suggestion: Option<String>,
}

impl fmt::Display for UndeclaredPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not declared in the policy (required by {})",
            self.permission,
            self.routes.join(", ")
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

/// What kind of name an [`UndeclaredName`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameKind {
    /// A role (`#[require_role]`).
    Role,
    /// A module (`#[require_module]`).
    Module,
}

/// A role or module that routes require and the policy does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeclaredName {
    /// Role or module.
    pub kind: NameKind,
    /// The name as written.
    pub name: String,
    /// `METHOD /path` of each route naming it.
    pub routes: Vec<String>,
}

impl fmt::Display for UndeclaredName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, what) = match self.kind {
            NameKind::Role => ("role", "defined"),
            NameKind::Module => ("module", "declared (no permission of it)"),
        };
        write!(
            f,
            "{kind} `{}` is not {what} in the policy (required by {})",
            self.name,
            self.routes.join(", ")
        )
    }
}

/// The roles and modules a requirement names, nested ones included.
fn roles_and_modules_in(requirement: &RequirementReport) -> Vec<(NameKind, String)> {
    match requirement {
        RequirementReport::Role { role } => vec![(NameKind::Role, role.clone())],
        RequirementReport::Module { module } => vec![(NameKind::Module, module.clone())],
        RequirementReport::Every { requirements } => {
            requirements.iter().flat_map(roles_and_modules_in).collect()
        }
        RequirementReport::Permission { .. }
        | RequirementReport::Any { .. }
        | RequirementReport::All { .. }
        | RequirementReport::Public => Vec::new(),
    }
}

fn permissions_in(requirement: &RequirementReport) -> Vec<String> {
    match requirement {
        RequirementReport::Permission { permissions }
        | RequirementReport::Any { permissions }
        | RequirementReport::All { permissions } => permissions.clone(),
        RequirementReport::Every { requirements } => {
            requirements.iter().flat_map(permissions_in).collect()
        }
        RequirementReport::Role { .. }
        | RequirementReport::Module { .. }
        | RequirementReport::Public => Vec::new(),
    }
}

fn cells(r: &RouteReport) -> [String; 6] {
    [
        r.method.clone(),
        r.path.clone(),
        r.handler.clone(),
        r.module.clone().unwrap_or_else(|| "-".to_owned()),
        r.status.to_string(),
        r.requirement
            .as_ref()
            .map_or_else(|| "NONE".to_owned(), ToString::to_string),
    ]
}

fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn route(entry: &RouteEntry, options: &CoverageOptions) -> RouteReport {
    let (handler, explicit_module) = match entry.handler.kind {
        HandlerKind::Marked(meta) => (meta.path(), meta.module),
        HandlerKind::Plain | HandlerKind::Opaque => (entry.handler.type_name.to_owned(), None),
    };
    let protections: Vec<Protection> = entry.protections().collect();
    let requirements: Vec<&Requirement> = protections
        .iter()
        .filter_map(|p| match p {
            Protection::Requires(r) => Some(r),
            Protection::Public => None,
        })
        .collect();
    let public = protections.contains(&Protection::Public);
    let (status, requirement) = match requirements.as_slice() {
        [] if public => (Status::Public, Some(RequirementReport::Public)),
        [] => match entry.handler.kind {
            HandlerKind::Opaque => (Status::Unresolved, None),
            HandlerKind::Marked(_) | HandlerKind::Plain => (Status::Unprotected, None),
        },
        [one] => (Status::Protected, Some(RequirementReport::of(one))),
        many => (
            Status::Protected,
            Some(RequirementReport::Every {
                requirements: many.iter().map(|r| RequirementReport::of(r)).collect(),
            }),
        ),
    };
    let module = explicit_module
        .or_else(|| options.module_by_path(&entry.path))
        .or_else(|| requirements.iter().find_map(|r| r.module()))
        .map(str::to_owned);
    RouteReport {
        method: entry.handler.method.to_owned(),
        path: entry.path.clone(),
        handler,
        module,
        status,
        requirement,
    }
}

/// Panics with the text report unless at least `min_percent` of `router`'s routes are covered
/// (protected or public). For tests:
///
/// ```
/// # use rbac_axum::{Router, assert_coverage};
/// let app: Router = Router::new();
/// assert_coverage(&app, 100.0);
/// ```
#[track_caller]
pub fn assert_coverage<S: Clone + Send + Sync + 'static>(
    router: &crate::Router<S>,
    min_percent: f64,
) {
    router.coverage().assert_at_least(min_percent);
}

impl CoverageReport {
    /// Panics with the text report unless at least `min_percent` of the routes are covered.
    #[track_caller]
    #[expect(clippy::panic, reason = "a test assertion reports by panicking")]
    pub fn assert_at_least(&self, min_percent: f64) {
        let percent = self.totals.percent();
        if percent + 1e-9 < min_percent {
            panic!(
                "route coverage {percent:.1}% is below the required {min_percent:.1}%\n\n{}",
                self.to_text()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules_match_whole_segments_and_the_longest_wins() {
        let options = CoverageOptions::new()
            .module_for_path("/api", "api")
            .module_for_path("/api/crm/", "crm");
        assert_eq!(options.module_by_path("/api/crm"), Some("crm"));
        assert_eq!(options.module_by_path("/api/crm/leads"), Some("crm"));
        assert_eq!(options.module_by_path("/api/crmx"), Some("api"));
        assert_eq!(options.module_by_path("/other"), None);
    }

    #[test]
    fn shares_count_public_routes_as_covered() {
        let mut totals = Totals::default();
        assert_eq!(totals.percent(), 100.0);
        for status in [
            Status::Protected,
            Status::Public,
            Status::Unprotected,
            Status::Unresolved,
        ] {
            totals.add(status);
        }
        assert_eq!((totals.covered(), totals.routes), (2, 4));
        assert_eq!(totals.percent(), 50.0);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
