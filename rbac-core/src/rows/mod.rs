//! Row-level policies: which rows of a resource a subject may see, as one policy with three
//! evaluators that agree — in memory on one row, a SQL `WHERE` fragment, and an explanation.
//!
//! # The model
//!
//! - A resource declares its table, its tenant column and its filterable columns with types
//!   (`[resources.invoices]`, see [`crate::document::ResourceDef`]).
//! - A role's layer holds a filter per resource (`[roles.user.rows] invoices = "created_by =
//!   subject.id"`). A tenant layer's filter replaces the global layer's filter of the same role
//!   and resource inside that tenant.
//! - A subject sees a row of tenant `t` if the row's tenant column is `t` **and** the filter of
//!   at least one of its roles effective in `t` (held there or globally, and every role those
//!   inherit; see [`crate::Snapshot::roles_of`]) admits it. Tenant isolation is always ANDed in
//!   and no filter can lift it. No role with a filter → no rows.
//! - Comparisons follow SQL's three-valued logic in every evaluator: a `NULL` column, or a
//!   subject attribute that is missing or of the wrong type, makes a comparison *unknown*, which
//!   admits nothing, and `not unknown` is still unknown — a missing attribute can only deny.
//!   A float attribute that is NaN counts as missing (PostgreSQL orders NaN above every number,
//!   so bound as a value it would admit every row of `amount <= subject.limit`). A NaN stored in
//!   a float column is compared by the database's rules in SQL and is unknown in memory.
//! - Row filters answer *which* rows; whether the subject may read the resource at all is a
//!   permission (`finance.invoices.read`) checked separately, e.g. by the route's guard. A row
//!   filter grants no permission, and a permission grants no rows.
//!
//! # The language
//!
//! `col = literal`, `col = subject.attr`, `!=` (or `<>`), `<`, `<=`, `>`, `>=` (numbers only),
//! `col in ('a', 'b')`, `col in subject.list`, `col not in …`, `col is null`, `col is not null`,
//! `all`, `none`, `and`, `or`, `not` and parentheses. Literals are integers, floats, `'text'`
//! (a quote doubled inside) and `true`/`false`. A filter naming an undeclared column, comparing
//! a column with a literal of another type, or ordering text is a load error naming the role
//! and the resource.
//!
//! ```
//! use rbac_core::{Engine, Policy};
//! use rbac_core::resource::{SubjectAttributes, Value};
//! use std::collections::BTreeMap;
//!
//! let policy = Policy::from_toml_str(r#"
//!     [resources.invoices]
//!     table = "invoices"
//!     tenant_column = "tenant_id"
//!     [resources.invoices.columns]
//!     created_by = "text"
//!     department_id = "int"
//!     [roles.user.rows]
//!     invoices = "created_by = subject.id"
//!     [roles.manager.rows]
//!     invoices = "department_id in subject.departments"
//!     [tenants.acme]
//!     [subjects.alice.tenants]
//!     acme = ["user"]
//! "#)?;
//! let snapshot = Engine::new(&policy).snapshot();
//! let alice = SubjectAttributes::new("alice");
//! let filter = snapshot.row_filter(&alice, "acme", "invoices")?;
//!
//! let row = BTreeMap::from([
//!     ("tenant_id".to_owned(), Value::from("acme")),
//!     ("created_by".to_owned(), Value::from("alice")),
//! ]);
//! assert!(filter.admits(&row));
//! assert_eq!(filter.explain(&row).to_string(),
//!     "admit: row of `invoices` in tenant `acme` for `alice`: role `user` (global rule) \
//!      `created_by = subject.id` → true");
//!
//! // The same filter as SQL, for any sqlx database:
//! let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT id FROM invoices WHERE ");
//! filter.push_sql(&mut query);
//! assert_eq!(query.sql().as_str(),
//!     r#"SELECT id FROM invoices WHERE ("tenant_id" = ? AND (("created_by" = ?)))"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod expr;
mod parse;
#[cfg(feature = "sql")]
mod sql;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

pub use expr::Truth;
pub use parse::{CmpOp, MAX_DEPTH, MAX_FILTER_LEN};
#[cfg(feature = "sql")]
pub use sql::FilterDatabase;

use crate::document::PolicyDocument;
use crate::fields::FieldRule;
use crate::resource::{ColumnType, Resource, SubjectAttributes, Value};
use expr::Expr;

/// Why a filter is refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text is not a filter.
    #[error("syntax error at byte {at}: {message}")]
    Syntax {
        /// Byte offset of the problem.
        at: usize,
        /// What is wrong.
        message: String,
    },
    /// A column the resource does not declare.
    #[error(
        "`{column}` is not a declared column of resource `{resource}`{}",
        did_you_mean(suggestion)
    )]
    UnknownColumn {
        /// The column.
        column: String,
        /// The resource.
        resource: String,
        /// A declared column with a close name.
        suggestion: Option<String>,
    },
    /// A literal or attribute of another type than the column.
    #[error("`{column}` is {column_type}; it cannot be compared with {found}")]
    TypeMismatch {
        /// The column.
        column: String,
        /// Its type.
        column_type: ColumnType,
        /// What it was compared with.
        found: String,
    },
    /// An ordering operator on a column that is not a number.
    #[error("`{column}` is {column_type}; `{op}` applies to int and float columns only")]
    BadOperator {
        /// The column.
        column: String,
        /// Its type.
        column_type: ColumnType,
        /// The operator.
        op: &'static str,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Parses filter text and checks it against a resource; every problem is returned.
pub(crate) fn compile_filter(text: &str, resource: &Resource) -> Result<Expr, Vec<FilterError>> {
    let ast = parse::parse(text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let expr = expr::check(&ast, resource, &mut errors);
    if errors.is_empty() {
        Ok(expr)
    } else {
        Err(errors)
    }
}

/// Checks that `text` is a well-formed filter, without a resource (for tools and fuzzing).
///
/// ```
/// use rbac_core::rows::parse_filter;
/// assert!(parse_filter("status != 'draft' and (created_by = subject.id or all)").is_ok());
/// assert!(parse_filter("status = ").is_err());
/// ```
pub fn parse_filter(text: &str) -> Result<(), FilterError> {
    parse::parse(text).map(drop)
}

/// Why a row filter or field mask could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The resource is not declared in the policy (a programming error in the caller).
    #[error("resource `{0}` is not declared in the policy")]
    UnknownResource(String),
}

/// A row filter rule of one role's layer, compiled at policy load.
#[derive(Debug)]
pub(crate) struct RowRule {
    pub(crate) role: String,
    /// The tenant of the layer it comes from; `None` for the global layer.
    pub(crate) tenant: Option<String>,
    pub(crate) source: String,
    pub(crate) expr: Expr,
}

/// What one (scope, role, resource) layer says.
#[derive(Debug, Default, Clone)]
pub(crate) struct LayerRules {
    pub(crate) rows: Option<Arc<RowRule>>,
    pub(crate) fields: Option<Arc<FieldRule>>,
}

/// Every resource and every role layer's row and field rules of a snapshot.
#[derive(Debug, Default)]
pub(crate) struct ResourcePolicies {
    pub(crate) resources: HashMap<String, Arc<Resource>>,
    /// (scope tenant id, role id, resource name) → rules; the global scope is `u32::MAX`.
    pub(crate) layers: HashMap<(u32, u32, Arc<str>), LayerRules>,
}

impl ResourcePolicies {
    /// Compiles what a validated policy declares; anything invalid (impossible after
    /// validation) is left out, which denies.
    pub(crate) fn compile(
        doc: &PolicyDocument,
        role_id: impl Fn(&str) -> Option<u32>,
        tenant_id: impl Fn(&str) -> Option<u32>,
    ) -> ResourcePolicies {
        let mut out = ResourcePolicies::default();
        for (name, def) in &doc.resources {
            out.resources
                .insert(name.clone(), Arc::new(Resource::compile(name, def)));
        }
        let global = doc.roles.iter().map(|(r, d)| (None, r, d));
        let scoped = doc
            .tenants
            .iter()
            .flat_map(|(t, def)| def.roles.iter().map(move |(r, d)| (Some(t.as_str()), r, d)));
        for (tenant, role, def) in global.chain(scoped) {
            let Some(r) = role_id(role) else { continue };
            let scope = match tenant {
                None => u32::MAX,
                Some(t) => match tenant_id(t) {
                    Some(t) => t,
                    None => continue,
                },
            };
            let mut by_resource: BTreeMap<&str, LayerRules> = BTreeMap::new();
            for (resource_name, text) in &def.rows {
                let Some(resource) = out.resources.get(resource_name) else {
                    continue;
                };
                if let Ok(expr) = compile_filter(text, resource) {
                    by_resource.entry(resource_name).or_default().rows = Some(Arc::new(RowRule {
                        role: role.clone(),
                        tenant: tenant.map(str::to_owned),
                        source: text.clone(),
                        expr,
                    }));
                }
            }
            for (resource_name, rule) in &def.fields {
                let Some(resource) = out.resources.get(resource_name) else {
                    continue;
                };
                by_resource.entry(resource_name).or_default().fields =
                    Some(Arc::new(FieldRule::compile(rule, resource)));
            }
            for (resource_name, rules) in by_resource {
                out.layers
                    .insert((scope, r, Arc::from(resource_name)), rules);
            }
        }
        out
    }

    pub(crate) fn resource(&self, name: &str) -> Result<&Arc<Resource>, RowError> {
        self.resources
            .get(name)
            .ok_or_else(|| RowError::UnknownResource(name.to_owned()))
    }

    /// The rules of `role` for `resource` in scope `tenant`: each kind from the tenant layer if
    /// it has one, else from the global layer.
    pub(crate) fn effective(&self, tenant: u32, role: u32, resource: &str) -> LayerRules {
        let key = |scope: u32| (scope, role, Arc::<str>::from(resource));
        let global = self.layers.get(&key(u32::MAX));
        let scoped = if tenant == u32::MAX {
            None
        } else {
            self.layers.get(&key(tenant))
        };
        LayerRules {
            rows: scoped
                .and_then(|l| l.rows.clone())
                .or_else(|| global.and_then(|l| l.rows.clone())),
            fields: scoped
                .and_then(|l| l.fields.clone())
                .or_else(|| global.and_then(|l| l.fields.clone())),
        }
    }
}

/// Column values of one row, for the in-memory evaluator. A missing column reads as `NULL`.
pub trait RowSource {
    /// The value of `column`.
    fn value(&self, column: &str) -> Value;
}

impl RowSource for BTreeMap<String, Value> {
    fn value(&self, column: &str) -> Value {
        self.get(column).cloned().unwrap_or(Value::Null)
    }
}

impl<S: std::hash::BuildHasher> RowSource for HashMap<String, Value, S> {
    fn value(&self, column: &str) -> Value {
        self.get(column).cloned().unwrap_or(Value::Null)
    }
}

impl RowSource for serde_json::Map<String, serde_json::Value> {
    fn value(&self, column: &str) -> Value {
        self.get(column)
            .and_then(Value::from_json)
            .unwrap_or(Value::Null)
    }
}

impl RowSource for serde_json::Value {
    fn value(&self, column: &str) -> Value {
        match self {
            serde_json::Value::Object(map) => map.value(column),
            _ => Value::Null,
        }
    }
}

impl<T: RowSource + ?Sized> RowSource for &T {
    fn value(&self, column: &str) -> Value {
        (**self).value(column)
    }
}

/// A subject's row filter for one resource in one tenant: the OR of its roles' filters, ANDed
/// with tenant isolation. Cheap to build per request (no parsing: filters are compiled when the
/// policy loads); evaluate it in memory ([`RowFilter::admits`]), explain it
/// ([`RowFilter::explain`]) or push it into a sqlx query ([`RowFilter::push_sql`]).
#[derive(Debug, Clone)]
pub struct RowFilter<'a> {
    pub(crate) resource: Arc<Resource>,
    pub(crate) tenant: String,
    pub(crate) rules: Vec<Arc<RowRule>>,
    pub(crate) attrs: &'a SubjectAttributes,
}

impl<'a> RowFilter<'a> {
    pub(crate) fn new(
        resource: Arc<Resource>,
        tenant: &str,
        rules: Vec<Arc<RowRule>>,
        attrs: &'a SubjectAttributes,
    ) -> RowFilter<'a> {
        RowFilter {
            resource,
            tenant: tenant.to_owned(),
            rules,
            attrs,
        }
    }

    /// A filter that admits no row of `resource` (what an unknown subject or tenant gets).
    pub fn nothing(
        resource: Arc<Resource>,
        tenant: &str,
        attrs: &'a SubjectAttributes,
    ) -> RowFilter<'a> {
        RowFilter::new(resource, tenant, Vec::new(), attrs)
    }

    /// The resource filtered.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The tenant every admitted row belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether no role has a filter for the resource (then no row is admitted).
    pub fn admits_nothing(&self) -> bool {
        self.rules.is_empty()
    }

    /// The roles whose filters apply, with the tenant of the layer each comes from.
    pub fn roles(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.rules
            .iter()
            .map(|r| (r.role.as_str(), r.tenant.as_deref()))
    }

    fn tenant_matches(&self, row: &dyn RowSource) -> bool {
        matches!(row.value(&self.resource.tenant_column), Value::Text(t) if t == self.tenant)
    }

    fn verdict(&self, rule: &RowRule, row: &dyn RowSource) -> Truth {
        let columns = &self.resource.columns;
        let cell = |i: usize| {
            columns
                .get(i)
                .map_or(Value::Null, |(name, _)| row.value(name))
        };
        expr::eval(&rule.expr, &self.resource, self.attrs, &cell)
    }

    /// Whether the row is admitted (in memory, for checks such as "may I update invoice 42?").
    pub fn admits(&self, row: &impl RowSource) -> bool {
        self.tenant_matches(row) && self.rules.iter().any(|r| self.verdict(r, row).is_true())
    }

    /// Why the row is admitted or not: the tenant check and every role's verdict.
    pub fn explain(&self, row: &impl RowSource) -> RowExplanation {
        let tenant_matches = self.tenant_matches(row);
        let rules: Vec<RuleVerdict> = self
            .rules
            .iter()
            .map(|r| RuleVerdict {
                role: r.role.clone(),
                tenant: r.tenant.clone(),
                filter: r.source.clone(),
                verdict: self.verdict(r, row),
            })
            .collect();
        RowExplanation {
            admitted: tenant_matches && rules.iter().any(|r| r.verdict.is_true()),
            resource: self.resource.name.clone(),
            tenant: self.tenant.clone(),
            subject: self.attrs.id().to_owned(),
            tenant_matches,
            rules,
        }
    }

    /// Appends the filter as a parenthesised SQL boolean expression, e.g.
    /// `("tenant_id" = $1 AND (("created_by" = $2) OR ("department_id" IN ($3, $4))))`; with no
    /// applicable role it is `(1 = 0)`. Identifiers come from the declared resource, quoted;
    /// every value is a bind parameter. Columns are not qualified by a table name.
    #[cfg(feature = "sql")]
    pub fn push_sql<DB: FilterDatabase>(&self, query: &mut sqlx::QueryBuilder<DB>) {
        sql::push_filter(self, query);
    }
}

/// One role's verdict on a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVerdict {
    /// The role.
    pub role: String,
    /// The tenant of the layer the filter comes from; `None` for the global layer.
    pub tenant: Option<String>,
    /// The filter as written.
    pub filter: String,
    /// What it said about the row.
    pub verdict: Truth,
}

/// Why a row is admitted or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowExplanation {
    /// Whether the row is admitted.
    pub admitted: bool,
    /// The resource.
    pub resource: String,
    /// The request's tenant.
    pub tenant: String,
    /// The subject.
    pub subject: String,
    /// Whether the row belongs to the request's tenant (else nothing can admit it).
    pub tenant_matches: bool,
    /// Every applicable role's verdict, in role order.
    pub rules: Vec<RuleVerdict>,
}

impl fmt::Display for RowExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: row of `{}` in tenant `{}` for `{}`: ",
            if self.admitted { "admit" } else { "reject" },
            self.resource,
            self.tenant,
            self.subject
        )?;
        if !self.tenant_matches {
            return f.write_str("the row belongs to another tenant (tenant isolation)");
        }
        if self.rules.is_empty() {
            return f.write_str("no role of the subject has a filter for this resource");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let scope = match &rule.tenant {
                Some(t) => format!("rule of tenant `{t}`"),
                None => "global rule".to_owned(),
            };
            let verdict = match rule.verdict {
                Truth::True => "true",
                Truth::False => "false",
                Truth::Unknown => "unknown (a null or a missing attribute)",
            };
            write!(
                f,
                "role `{}` ({scope}) `{}` → {verdict}",
                rule.role, rule.filter
            )?;
        }
        Ok(())
    }
}

impl crate::Snapshot {
    /// A declared resource.
    ///
    /// # Errors
    /// [`RowError::UnknownResource`] if the policy declares no such resource.
    pub fn resource(&self, name: &str) -> Result<Arc<Resource>, RowError> {
        self.resource_policies().resource(name).cloned()
    }

    /// The row filter of a subject (`attrs.id()`, its name in the policy) for `resource` in
    /// `tenant`. An unknown subject or tenant gets a filter that admits nothing.
    ///
    /// # Errors
    /// [`RowError::UnknownResource`] if the policy declares no such resource.
    pub fn row_filter<'a>(
        &self,
        attrs: &'a SubjectAttributes,
        tenant: &str,
        resource: &str,
    ) -> Result<RowFilter<'a>, RowError> {
        let policies = self.resource_policies();
        let compiled = policies.resource(resource)?.clone();
        let mut rules = Vec::new();
        if let Some((t, roles)) = self.role_ids_in(attrs.id(), tenant) {
            for role in roles {
                if let Some(rule) = policies.effective(t, role, resource).rows {
                    rules.push(rule);
                }
            }
        }
        rules.sort_by(|a, b| a.role.cmp(&b.role));
        Ok(RowFilter::new(compiled, tenant, rules, attrs))
    }
}
