//! What the macros register at compile time, collected at run time with `inventory`.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::requirement::{Permission, Protection};

/// One handler marked by an attribute macro. Submitted by the generated code; not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct HandlerMeta {
    /// `module_path!()` where the handler is defined.
    pub module_path: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// What the attribute says.
    pub protection: Protection,
    /// The `module = "…"` key of the attribute, if given.
    pub module: Option<&'static str>,
    /// The type id of the leading extractor the attribute added (`Guard<R>` or `Public<R>`):
    /// how a router recognises the handler, whatever its path or generics.
    pub marker: fn() -> TypeId,
}

impl HandlerMeta {
    /// Used by the generated code.
    pub const fn new(
        module_path: &'static str,
        name: &'static str,
        protection: Protection,
        module: Option<&'static str>,
        marker: fn() -> TypeId,
    ) -> HandlerMeta {
        HandlerMeta {
            module_path,
            name,
            protection,
            module,
            marker,
        }
    }

    /// `module::path::name`.
    pub(crate) fn path(&self) -> String {
        format!("{}::{}", self.module_path, self.name)
    }
}

inventory::collect!(HandlerMeta);

/// The permissions of one `permissions!` declaration. Submitted by the generated code; not
/// public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct DeclaredPermissions {
    /// `module_path!()` of the declaration.
    pub module_path: &'static str,
    /// What it declares.
    pub permissions: &'static [Permission],
}

impl DeclaredPermissions {
    /// Used by the generated code.
    pub const fn new(
        module_path: &'static str,
        permissions: &'static [Permission],
    ) -> DeclaredPermissions {
        DeclaredPermissions {
            module_path,
            permissions,
        }
    }
}

inventory::collect!(DeclaredPermissions);

/// The handler whose attribute added an extractor of type id `marker`.
pub(crate) fn handler_by_marker(marker: TypeId) -> Option<&'static HandlerMeta> {
    static INDEX: OnceLock<HashMap<TypeId, &'static HandlerMeta>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            inventory::iter::<HandlerMeta>
                .into_iter()
                .map(|meta| ((meta.marker)(), meta))
                .collect()
        })
        .get(&marker)
        .copied()
}

/// Every permission declared with [`permissions!`](crate::permissions) anywhere in the program,
/// in name order, without duplicates.
pub fn declared_permissions() -> Vec<Permission> {
    let mut all: Vec<Permission> = inventory::iter::<DeclaredPermissions>
        .into_iter()
        .flat_map(|d| d.permissions.iter().copied())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// A handler marked with an attribute macro, as registered at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkedHandler {
    /// `module_path!()` where the handler is defined.
    pub module_path: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// What its attribute says.
    pub protection: Protection,
    /// The `module = "…"` key of its attribute, if given.
    pub module: Option<&'static str>,
}

/// Every handler of the program marked with `#[require_permission]`, `#[require_role]`,
/// `#[require_module]` or `#[public]`, routed or not, ordered by path.
pub fn marked_handlers() -> Vec<MarkedHandler> {
    let mut all: Vec<MarkedHandler> = inventory::iter::<HandlerMeta>
        .into_iter()
        .map(|m| MarkedHandler {
            module_path: m.module_path,
            name: m.name,
            protection: m.protection,
            module: m.module,
        })
        .collect();
    all.sort_by(|a, b| (a.module_path, a.name).cmp(&(b.module_path, b.name)));
    all
}
