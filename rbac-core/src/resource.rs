//! Declared resources: the tables row- and field-level policies talk about, their typed
//! columns, and the values filters compare (row values and subject attributes).
//!
//! A resource is declared once in the policy (`[resources.invoices]`) with its table, its
//! tenant column and its filterable columns with their types. Every SQL identifier a filter
//! produces comes from this declaration, never from a request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::document::ResourceDef;

/// The type of a filterable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// A 64-bit signed integer (`BIGINT`, `INTEGER`).
    Int,
    /// A 64-bit float (`DOUBLE PRECISION`, `REAL`). Store money as integer cents when it must
    /// be compared exactly.
    Float,
    /// Text (`TEXT`, `VARCHAR`). Only `=`, `!=`, `in` and `is null` apply.
    Text,
    /// A boolean (`BOOLEAN`; 0/1 in SQLite). Only `=`, `!=`, `in` and `is null` apply.
    Bool,
}

impl ColumnType {
    /// Parses a type name of the policy (`int`, `float`, `text`, `bool`).
    pub fn parse(name: &str) -> Option<ColumnType> {
        match name {
            "int" => Some(ColumnType::Int),
            "float" => Some(ColumnType::Float),
            "text" => Some(ColumnType::Text),
            "bool" => Some(ColumnType::Bool),
            _ => None,
        }
    }

    /// The type name as written in the policy.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Text => "text",
            ColumnType::Bool => "bool",
        }
    }

    /// Whether `<`, `<=`, `>`, `>=` apply (numbers only: text order differs between databases
    /// and collations, so it is refused rather than answered differently in SQL and in memory).
    pub fn is_ordered(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value of a row's column or of a subject attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`, or a value that is absent.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// The value as a column of type `ty`, if it is one (an integer is also a float); `None`
    /// for a value of another type.
    pub(crate) fn coerce(&self, ty: ColumnType) -> Option<Value> {
        match (self, ty) {
            (Value::Int(_), ColumnType::Int)
            | (Value::Float(_), ColumnType::Float)
            | (Value::Text(_), ColumnType::Text)
            | (Value::Bool(_), ColumnType::Bool)
            | (Value::Null, _) => Some(self.clone()),
            (Value::Int(i), ColumnType::Float) => Some(Value::Float(*i as f64)),
            _ => None,
        }
    }

    /// The value read from JSON (numbers as integers when they are, strings, booleans, null);
    /// arrays and objects are not column values.
    pub fn from_json(value: &serde_json::Value) -> Option<Value> {
        match value {
            serde_json::Value::Null => Some(Value::Null),
            serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .or_else(|| n.as_f64().map(Value::Float)),
            serde_json::Value::String(s) => Some(Value::Text(s.clone())),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A subject attribute: one value, or a list (for `in subject.departments`).
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    /// A single value.
    One(Value),
    /// A list of values.
    List(Vec<Value>),
}

/// Who is asking, as row filters see it: the subject's name in the policy (`subject.id`) and
/// named attributes supplied by the application at request time (from a token, a user table).
///
/// An attribute a filter needs but the subject lacks, or of the wrong type for the column it is
/// compared with, makes that comparison *unknown* (SQL `NULL`): it admits no row, and `not`
/// does not turn it into an allow.
///
/// ```
/// use rbac_core::resource::SubjectAttributes;
/// let alice = SubjectAttributes::new("alice")
///     .with("department", 7)
///     .with_list("regions", ["eu", "us"]);
/// assert_eq!(alice.id(), "alice");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectAttributes {
    id: String,
    values: BTreeMap<String, Attribute>,
}

impl SubjectAttributes {
    /// A subject with no attributes but its id (its name in the policy).
    pub fn new(id: impl Into<String>) -> SubjectAttributes {
        SubjectAttributes {
            id: id.into(),
            values: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a single-valued attribute.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(name, Attribute::One(value.into()));
        self
    }

    /// Adds (or replaces) a list attribute.
    pub fn with_list<V: Into<Value>>(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let list = values.into_iter().map(Into::into).collect();
        self.set(name, Attribute::List(list));
        self
    }

    /// Sets an attribute. The name `id` is reserved for the subject's id and is ignored here.
    pub fn set(&mut self, name: impl Into<String>, value: Attribute) {
        let name = name.into();
        if name != "id" {
            self.values.insert(name, value);
        }
    }

    /// The subject's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An attribute; `id` is the subject's id.
    pub fn get(&self, name: &str) -> Option<Attribute> {
        if name == "id" {
            return Some(Attribute::One(Value::Text(self.id.clone())));
        }
        self.values.get(name).cloned()
    }

    pub(crate) fn get_ref(&self, name: &str) -> Option<&Attribute> {
        self.values.get(name)
    }

    /// Attributes from JSON claims: strings, numbers and booleans become values, arrays of
    /// them lists; objects and mixed arrays are skipped.
    pub fn from_claims(
        id: impl Into<String>,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> SubjectAttributes {
        let mut out = SubjectAttributes::new(id);
        for (name, value) in claims {
            let attribute = match value {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(Value::from_json)
                    .collect::<Option<Vec<_>>>()
                    .map(Attribute::List),
                serde_json::Value::Object(_) => None,
                scalar => Value::from_json(scalar).map(Attribute::One),
            };
            if let Some(attribute) = attribute {
                out.set(name.clone(), attribute);
            }
        }
        out
    }
}

/// A resource as compiled at policy load: columns by index, field names as a tree.
#[derive(Debug)]
pub struct Resource {
    pub(crate) name: String,
    pub(crate) table: String,
    pub(crate) tenant_column: String,
    pub(crate) columns: Vec<(String, ColumnType)>,
    pub(crate) column_index: HashMap<String, usize>,
    /// Every field name (columns first, then JSON-only fields), indexed as in field masks.
    pub(crate) field_names: Vec<String>,
    pub(crate) field_tree: FieldNode,
}

/// One level of field names: `customer` → { index of `customer` if declared, children }.
#[derive(Debug, Default)]
pub(crate) struct FieldNode {
    pub(crate) index: Option<usize>,
    pub(crate) children: HashMap<String, FieldNode>,
}

impl Resource {
    /// Compiles a declaration (validated already; bad column types are skipped).
    pub(crate) fn compile(name: &str, def: &ResourceDef) -> Resource {
        let columns: Vec<(String, ColumnType)> = def
            .columns
            .iter()
            .filter_map(|(c, t)| ColumnType::parse(t).map(|t| (c.clone(), t)))
            .collect();
        let column_index = columns
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.clone(), i))
            .collect();
        let mut field_names: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
        for f in &def.fields {
            if !field_names.contains(f) {
                field_names.push(f.clone());
            }
        }
        let mut field_tree = FieldNode::default();
        for (i, path) in field_names.iter().enumerate() {
            let mut node = &mut field_tree;
            for segment in path.split('.') {
                node = node.children.entry(segment.to_owned()).or_default();
            }
            node.index = Some(i);
        }
        Resource {
            name: name.to_owned(),
            table: def.table.clone(),
            tenant_column: def.tenant_column.clone(),
            columns,
            column_index,
            field_names,
            field_tree,
        }
    }

    /// The resource's name in the policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The tenant column.
    pub fn tenant_column(&self) -> &str {
        &self.tenant_column
    }

    /// The filterable columns and their types, in name order.
    pub fn columns(&self) -> impl Iterator<Item = (&str, ColumnType)> {
        self.columns.iter().map(|(c, t)| (c.as_str(), *t))
    }

    /// The type of a declared column.
    pub fn column_type(&self, column: &str) -> Option<ColumnType> {
        self.column_index
            .get(column)
            .and_then(|&i| self.columns.get(i))
            .map(|(_, t)| *t)
    }

    pub(crate) fn field_index(&self, path: &str) -> Option<usize> {
        self.field_names.iter().position(|f| f == path)
    }
}

/// Whether `name` is a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes, the
/// PostgreSQL limit), so that quoting it is enough to make it safe.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes an identifier (or `schema.table`) double-quoted; the caller has checked it with
/// [`is_identifier`], so it holds no quote.
pub(crate) fn quoted(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// Problems of a resource declaration, reported through [`crate::ValidationErrors`].
pub(crate) fn validate(def: &ResourceDef) -> Vec<String> {
    let mut out = Vec::new();
    let table_ok = !def.table.is_empty()
        && def.table.split('.').count() <= 2
        && def.table.split('.').all(is_identifier);
    if !table_ok {
        out.push(format!(
            "table `{}` is not an SQL identifier (letters, digits and `_`, optionally `schema.table`)",
            def.table
        ));
    }
    if !is_identifier(&def.tenant_column) {
        out.push(format!(
            "tenant column `{}` is not an SQL identifier (letters, digits and `_`)",
            def.tenant_column
        ));
    }
    for (column, ty) in &def.columns {
        if !is_identifier(column) {
            out.push(format!(
                "column `{column}` is not an SQL identifier (letters, digits and `_`)"
            ));
        }
        if ColumnType::parse(ty).is_none() {
            out.push(format!(
                "column `{column}` has the unknown type `{ty}` (use `int`, `float`, `text` or `bool`)"
            ));
        }
    }
    for field in &def.fields {
        if !field.split('.').all(is_identifier) {
            out.push(format!(
                "field `{field}` is not a dotted path of identifiers (`customer.credit_limit`)"
            ));
        }
    }
    out
}
