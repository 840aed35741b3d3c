//! Route coverage without running the application: read its source with `syn`, find the axum
//! routes and what protects them.
//!
//! The analysis evaluates router-building expressions symbolically: `Router::new()` chains,
//! `.route("/literal", get(handler).post(other))`, `.nest("/prefix", expr)`, `.merge(expr)`,
//! `.route_layer(require("perm"))` (and `require_any`, `require_all`, `require_role`,
//! `require_module`, `public()`), calls to functions that build routers, and `let` bindings in
//! the same function. Handlers are matched to their `#[require_permission]`, `#[require_role]`,
//! `#[require_module]` or `#[public]` attribute by name. Whatever it cannot follow (a path that
//! is not a literal, a closure as handler, a handler or router function it cannot find or finds
//! twice, `MethodRouter::on`) is reported as `unresolved` with the reason: it never guesses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rbac_axum::coverage::{FALLBACK, nested_path};
use syn::{Expr, ExprCall, ExprMethodCall, Item, Stmt};

/// What protects a route, as written in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// One permission, or any/all of several.
    Permissions {
        /// `one`, `any` or `all`.
        mode: &'static str,
        /// The permissions (or constant paths) as written.
        permissions: Vec<String>,
    },
    /// A role.
    Role(String),
    /// Any permission of a module.
    Module(String),
    /// Deliberately open.
    Public,
}

impl Requirement {
    /// The module a requirement belongs to (first permission segment), if any.
    pub fn module(&self) -> Option<String> {
        match self {
            Requirement::Permissions { permissions, .. } => permissions
                .first()
                .and_then(|p| p.split('.').next())
                .map(str::to_owned),
            Requirement::Module(m) => Some(m.clone()),
            Requirement::Role(_) | Requirement::Public => None,
        }
    }
}

/// Coverage status of one route: the one `rbac_axum::Router::coverage` reports.
pub use rbac_axum::coverage::Status;

/// One route found in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case (`GET`), or `?` when unknown.
    pub method: String,
    /// The full path, nest prefixes included.
    pub path: String,
    /// The handler's name as written (`handlers::list_invoices`), or a description.
    pub handler: String,
    /// What protects it.
    pub requirement: Option<Requirement>,
    /// The verdict.
    pub status: Status,
    /// Why it is unresolved, when it is.
    pub reason: Option<String>,
    /// The file the route was registered in.
    pub file: String,
}

/// Why a source tree could not be analysed at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid Rust.
    #[error("cannot parse `{path}`: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// No Rust file was found.
    #[error("no `.rs` file under `{0}`")]
    Empty(String),
}

struct FnInfo {
    file: String,
    requirement: Option<Requirement>,
    block: syn::Block,
}

/// The routes of every router in the `.rs` files under `dir` (a `target/` directory is skipped).
pub fn scan(dir: &Path) -> Result<Vec<Route>, ScanError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    if files.is_empty() {
        return Err(ScanError::Empty(dir.display().to_string()));
    }
    let mut fns: BTreeMap<String, Vec<FnInfo>> = BTreeMap::new();
    for path in &files {
        let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScanError::Read {
            path: shown.clone(),
            source,
        })?;
        let file = syn::parse_file(&text).map_err(|e| ScanError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        index_items(&file.items, &shown, &mut fns);
    }
    let analysis = Analysis { fns };
    // Every function that builds a router is evaluated; those that another router function
    // nests or merges are reported through it, the others are roots (an app, a test router).
    let mut referenced = BTreeSet::new();
    let mut built: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for (name, infos) in &analysis.fns {
        for info in infos {
            let mut scope = Scope {
                file: &info.file,
                lets: BTreeMap::new(),
                referenced: &mut referenced,
                depth: 0,
            };
            if let Some(routes) = analysis.eval_block(&info.block, &mut scope)
                && !routes.is_empty()
            {
                built.entry(name.clone()).or_default().extend(routes);
            }
        }
    }
    let mut routes: Vec<Route> = built
        .into_iter()
        .filter(|(name, _)| !referenced.contains(name))
        .flat_map(|(_, routes)| routes)
        .collect();
    routes.sort_by(|a, b| (&a.path, &a.method, &a.file).cmp(&(&b.path, &b.method, &b.file)));
    routes.dedup();
    Ok(routes)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ScanError> {
    let read_err = |source| ScanError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == ".git")
            {
                continue;
            }
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn index_items(items: &[Item], file: &str, fns: &mut BTreeMap<String, Vec<FnInfo>>) {
    for item in items {
        match item {
            Item::Fn(f) => {
                let info = FnInfo {
                    file: file.to_owned(),
                    requirement: requirement_of(&f.attrs),
                    block: (*f.block).clone(),
                };
                fns.entry(f.sig.ident.to_string()).or_default().push(info);
            }
            Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    index_items(items, file, fns);
                }
            }
            _ => {}
        }
    }
}

fn last_segment(path: &syn::Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

fn string_lit(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        _ => None,
    }
}

/// A permission argument: a string literal, or a path to a constant (kept as written).
fn permission_arg(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) => Some(path_text(&p.path)),
        other => string_lit(other),
    }
}

fn requirement_of(attrs: &[syn::Attribute]) -> Option<Requirement> {
    for attr in attrs {
        let name = last_segment(attr.path());
        let args = || -> Vec<Expr> {
            attr.parse_args_with(
                syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated,
            )
            .map(|p| p.into_iter().collect())
            .unwrap_or_default()
        };
        match name.as_str() {
            "public" => return Some(Requirement::Public),
            "require_role" => return args().first().and_then(string_lit).map(Requirement::Role),
            "require_module" => {
                return args().first().and_then(string_lit).map(Requirement::Module);
            }
            "require_permission" => return permissions_requirement(&args()),
            _ => {}
        }
    }
    None
}

/// `"a.b"`, `any("a", "b")`, `all(...)`.
fn permissions_requirement(args: &[Expr]) -> Option<Requirement> {
    if let [Expr::Call(call)] = args
        && let Expr::Path(f) = &*call.func
    {
        let mode = match last_segment(&f.path).as_str() {
            "any" => "any",
            "all" => "all",
            _ => return None,
        };
        let permissions: Option<Vec<String>> = call.args.iter().map(permission_arg).collect();
        return permissions.map(|permissions| Requirement::Permissions { mode, permissions });
    }
    let permissions: Option<Vec<String>> = args.iter().map(permission_arg).collect();
    let permissions = permissions.filter(|p| !p.is_empty())?;
    let mode = if permissions.len() == 1 { "one" } else { "all" };
    Some(Requirement::Permissions { mode, permissions })
}

/// A `route_layer(...)` argument that is one of the runtime's requirement layers.
fn layer_requirement(expr: &Expr) -> Option<Requirement> {
    let Expr::Call(ExprCall { func, args, .. }) = expr else {
        return None;
    };
    let Expr::Path(f) = &**func else { return None };
    let args: Vec<Expr> = args.iter().cloned().collect();
    match last_segment(&f.path).as_str() {
        "require" => permissions_requirement(&args),
        "require_any" => {
            let permissions: Option<Vec<String>> = args.iter().map(permission_arg).collect();
            permissions.map(|permissions| Requirement::Permissions {
                mode: "any",
                permissions,
            })
        }
        "require_all" => {
            let permissions: Option<Vec<String>> = args.iter().map(permission_arg).collect();
            permissions.map(|permissions| Requirement::Permissions {
                mode: "all",
                permissions,
            })
        }
        "require_role" => args.first().and_then(string_lit).map(Requirement::Role),
        "require_module" => args.first().and_then(string_lit).map(Requirement::Module),
        "public" => Some(Requirement::Public),
        _ => None,
    }
}

const METHODS: [&str; 9] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "any",
];

struct Analysis {
    fns: BTreeMap<String, Vec<FnInfo>>,
}

struct Scope<'a> {
    file: &'a str,
    lets: BTreeMap<String, Expr>,
    referenced: &'a mut BTreeSet<String>,
    depth: usize,
}

/// A (method, handler) pair of a method router, with any requirement layered on it.
struct Endpoint {
    method: String,
    handler: String,
    requirement: Option<Requirement>,
    reason: Option<String>,
}

impl Analysis {
    /// The routes a block evaluates to, if its value is a router.
    fn eval_block(&self, block: &syn::Block, scope: &mut Scope<'_>) -> Option<Vec<Route>> {
        let mut value = None;
        for stmt in &block.stmts {
            match stmt {
                Stmt::Local(local) => {
                    if let (syn::Pat::Ident(ident), Some(init)) = (&local.pat, &local.init) {
                        scope
                            .lets
                            .insert(ident.ident.to_string(), (*init.expr).clone());
                    }
                }
                Stmt::Expr(expr, None) => value = self.eval(expr, scope),
                Stmt::Expr(Expr::Return(ret), _) => {
                    value = ret.expr.as_ref().and_then(|e| self.eval(e, scope));
                }
                _ => {}
            }
        }
        value
    }

    fn eval(&self, expr: &Expr, scope: &mut Scope<'_>) -> Option<Vec<Route>> {
        if scope.depth > 32 {
            return None;
        }
        match expr {
            Expr::Paren(p) => self.eval(&p.expr, scope),
            Expr::Block(b) => self.eval_block(&b.block, scope),
            Expr::Path(p) if p.path.segments.len() == 1 => {
                let name = last_segment(&p.path);
                let init = scope.lets.get(&name).cloned()?;
                scope.depth += 1;
                let routes = self.eval(&init, scope);
                scope.depth -= 1;
                routes
            }
            Expr::Call(call) => {
                let Expr::Path(f) = &*call.func else {
                    return None;
                };
                let name = last_segment(&f.path);
                if name == "new" && f.path.segments.len() >= 2 {
                    let owner = f
                        .path
                        .segments
                        .iter()
                        .rev()
                        .nth(1)
                        .map(|s| s.ident.to_string());
                    return (owner.as_deref() == Some("Router")).then(Vec::new);
                }
                self.eval_fn(&name, scope)
            }
            Expr::MethodCall(call) => self.eval_method(call, scope),
            _ => None,
        }
    }

    /// The router a function returns, when exactly one function of that name builds one.
    fn eval_fn(&self, name: &str, scope: &mut Scope<'_>) -> Option<Vec<Route>> {
        let infos = self.fns.get(name)?;
        let [info] = infos.as_slice() else {
            return None;
        };
        let mut inner = Scope {
            file: &info.file,
            lets: BTreeMap::new(),
            referenced: &mut *scope.referenced,
            depth: scope.depth + 1,
        };
        let routes = self.eval_block(&info.block, &mut inner)?;
        scope.referenced.insert(name.to_owned());
        Some(routes)
    }

    fn eval_method(&self, call: &ExprMethodCall, scope: &mut Scope<'_>) -> Option<Vec<Route>> {
        let method = call.method.to_string();
        let args: Vec<&Expr> = call.args.iter().collect();
        match (method.as_str(), args.as_slice()) {
            ("route", [path, method_router]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                let path = string_lit(path);
                for endpoint in self.endpoints(method_router) {
                    routes.push(self.route(path.clone(), endpoint, scope.file));
                }
                Some(routes)
            }
            // What answers a path no route matches: reported as `rbac_axum::Router` reports it.
            ("fallback", [method_router]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                routes.retain(|r| r.path != FALLBACK);
                for endpoint in self.endpoints(method_router) {
                    routes.push(self.route(Some(FALLBACK.to_owned()), endpoint, scope.file));
                }
                Some(routes)
            }
            // A service cannot be read: reported as `rbac_axum::Router` reports it, unresolved
            // unless a layer covers it.
            ("route_service" | "nest_service", [path, service]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                let path = string_lit(path).map(|p| match method.as_str() {
                    "nest_service" => format!("{}/…", p.trim_end_matches('/')),
                    _ => p,
                });
                routes.push(self.service(path, service, scope.file));
                Some(routes)
            }
            ("fallback_service", [service]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                routes.retain(|r| r.path != FALLBACK);
                routes.push(self.service(Some(FALLBACK.to_owned()), service, scope.file));
                Some(routes)
            }
            ("nest", [prefix, inner]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                let prefix = string_lit(prefix);
                match self.eval(inner, scope) {
                    Some(mut nested) => {
                        // axum carries a nested router's fallbacks over only when it has one
                        // of its own.
                        if !nested.iter().any(|r| r.path == FALLBACK) {
                            nested.retain(|r| !r.path.ends_with(FALLBACK));
                        }
                        routes.extend(nested.into_iter().map(|mut r| {
                            match &prefix {
                                // A route whose own path is unknown stays `?`, with its reason.
                                Some(_) if r.path == "?" => {}
                                Some(prefix) => r.path = nested_path(prefix, &r.path),
                                None => {
                                    r.path = format!("?{}", r.path);
                                    r.status = Status::Unresolved;
                                    r.reason =
                                        Some("the nest prefix is not a string literal".into());
                                }
                            }
                            r
                        }));
                    }
                    None => routes.push(Route {
                        method: "?".into(),
                        path: prefix.map_or_else(|| "?".into(), |p| format!("{p}/…")),
                        handler: expr_text(inner),
                        requirement: None,
                        status: Status::Unresolved,
                        reason: Some("cannot follow the nested router".into()),
                        file: scope.file.to_owned(),
                    }),
                }
                Some(routes)
            }
            ("merge", [inner]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                match self.eval(inner, scope) {
                    Some(merged) => routes.extend(merged),
                    None => routes.push(Route {
                        method: "?".into(),
                        path: "?".into(),
                        handler: expr_text(inner),
                        requirement: None,
                        status: Status::Unresolved,
                        reason: Some("cannot follow the merged router".into()),
                        file: scope.file.to_owned(),
                    }),
                }
                Some(routes)
            }
            // axum applies a layer to the routes and the fallback added before it, a route
            // layer to the routes only.
            (kind @ ("layer" | "route_layer"), [layer]) => {
                let mut routes = self.eval(&call.receiver, scope)?;
                if let Some(requirement) = layer_requirement(layer) {
                    let covered = |r: &&mut Route| {
                        (r.status != Status::Unresolved || r.reason.as_deref() == Some(SERVICE))
                            && (kind == "layer" || !r.path.ends_with(FALLBACK))
                    };
                    for route in routes.iter_mut().filter(covered) {
                        if route.requirement.is_none() {
                            route.status = status_of(&requirement);
                            route.requirement = Some(requirement.clone());
                            route.reason = None;
                        }
                    }
                }
                Some(routes)
            }
            // Other layers, state and the like keep the routes as they are.
            _ => self.eval(&call.receiver, scope),
        }
    }

    /// The (method, handler) pairs of a method-router expression.
    fn endpoints(&self, expr: &Expr) -> Vec<Endpoint> {
        match expr {
            Expr::Call(call) => {
                let Expr::Path(f) = &*call.func else {
                    return vec![unknown_endpoint(expr)];
                };
                let name = last_segment(&f.path);
                match (METHODS.contains(&name.as_str()), call.args.first()) {
                    (true, Some(handler)) => vec![self.endpoint(&name, handler)],
                    _ => vec![unknown_endpoint(expr)],
                }
            }
            Expr::MethodCall(call) => {
                let name = call.method.to_string();
                let mut list = self.endpoints(&call.receiver);
                if METHODS.contains(&name.as_str()) {
                    if let Some(handler) = call.args.first() {
                        list.push(self.endpoint(&name, handler));
                    }
                } else if name == "route_layer" || name == "layer" {
                    if let Some(requirement) = call.args.first().and_then(layer_requirement) {
                        for endpoint in list.iter_mut().filter(|e| e.requirement.is_none()) {
                            endpoint.requirement = Some(requirement.clone());
                        }
                    }
                } else {
                    list.push(unknown_endpoint(expr));
                }
                list
            }
            Expr::Paren(p) => self.endpoints(&p.expr),
            _ => vec![unknown_endpoint(expr)],
        }
    }

    fn endpoint(&self, method: &str, handler: &Expr) -> Endpoint {
        let method = method.to_uppercase();
        let Expr::Path(p) = handler else {
            return Endpoint {
                method,
                handler: expr_text(handler),
                requirement: None,
                reason: Some("the handler is not a named function".into()),
            };
        };
        let name = last_segment(&p.path);
        let text = path_text(&p.path);
        match self.fns.get(&name).map(Vec::as_slice) {
            Some([info]) => Endpoint {
                method,
                handler: text,
                requirement: info.requirement.clone(),
                reason: None,
            },
            Some(_) => Endpoint {
                method,
                handler: text,
                requirement: None,
                reason: Some(format!("several functions are named `{name}`")),
            },
            None => Endpoint {
                method,
                handler: text,
                requirement: None,
                reason: Some(format!(
                    "the handler `{name}` is not in the scanned sources"
                )),
            },
        }
    }

    /// The route of a service (`route_service`, `nest_service`, `fallback_service`).
    fn service(&self, path: Option<String>, service: &Expr, file: &str) -> Route {
        let endpoint = Endpoint {
            method: "ANY".into(),
            handler: expr_text(service),
            requirement: None,
            reason: Some(SERVICE.into()),
        };
        self.route(path, endpoint, file)
    }

    fn route(&self, path: Option<String>, endpoint: Endpoint, file: &str) -> Route {
        let (status, reason) = match (&path, &endpoint.reason, &endpoint.requirement) {
            (None, _, _) => (
                Status::Unresolved,
                Some("the path is not a string literal".to_owned()),
            ),
            (_, Some(reason), None) => (Status::Unresolved, Some(reason.clone())),
            (_, _, Some(requirement)) => (status_of(requirement), None),
            (_, None, None) => (Status::Unprotected, None),
        };
        Route {
            method: endpoint.method,
            path: path.unwrap_or_else(|| "?".into()),
            handler: endpoint.handler,
            requirement: endpoint.requirement,
            status,
            reason,
            file: file.to_owned(),
        }
    }
}

/// Why a service's route is unresolved until a layer covers it.
const SERVICE: &str = "a service: what protects it cannot be seen";

fn status_of(requirement: &Requirement) -> Status {
    if *requirement == Requirement::Public {
        Status::Public
    } else {
        Status::Protected
    }
}

fn unknown_endpoint(expr: &Expr) -> Endpoint {
    Endpoint {
        method: "?".into(),
        handler: expr_text(expr),
        requirement: None,
        reason: Some("cannot read the method router".into()),
    }
}

fn expr_text(expr: &Expr) -> String {
    let text = quote::ToTokens::to_token_stream(expr).to_string();
    if text.len() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_app_has_a_known_answer() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coverage_app");
        let routes = scan(&dir).unwrap();
        let got: Vec<String> = routes
            .iter()
            .map(|r| {
                let req = match &r.requirement {
                    Some(Requirement::Permissions { mode, permissions }) => {
                        format!("{mode}({})", permissions.join(","))
                    }
                    Some(Requirement::Role(role)) => format!("role({role})"),
                    Some(Requirement::Module(m)) => format!("module({m})"),
                    Some(Requirement::Public) => "public".into(),
                    None => "NONE".into(),
                };
                format!(
                    "{} {} {} {:?} {req} {}",
                    r.method, r.path, r.handler, r.status, r.file
                )
            })
            .collect();
        let expected = [
            "GET /api/crm/export list_leads Unprotected NONE src/crm.rs",
            "GET /api/crm/leads list_leads Protected one(crm.leads.read) src/crm.rs",
            "DELETE /api/crm/leads/{id} delete_lead Protected one(crm.leads.read) src/crm.rs",
            "GET /api/finance/invoices list_invoices Protected one(finance.invoices.read) src/finance.rs",
            "POST /api/finance/invoices create_invoice Protected any(finance.invoices.create,finance.invoices.approve) src/finance.rs",
            "POST /api/finance/periods/{id}/close close_period Protected role(admin) src/finance.rs",
            "GET /api/finance/reports reports::annual Unresolved NONE src/finance.rs",
            "GET /health health Public public src/main.rs",
            "GET /inline | | async { \"closure\" } Unresolved NONE src/main.rs",
            "GET /metrics metrics Unprotected NONE src/main.rs",
            "GET ? list_leads Unresolved NONE src/crm.rs",
        ];
        assert_eq!(got, expected, "{got:#?}");
        let reasons: Vec<_> = routes.iter().filter_map(|r| r.reason.as_deref()).collect();
        assert_eq!(
            reasons,
            [
                "the handler `annual` is not in the scanned sources",
                "the handler is not a named function",
                "the path is not a string literal",
            ]
        );
    }
}
