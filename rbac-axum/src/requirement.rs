//! What a route requires: a permission, any or all of several, a role, a module; or nothing
//! because it is deliberately public.

use std::fmt;

/// A permission name declared in code with [`permissions!`](crate::permissions).
///
/// Values exist only as the constants that `permissions!` generates after checking each name at
/// compile time, so a function taking a `Permission` cannot be handed a misspelled string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(&'static str);

impl Permission {
    /// Used by the code `permissions!` generates, after it validated `name`. Not public API.
    #[doc(hidden)]
    pub const fn __declared(name: &'static str) -> Permission {
        Permission(name)
    }

    /// The dotted name, such as `finance.accounts.read`.
    pub const fn as_str(&self) -> &'static str {
        self.0
    }

    /// The first segment of the name, such as `finance`.
    pub fn module(&self) -> &'static str {
        first_segment(self.0)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl From<Permission> for &'static str {
    fn from(permission: Permission) -> &'static str {
        permission.0
    }
}

/// What a route requires of the caller, in the tenant the request resolves to.
///
/// Built by the attribute macros at compile time, or by [`require`](crate::require) and its
/// siblings for the middleware form. Every variant is `Copy` and allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Requirement {
    /// One permission.
    Permission(&'static str),
    /// At least one of these permissions. An empty list denies.
    Any(&'static [&'static str]),
    /// Every one of these permissions. An empty list denies.
    All(&'static [&'static str]),
    /// A role the subject holds in the tenant (directly, or as a global role).
    Role(&'static str),
    /// Any permission whose name starts with this module segment (`finance` matches
    /// `finance.accounts.read`).
    Module(&'static str),
}

impl Requirement {
    /// The permissions the requirement names (empty for a role).
    pub fn permissions(&self) -> Vec<&'static str> {
        match *self {
            Requirement::Permission(p) => vec![p],
            Requirement::Any(ps) | Requirement::All(ps) => ps.to_vec(),
            Requirement::Role(_) | Requirement::Module(_) => Vec::new(),
        }
    }

    /// The module the requirement belongs to: the first segment of its first permission, or the
    /// module itself; `None` for a role.
    pub fn module(&self) -> Option<&'static str> {
        match *self {
            Requirement::Permission(p) => Some(first_segment(p)),
            Requirement::Any(ps) | Requirement::All(ps) => ps.first().map(|p| first_segment(p)),
            Requirement::Role(_) => None,
            Requirement::Module(m) => Some(m),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Permission(p) => f.write_str(p),
            Requirement::Any(ps) => write!(f, "any({})", ps.join(", ")),
            Requirement::All(ps) => write!(f, "all({})", ps.join(", ")),
            Requirement::Role(r) => write!(f, "role {r}"),
            Requirement::Module(m) => write!(f, "module {m}"),
        }
    }
}

/// How a handler or a route is marked: it requires something, or it is deliberately public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// The caller must satisfy the requirement.
    Requires(Requirement),
    /// Deliberately open to everyone (`#[public]` or the [`public`](fn@crate::public) layer).
    Public,
}

pub(crate) fn first_segment(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}
