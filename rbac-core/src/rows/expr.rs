//! The typed form of a filter, checked against its resource at policy load, and its
//! evaluation on one row with SQL's three-valued logic.

use super::FilterError;
use super::parse::{Ast, CmpOp, ListOperand, Literal, Operand};
use crate::resource::{Attribute, ColumnType, Resource, SubjectAttributes, Value};

/// A truth value of SQL's three-valued logic: a comparison with `NULL` (or with a missing
/// subject attribute) is `Unknown`, and a row is admitted only when its filter is `True`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Admits the row.
    True,
    /// Rejects the row.
    False,
    /// Rejects the row; `not` keeps it unknown.
    Unknown,
}

impl Truth {
    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }

    pub(crate) fn from_bool(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }

    /// Whether it admits the row.
    pub fn is_true(self) -> bool {
        self == Truth::True
    }
}

/// The right-hand side of a typed comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rhs {
    /// A literal, already of the column's type.
    Value(Value),
    /// `subject.NAME`; `id` is the subject's id.
    Attribute(String),
}

/// The list of a typed `in`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum List {
    Values(Vec<Value>),
    Attribute(String),
}

/// A filter checked against its resource; columns are indexes into the resource's columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Const(bool),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cmp { column: usize, op: CmpOp, rhs: Rhs },
    In { column: usize, list: List },
    IsNull { column: usize, negated: bool },
}

fn literal_value(literal: &Literal, column: &str, ty: ColumnType) -> Result<Value, FilterError> {
    let value = match literal {
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(x) => Value::Float(*x),
        Literal::Text(s) => Value::Text(s.clone()),
        Literal::Bool(b) => Value::Bool(*b),
    };
    value.coerce(ty).ok_or_else(|| FilterError::TypeMismatch {
        column: column.to_owned(),
        column_type: ty,
        found: value.to_string(),
    })
}

fn column(resource: &Resource, name: &str) -> Result<(usize, ColumnType), FilterError> {
    match resource.column_index.get(name) {
        Some(&i) => Ok((i, resource.columns.get(i).map_or(ColumnType::Text, |c| c.1))),
        None => Err(FilterError::UnknownColumn {
            column: name.to_owned(),
            resource: resource.name.clone(),
            suggestion: crate::name::suggest(
                name,
                resource.column_index.keys().map(String::as_str),
            )
            .map(str::to_owned),
        }),
    }
}

/// `subject.id` is text: comparing it with a column of another type can never hold.
fn check_attribute(name: &str, column: &str, ty: ColumnType) -> Result<(), FilterError> {
    if name == "id" && ty != ColumnType::Text {
        return Err(FilterError::TypeMismatch {
            column: column.to_owned(),
            column_type: ty,
            found: "subject.id (text)".to_owned(),
        });
    }
    Ok(())
}

/// Type-checks a syntax tree against `resource`, collecting every problem.
pub(crate) fn check(ast: &Ast, resource: &Resource, errors: &mut Vec<FilterError>) -> Expr {
    match ast {
        Ast::Const(b) => Expr::Const(*b),
        Ast::Not(inner) => Expr::Not(Box::new(check(inner, resource, errors))),
        Ast::And(items) => Expr::And(items.iter().map(|a| check(a, resource, errors)).collect()),
        Ast::Or(items) => Expr::Or(items.iter().map(|a| check(a, resource, errors)).collect()),
        Ast::Cmp {
            column: name,
            op,
            rhs,
        } => {
            let (index, ty) = match column(resource, name) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    return Expr::Const(false);
                }
            };
            if op.is_ordering() && !ty.is_ordered() {
                errors.push(FilterError::BadOperator {
                    column: name.clone(),
                    column_type: ty,
                    op: op.sql(),
                });
            }
            let rhs = match rhs {
                Operand::Literal(l) => match literal_value(l, name, ty) {
                    Ok(v) => Rhs::Value(v),
                    Err(e) => {
                        errors.push(e);
                        Rhs::Value(Value::Null)
                    }
                },
                Operand::Attribute(a) => {
                    if let Err(e) = check_attribute(a, name, ty) {
                        errors.push(e);
                    }
                    Rhs::Attribute(a.clone())
                }
            };
            Expr::Cmp {
                column: index,
                op: *op,
                rhs,
            }
        }
        Ast::In { column: name, list } => {
            let (index, ty) = match column(resource, name) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    return Expr::Const(false);
                }
            };
            let list = match list {
                ListOperand::Literals(items) => List::Values(
                    items
                        .iter()
                        .filter_map(|l| match literal_value(l, name, ty) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                errors.push(e);
                                None
                            }
                        })
                        .collect(),
                ),
                ListOperand::Attribute(a) => {
                    if a == "id" {
                        errors.push(FilterError::Syntax {
                            at: 0,
                            message: format!(
                                "`{name} in subject.id`: subject.id is one value; write `{name} = subject.id`"
                            ),
                        });
                    }
                    List::Attribute(a.clone())
                }
            };
            Expr::In {
                column: index,
                list,
            }
        }
        Ast::IsNull {
            column: name,
            negated,
        } => match column(resource, name) {
            Ok((index, _)) => Expr::IsNull {
                column: index,
                negated: *negated,
            },
            Err(e) => {
                errors.push(e);
                Expr::Const(false)
            }
        },
    }
}

/// A subject attribute as one value of the column's type; `None` when missing, a list, or of
/// another type.
pub(crate) fn attribute_value(
    attrs: &SubjectAttributes,
    name: &str,
    ty: ColumnType,
) -> Option<Value> {
    if name == "id" {
        return (ty == ColumnType::Text).then(|| Value::Text(attrs.id().to_owned()));
    }
    match attrs.get_ref(name)? {
        Attribute::One(v) => comparable(v.coerce(ty)?),
        Attribute::List(_) => None,
    }
}

/// `value`, unless it compares with nothing: a null, or a float NaN. A NaN is missing, not a
/// value: compared in memory it is unknown (deny), but PostgreSQL sorts it above every number,
/// so that `amount <= NaN` would admit every row.
fn comparable(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Float(f) if f.is_nan() => None,
        v => Some(v),
    }
}

/// A list attribute as values of the column's type; `None` when missing, a single value, or
/// holding an element of another type (or a null, or a NaN).
pub(crate) fn attribute_list(
    attrs: &SubjectAttributes,
    name: &str,
    ty: ColumnType,
) -> Option<Vec<Value>> {
    match attrs.get_ref(name)? {
        Attribute::List(items) => items.iter().map(|v| comparable(v.coerce(ty)?)).collect(),
        Attribute::One(_) => None,
    }
}

/// Compares two non-null values of one column type.
fn compare(left: &Value, op: CmpOp, right: &Value) -> Truth {
    use std::cmp::Ordering;
    let ordering = match (left, right) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
        (Value::Text(a), Value::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let Some(o) = ordering else {
        return Truth::Unknown;
    };
    Truth::from_bool(match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    })
}

/// Evaluates `expr` on a row whose column `i` is `row(i)` (already of the column's type, or
/// `Null`; a value of another type counts as unknown).
pub(crate) fn eval(
    expr: &Expr,
    resource: &Resource,
    attrs: &SubjectAttributes,
    row: &dyn Fn(usize) -> Value,
) -> Truth {
    let ty = |c: usize| resource.columns.get(c).map_or(ColumnType::Text, |c| c.1);
    let cell = |c: usize| row(c).coerce(ty(c));
    match expr {
        Expr::Const(b) => Truth::from_bool(*b),
        Expr::Not(inner) => eval(inner, resource, attrs, row).not(),
        Expr::And(items) => {
            let mut out = Truth::True;
            for item in items {
                match eval(item, resource, attrs, row) {
                    Truth::False => return Truth::False,
                    Truth::Unknown => out = Truth::Unknown,
                    Truth::True => {}
                }
            }
            out
        }
        Expr::Or(items) => {
            let mut out = Truth::False;
            for item in items {
                match eval(item, resource, attrs, row) {
                    Truth::True => return Truth::True,
                    Truth::Unknown => out = Truth::Unknown,
                    Truth::False => {}
                }
            }
            out
        }
        Expr::Cmp { column, op, rhs } => {
            let right = match rhs {
                Rhs::Value(v) => Some(v.clone()),
                Rhs::Attribute(a) => attribute_value(attrs, a, ty(*column)),
            };
            match (cell(*column), right) {
                (Some(Value::Null) | None, _) | (_, None | Some(Value::Null)) => Truth::Unknown,
                (Some(left), Some(right)) => compare(&left, *op, &right),
            }
        }
        Expr::In { column, list } => {
            let items = match list {
                List::Values(v) => Some(v.clone()),
                List::Attribute(a) => attribute_list(attrs, a, ty(*column)),
            };
            let Some(items) = items else {
                return Truth::Unknown;
            };
            if items.is_empty() {
                // `x in ()` is false even for a null x.
                return Truth::False;
            }
            match cell(*column) {
                Some(Value::Null) | None => Truth::Unknown,
                Some(left) => {
                    let mut out = Truth::False;
                    for item in &items {
                        match compare(&left, CmpOp::Eq, item) {
                            Truth::True => return Truth::True,
                            Truth::Unknown => out = Truth::Unknown,
                            Truth::False => {}
                        }
                    }
                    out
                }
            }
        }
        Expr::IsNull { column, negated } => {
            let is_null = matches!(row(*column), Value::Null);
            Truth::from_bool(is_null != *negated)
        }
    }
}
