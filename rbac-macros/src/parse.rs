//! Tokens to a typed AST that keeps the original syn nodes for spans. Nothing is judged here
//! beyond syntax; see `validate.rs`.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, ItemFn, LitStr, Path, Token, parenthesized};

/// Which attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Permission,
    Role,
    Module,
    Public,
}

impl Kind {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Kind::Permission => "#[require_permission]",
            Kind::Role => "#[require_role]",
            Kind::Module => "#[require_module]",
            Kind::Public => "#[public]",
        }
    }
}

/// One permission as written: a string literal or a path to a `Permission` constant.
pub(crate) enum PermRef {
    Lit(LitStr),
    Path(Path),
}

/// What the attribute requires.
pub(crate) enum Spec {
    One(PermRef),
    /// `any(...)` or `all(...)`, with the keyword for spans.
    Group {
        keyword: Ident,
        all: bool,
        items: Vec<PermRef>,
    },
    Role(LitStr),
    Module(LitStr),
    Public,
}

/// The value of a `key = value` argument.
pub(crate) enum KeyValue {
    Lit(LitStr),
    Path(Path),
}

/// A `key = value` argument.
pub(crate) struct Key {
    pub(crate) name: Ident,
    pub(crate) value: KeyValue,
}

/// A parsed attribute.
pub(crate) struct Attr {
    pub(crate) kind: Kind,
    pub(crate) spec: Spec,
    pub(crate) keys: Vec<Key>,
}

pub(crate) fn attribute(kind: Kind, tokens: TokenStream) -> syn::Result<Attr> {
    let parser = move |input: ParseStream<'_>| parse_attribute(kind, input);
    parser.parse2(tokens)
}

fn parse_attribute(kind: Kind, input: ParseStream<'_>) -> syn::Result<Attr> {
    let spec = match kind {
        Kind::Public => Spec::Public,
        _ if input.is_empty() || starts_key(input) => {
            return Err(syn::Error::new(Span::call_site(), missing(kind)));
        }
        Kind::Permission => permission_spec(input)?,
        Kind::Role => Spec::Role(string(input, "a role name such as `\"admin\"`")?),
        Kind::Module => Spec::Module(string(input, "a module name such as `\"finance\"`")?),
    };
    let mut keys = Vec::new();
    let mut needs_comma = kind != Kind::Public;
    while !input.is_empty() {
        if needs_comma {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
        }
        needs_comma = true;
        keys.push(key(input)?);
    }
    Ok(Attr { kind, spec, keys })
}

fn missing(kind: Kind) -> String {
    match kind {
        Kind::Permission => "`#[require_permission]` needs a permission: \
            `#[require_permission(\"finance.accounts.read\")]`, a permission constant, \
            `any(...)` or `all(...)`"
            .to_owned(),
        Kind::Role => "`#[require_role]` needs a role: `#[require_role(\"admin\")]`".to_owned(),
        Kind::Module => {
            "`#[require_module]` needs a module: `#[require_module(\"finance\")]`".to_owned()
        }
        Kind::Public => String::new(),
    }
}

fn starts_key(input: ParseStream<'_>) -> bool {
    input.peek(Ident::peek_any) && input.peek2(Token![=]) && !input.peek2(Token![==])
}

fn string(input: ParseStream<'_>, what: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        return input.parse();
    }
    let message = format!("expected {what}");
    match input.parse::<proc_macro2::TokenTree>() {
        Ok(token) => Err(syn::Error::new_spanned(token, message)),
        Err(_) => Err(input.error(message)),
    }
}

fn permission_spec(input: ParseStream<'_>) -> syn::Result<Spec> {
    if input.peek(Ident) && input.peek2(syn::token::Paren) {
        let keyword: Ident = input.parse()?;
        let all = match keyword.to_string().as_str() {
            "any" => false,
            "all" => true,
            _ => {
                return Err(syn::Error::new_spanned(
                    &keyword,
                    format!("unknown group `{keyword}(...)`; use `any(...)` or `all(...)`"),
                ));
            }
        };
        let content;
        parenthesized!(content in input);
        let items = Punctuated::<PermRef, Token![,]>::parse_terminated_with(&content, perm_ref)?;
        return Ok(Spec::Group {
            keyword,
            all,
            items: items.into_iter().collect(),
        });
    }
    perm_ref(input).map(Spec::One)
}

fn perm_ref(input: ParseStream<'_>) -> syn::Result<PermRef> {
    if input.peek(LitStr) {
        return input.parse().map(PermRef::Lit);
    }
    if input.peek(Ident::peek_any) || input.peek(Token![::]) {
        return Path::parse_mod_style(input).map(PermRef::Path);
    }
    let message = "expected a permission name such as `\"finance.accounts.read\"` \
        or a path to a permission constant such as `perms::FINANCE_ACCOUNTS_READ`";
    match input.parse::<proc_macro2::TokenTree>() {
        Ok(token) => Err(syn::Error::new_spanned(token, message)),
        Err(_) => Err(input.error(message)),
    }
}

fn key(input: ParseStream<'_>) -> syn::Result<Key> {
    let name = Ident::parse_any(input)?;
    input.parse::<Token![=]>()?;
    let value = if input.peek(LitStr) {
        KeyValue::Lit(input.parse()?)
    } else {
        KeyValue::Path(Path::parse_mod_style(input)?)
    };
    Ok(Key { name, value })
}

/// The item under the attribute: a function, or an error naming what it is instead.
pub(crate) fn handler(kind: Kind, tokens: TokenStream) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(tokens.clone()).map_err(|_| {
        let message = format!("`{}` applies to `async fn` handlers", kind.attr());
        match syn::parse2::<syn::Item>(tokens.clone()) {
            Ok(item) => syn::Error::new_spanned(item_head(&item), message),
            Err(_) => syn::Error::new_spanned(tokens, message),
        }
    })
}

/// The tokens to point at for an item that is not a function: its keyword and name.
fn item_head(item: &syn::Item) -> TokenStream {
    use quote::ToTokens;
    let mut out = TokenStream::new();
    match item {
        syn::Item::Struct(s) => {
            s.struct_token.to_tokens(&mut out);
            s.ident.to_tokens(&mut out);
        }
        syn::Item::Enum(e) => {
            e.enum_token.to_tokens(&mut out);
            e.ident.to_tokens(&mut out);
        }
        syn::Item::Const(c) => {
            c.const_token.to_tokens(&mut out);
            c.ident.to_tokens(&mut out);
        }
        syn::Item::Static(s) => {
            s.static_token.to_tokens(&mut out);
            s.ident.to_tokens(&mut out);
        }
        syn::Item::Mod(m) => {
            m.mod_token.to_tokens(&mut out);
            m.ident.to_tokens(&mut out);
        }
        syn::Item::Trait(t) => {
            t.trait_token.to_tokens(&mut out);
            t.ident.to_tokens(&mut out);
        }
        syn::Item::Type(t) => {
            t.type_token.to_tokens(&mut out);
            t.ident.to_tokens(&mut out);
        }
        syn::Item::Impl(i) => i.impl_token.to_tokens(&mut out),
        other => other.to_tokens(&mut out),
    }
    out
}

/// One entry of `permissions! { ... }`: dotted identifiers or a string literal.
pub(crate) struct Declared {
    pub(crate) name: String,
    /// The entry's tokens, for errors.
    pub(crate) tokens: TokenStream,
    /// Where the generated constant points.
    pub(crate) span: Span,
}

pub(crate) fn declarations(tokens: TokenStream) -> syn::Result<Vec<Declared>> {
    let parser = |input: ParseStream<'_>| {
        let mut out = Vec::new();
        while !input.is_empty() {
            out.push(declared(input)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(out)
    };
    parser.parse2(tokens)
}

fn declared(input: ParseStream<'_>) -> syn::Result<Declared> {
    use quote::ToTokens;
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return Ok(Declared {
            name: lit.value(),
            span: lit.span(),
            tokens: lit.to_token_stream(),
        });
    }
    let first = Ident::parse_any(input).map_err(|_| {
        input.error(
            "expected a permission such as `finance.accounts.read` or `\"finance.2fa.reset\"`",
        )
    })?;
    let span = first.span();
    let mut name = first.unraw().to_string();
    let mut tokens = first.to_token_stream();
    while input.peek(Token![.]) {
        let dot: Token![.] = input.parse()?;
        let segment = Ident::parse_any(input)?;
        name.push('.');
        name.push_str(&segment.unraw().to_string());
        dot.to_tokens(&mut tokens);
        segment.to_tokens(&mut tokens);
    }
    Ok(Declared { name, tokens, span })
}
