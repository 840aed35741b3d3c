//! Pushing a row filter into a `sqlx::QueryBuilder`: identifiers from the declared resource,
//! quoted; every value a bind parameter.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::RowFilter;
use super::expr::{Expr, List, Rhs, attribute_list, attribute_value};
use crate::resource::{ColumnType, Resource, SubjectAttributes, Value, quoted};

/// The types a database must bind for row filters. Implemented for every sqlx database that
/// binds `i64`, `f64`, `bool` and `String` (SQLite, PostgreSQL, `Any`).
pub trait FilterDatabase: Database {
    /// Pushes one value as a bind parameter.
    fn push_value(qb: &mut QueryBuilder<Self>, value: &Value);
}

impl<DB> FilterDatabase for DB
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    fn push_value(qb: &mut QueryBuilder<DB>, value: &Value) {
        match value {
            Value::Int(i) => qb.push_bind(*i),
            Value::Float(x) => qb.push_bind(*x),
            Value::Bool(b) => qb.push_bind(*b),
            Value::Text(s) => qb.push_bind(s.clone()),
            // Typed values are never null (nulls are unknowns, written as such); a null bind
            // would only ever make a comparison unknown, which is what this writes.
            Value::Null => qb.push("CAST(NULL AS BOOLEAN)"),
        };
    }
}

/// The SQL of an unknown truth value (a comparison with a missing attribute).
const UNKNOWN: &str = "CAST(NULL AS BOOLEAN)";
const TRUE: &str = "1 = 1";
const FALSE: &str = "1 = 0";

pub(super) fn push_filter<DB: FilterDatabase>(filter: &RowFilter<'_>, qb: &mut QueryBuilder<DB>) {
    if filter.rules.is_empty() {
        qb.push("(").push(FALSE).push(")");
        return;
    }
    let resource = &*filter.resource;
    qb.push("(")
        .push(quoted(&resource.tenant_column))
        .push(" = ");
    DB::push_value(qb, &Value::Text(filter.tenant.clone()));
    qb.push(" AND (");
    for (i, rule) in filter.rules.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        push_expr(&rule.expr, resource, filter.attrs, qb);
    }
    qb.push("))");
}

fn column(resource: &Resource, index: usize) -> (&str, ColumnType) {
    resource
        .columns
        .get(index)
        .map_or(("", ColumnType::Text), |(c, t)| (c.as_str(), *t))
}

fn push_expr<DB: FilterDatabase>(
    expr: &Expr,
    resource: &Resource,
    attrs: &SubjectAttributes,
    qb: &mut QueryBuilder<DB>,
) {
    match expr {
        Expr::Const(true) => {
            qb.push(TRUE);
        }
        Expr::Const(false) => {
            qb.push(FALSE);
        }
        Expr::Not(inner) => {
            qb.push("NOT (");
            push_expr(inner, resource, attrs, qb);
            qb.push(")");
        }
        Expr::And(items) | Expr::Or(items) => {
            let (joiner, empty) = if matches!(expr, Expr::And(_)) {
                (" AND ", TRUE)
            } else {
                (" OR ", FALSE)
            };
            if items.is_empty() {
                qb.push(empty);
                return;
            }
            qb.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_expr(item, resource, attrs, qb);
            }
            qb.push(")");
        }
        Expr::Cmp {
            column: index,
            op,
            rhs,
        } => {
            let (name, ty) = column(resource, *index);
            let value = match rhs {
                Rhs::Value(v) => Some(v.clone()),
                Rhs::Attribute(a) => attribute_value(attrs, a, ty),
            };
            match value {
                Some(value) if value != Value::Null => {
                    qb.push("(")
                        .push(quoted(name))
                        .push(" ")
                        .push(op.sql())
                        .push(" ");
                    DB::push_value(qb, &value);
                    qb.push(")");
                }
                _ => {
                    qb.push(UNKNOWN);
                }
            }
        }
        Expr::In {
            column: index,
            list,
        } => {
            let (name, ty) = column(resource, *index);
            let items = match list {
                List::Values(v) => Some(v.clone()),
                List::Attribute(a) => attribute_list(attrs, a, ty),
            };
            match items {
                None => {
                    qb.push(UNKNOWN);
                }
                Some(items) if items.is_empty() => {
                    qb.push(FALSE);
                }
                Some(items) => {
                    qb.push("(").push(quoted(name)).push(" IN (");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            qb.push(", ");
                        }
                        DB::push_value(qb, item);
                    }
                    qb.push("))");
                }
            }
        }
        Expr::IsNull {
            column: index,
            negated,
        } => {
            let (name, _) = column(resource, *index);
            qb.push("(").push(quoted(name)).push(if *negated {
                " IS NOT NULL)"
            } else {
                " IS NULL)"
            });
        }
    }
}
