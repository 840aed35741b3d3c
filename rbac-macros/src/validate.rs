//! Every user mistake found before anything is generated, each as a spanned error; all of them
//! are reported together.

use std::collections::{HashMap, HashSet};

use rbac_core::name::{NameError, validate_name, validate_permission};
use syn::{FnArg, ItemFn, LitStr, Path, Safety};

use crate::parse::{Attr, Declared, Key, KeyValue, Kind, PermRef, Spec};

/// Collects errors so that they are reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// A validated attribute: the requirement plus its options.
pub(crate) struct Checked<'a> {
    pub(crate) attr: &'a Attr,
    /// `module = "…"`.
    pub(crate) module: Option<&'a LitStr>,
    /// `registry = path`.
    pub(crate) registry: Option<&'a Path>,
}

/// Checks the attribute and the function together, so that every mistake is reported at once.
pub(crate) fn attribute<'a>(
    kind: Kind,
    attr: syn::Result<&'a Attr>,
    item: syn::Result<&ItemFn>,
) -> syn::Result<Checked<'a>> {
    let mut errors = Errors::default();
    let checked = match attr {
        Ok(attr) => Some(check_attr(attr, &mut errors)),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match item {
        Ok(item) => check_fn(kind, item, &mut errors),
        Err(e) => errors.push(e),
    }
    // `None` only when an attribute error was recorded, so `finish` has returned it already.
    errors
        .finish(checked)?
        .ok_or_else(|| syn::Error::new(proc_macro2::Span::call_site(), "invalid attribute"))
}

fn check_attr<'a>(attr: &'a Attr, errors: &mut Errors) -> Checked<'a> {
    let mut checked = Checked {
        attr,
        module: None,
        registry: None,
    };
    let mut seen: HashSet<String> = HashSet::new();
    for Key { name, value } in &attr.keys {
        let key = name.to_string();
        if !seen.insert(key.clone()) {
            errors.spanned(name, format!("duplicate key `{key}`"));
            continue;
        }
        match (key.as_str(), value) {
            ("module", KeyValue::Lit(lit)) => {
                check_module(lit, errors);
                checked.module = Some(lit);
            }
            ("module", KeyValue::Path(path)) => {
                errors.spanned(path, "`module` takes a string such as `\"finance\"`");
            }
            ("registry", KeyValue::Path(path)) if attr.kind == Kind::Permission => {
                checked.registry = Some(path);
            }
            ("registry", KeyValue::Lit(lit)) if attr.kind == Kind::Permission => {
                errors.spanned(
                    lit,
                    "`registry` takes the path of a module with a `permissions!` declaration, \
                     such as `crate::perms`",
                );
            }
            _ => {
                let expected = if attr.kind == Kind::Permission {
                    "the keys are `module` and `registry`"
                } else {
                    "the only key is `module`"
                };
                errors.spanned(name, format!("unknown key `{key}`; {expected}"));
            }
        }
    }
    match &attr.spec {
        Spec::One(p) => check_perm(p, errors),
        Spec::Group {
            keyword,
            all,
            items,
        } => {
            if items.is_empty() {
                let group = if *all { "all" } else { "any" };
                errors.spanned(
                    keyword,
                    format!("`{group}()` needs at least one permission"),
                );
            }
            let mut names: HashSet<String> = HashSet::new();
            for item in items {
                check_perm(item, errors);
                let text = match item {
                    PermRef::Lit(lit) => lit.value(),
                    PermRef::Path(path) => quote::quote!(#path).to_string(),
                };
                if !names.insert(text.clone()) {
                    errors.spanned(item_tokens(item), "this permission is listed twice");
                }
            }
        }
        Spec::Role(lit) => {
            if let Err(e) = validate_name(&lit.value()) {
                errors.spanned(lit, format!("invalid role name: {e}"));
            }
        }
        Spec::Module(lit) => check_module(lit, errors),
        Spec::Public => {}
    }
    checked
}

fn item_tokens(item: &PermRef) -> proc_macro2::TokenStream {
    match item {
        PermRef::Lit(lit) => quote::quote!(#lit),
        PermRef::Path(path) => quote::quote!(#path),
    }
}

fn check_perm(item: &PermRef, errors: &mut Errors) {
    let PermRef::Lit(lit) = item else {
        // A path is checked by rustc: it must name a `Permission` constant.
        return;
    };
    let name = lit.value();
    if name == "*" || name.ends_with(".*") {
        let module = name.trim_end_matches(".*").trim_end_matches('*');
        let hint = if module.is_empty() || module.contains('.') {
            "name one permission".to_owned()
        } else {
            format!("use `#[require_module(\"{module}\")]` for any permission of the module")
        };
        errors.spanned(
            lit,
            format!("a requirement names one permission, not the wildcard `{name}`; {hint}"),
        );
        return;
    }
    if let Err(e) = validate_permission(&name) {
        errors.spanned(
            lit,
            format!(
                "invalid permission: {}",
                describe(&e, "a requirement names one permission")
            ),
        );
    }
}

fn describe(e: &NameError, rule: &str) -> String {
    match e {
        NameError::MisplacedWildcard(name) => {
            format!("`{name}` has a `*`; {rule}, without wildcards")
        }
        other => other.to_string(),
    }
}

fn check_module(lit: &LitStr, errors: &mut Errors) {
    let name = lit.value();
    if name.contains('.') || validate_permission(&name).is_err() {
        errors.spanned(
            lit,
            format!(
                "invalid module `{name}`: a module is one permission segment of lowercase \
                 letters, digits and `_`, such as `finance`"
            ),
        );
    }
}

const RBAC_ATTRIBUTES: [&str; 4] = [
    "require_permission",
    "require_role",
    "require_module",
    "public",
];

fn check_fn(kind: Kind, item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    let attr = kind.attr();
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            format!("`{attr}` does not apply to a `const fn`"),
        );
    }
    if let Safety::Unsafe(token) = &sig.safety {
        errors.spanned(token, format!("`{attr}` does not apply to an `unsafe fn`"));
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format!("`{attr}` does not apply to an `extern` function"),
        );
    }
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("`{attr}` applies to `async fn` handlers; add `async`"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            format!("`{attr}` does not apply to a variadic function"),
        );
    }
    for other in &item.attrs {
        let name = other.path().segments.last().map(|s| s.ident.to_string());
        if let Some(name) = name.filter(|n| RBAC_ATTRIBUTES.contains(&n.as_str())) {
            errors.spanned(
                other,
                format!(
                    "`{attr}` cannot be combined with `#[{name}]`: a handler has one \
                     requirement; use `all(...)` for several permissions, or a route layer"
                ),
            );
        }
    }
    for input in &sig.inputs {
        if let FnArg::Receiver(receiver) = input {
            errors.spanned(
                receiver,
                format!("`{attr}` applies to free functions; a handler cannot take `self`"),
            );
        }
    }
}

/// The constant a permission becomes in `permissions!`: segments upper-cased, joined by `_`,
/// with `P_` in front when that would not be an identifier (`2fa.reset` → `P_2FA_RESET`;
/// `_` → `P__`). Always an identifier for a valid permission name, so that `Ident::new` never
/// panics on one.
pub(crate) fn const_name(permission: &str) -> String {
    let name = permission.replace('.', "_").to_uppercase();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name == "_" {
        format!("P_{name}")
    } else {
        name
    }
}

/// Checks a `permissions!` declaration: valid names, no duplicates, no two names that become the
/// same constant, none that becomes `ALL`.
pub(crate) fn declarations(declared: &[Declared]) -> syn::Result<()> {
    let mut errors = Errors::default();
    let mut by_const: HashMap<String, &str> = HashMap::new();
    let mut names: HashSet<&str> = HashSet::new();
    for d in declared {
        if let Err(e) = validate_permission(&d.name) {
            let message = describe(&e, "declare each permission by its full name");
            errors.spanned(&d.tokens, format!("invalid permission: {message}"));
            continue;
        }
        if !names.insert(&d.name) {
            errors.spanned(&d.tokens, format!("`{}` is declared twice", d.name));
            continue;
        }
        let constant = const_name(&d.name);
        if constant == "ALL" {
            errors.spanned(
                &d.tokens,
                "`all` would become the constant `ALL`, which lists every permission; \
                 rename the permission",
            );
            continue;
        }
        if let Some(other) = by_const.insert(constant.clone(), &d.name) {
            errors.spanned(
                &d.tokens,
                format!(
                    "`{}` and `{other}` would both become the constant `{constant}`; \
                     rename one of them",
                    d.name
                ),
            );
        }
    }
    errors.finish(())
}

#[cfg(test)]
mod tests {
    use super::const_name;

    #[test]
    fn constants_are_upper_case_segments_joined_by_underscores() {
        assert_eq!(const_name("finance.accounts.read"), "FINANCE_ACCOUNTS_READ");
        assert_eq!(const_name("finance.2fa.reset"), "FINANCE_2FA_RESET");
        assert_eq!(const_name("2fa.reset"), "P_2FA_RESET");
        assert_eq!(const_name("_"), "P__");
        assert_eq!(const_name("_x"), "_X");
        assert_eq!(const_name("crm.lead_source.read"), "CRM_LEAD_SOURCE_READ");
    }
}
