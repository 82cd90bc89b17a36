//! Parsing and validation of `#[plugin(...)]`: every misuse becomes a `syn::Error` spanned
//! on the offending tokens, and all of them are reported together.

use std::path::PathBuf;

use proc_macro2::Span;
use syn::{Data, DeriveInput, Expr, ExprLit, Ident, Lit, LitStr, Meta, Type};

/// Names the framework keeps for its own routes under `/`.
const RESERVED_NAMES: &[&str] = &[
    "manage",
    "metrics",
    "healthz",
    "readyz",
    "openapi.json",
    "static",
];

/// The keys `#[plugin(...)]` accepts, in the order the docs list them.
const KEYS: &[&str] = &["name", "api", "ui", "config"];

/// A validated `#[derive(Plugin)]` input.
pub(crate) struct PluginInput {
    pub(crate) ident: Ident,
    pub(crate) name: String,
    pub(crate) api: Type,
    pub(crate) ui: Option<LitStr>,
    pub(crate) config: Option<Type>,
    pub(crate) description: String,
}

impl PluginInput {
    pub(crate) fn from_derive(input: &DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();

        match &input.data {
            Data::Struct(_) => {}
            Data::Enum(data) => errors.push(syn::Error::new(
                data.enum_token.span,
                "a plugin must be a struct, not an enum",
            )),
            Data::Union(data) => errors.push(syn::Error::new(
                data.union_token.span,
                "a plugin must be a struct, not a union",
            )),
        }
        if !input.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &input.generics,
                "a plugin cannot be generic: the registry needs one concrete type",
            ));
        }

        let Some(keys) = parse_keys(input, &mut errors) else {
            errors.finish()?;
            return Err(syn::Error::new_spanned(
                &input.ident,
                "missing #[plugin(...)] attribute",
            ));
        };
        let description = doc_comment(input);

        let name = match keys.name {
            Some(literal) => check_name(&literal, &mut errors).then(|| literal.value()),
            None => {
                errors.push(missing_key(input, "name", "name = \"my-plugin\""));
                None
            }
        };
        if keys.api.is_none() {
            errors.push(missing_key(input, "api", "api = MyApi"));
        }
        if let Some(ui) = &keys.ui {
            check_ui_folder(ui, &mut errors);
        }

        errors.finish()?;
        let (Some(name), Some(api)) = (name, keys.api) else {
            // Both were reported above; this keeps the function total without a panic.
            return Err(syn::Error::new_spanned(
                &input.ident,
                "invalid #[plugin(...)]",
            ));
        };
        Ok(PluginInput {
            ident: input.ident.clone(),
            name,
            api,
            ui: keys.ui,
            config: keys.config,
            description,
        })
    }
}

/// The raw values of `#[plugin(...)]`, before the cross-key checks.
#[derive(Default)]
struct Keys {
    name: Option<LitStr>,
    api: Option<Type>,
    ui: Option<LitStr>,
    config: Option<Type>,
}

/// Reads every `#[plugin(...)]` attribute; `None` (with the error pushed) when there is none.
fn parse_keys(input: &DeriveInput, errors: &mut Errors) -> Option<Keys> {
    let mut keys = Keys::default();
    let mut seen_attribute = false;

    for attribute in input.attrs.iter().filter(|a| a.path().is_ident("plugin")) {
        seen_attribute = true;
        let result = attribute.parse_nested_meta(|meta| {
            let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
                return Err(meta.error(unknown_key_message("this path")));
            };
            let repeated = || meta.error(format!("`{key}` is given more than once"));
            match key.as_str() {
                "name" => set_once(&mut keys.name, meta.value()?.parse()?, repeated),
                "api" => set_once(&mut keys.api, meta.value()?.parse()?, repeated),
                "ui" => set_once(&mut keys.ui, meta.value()?.parse()?, repeated),
                "config" => set_once(&mut keys.config, meta.value()?.parse()?, repeated),
                other => Err(meta.error(unknown_key_message(&format!("`{other}`")))),
            }
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }

    if !seen_attribute {
        errors.push(syn::Error::new_spanned(
            &input.ident,
            "missing #[plugin(name = \"...\", api = ...)] attribute",
        ));
        return None;
    }
    Some(keys)
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    repeated: impl FnOnce() -> syn::Error,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(repeated());
    }
    *slot = Some(value);
    Ok(())
}

fn unknown_key_message(what: &str) -> String {
    format!(
        "unknown key {what} in #[plugin(...)]; expected one of: {}",
        KEYS.join(", ")
    )
}

fn missing_key(input: &DeriveInput, key: &str, example: &str) -> syn::Error {
    let span = input
        .attrs
        .iter()
        .find(|a| a.path().is_ident("plugin"))
        .map_or_else(
            || input.ident.span(),
            |a| a.path().get_ident().map_or(Span::call_site(), Ident::span),
        );
    syn::Error::new(
        span,
        format!("missing key `{key}` in #[plugin(...)], e.g. `{example}`"),
    )
}

/// Checks the plugin name: `[a-z][a-z0-9-]{0,62}` and not one of the reserved names.
/// Reports on `literal` and returns whether the name is good.
fn check_name(literal: &LitStr, errors: &mut Errors) -> bool {
    let name = literal.value();

    if RESERVED_NAMES.contains(&name.as_str()) {
        errors.push(syn::Error::new_spanned(
            literal,
            format!(
                "plugin name `{name}` is reserved by the framework ({})",
                RESERVED_NAMES.join(", ")
            ),
        ));
        return false;
    }

    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_is_good = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_well || !rest_is_good || name.len() > 63 {
        errors.push(syn::Error::new_spanned(
            literal,
            format!(
                "plugin name `{name}` is not valid: it must start with a lowercase letter, \
                 continue with lowercase letters, digits or `-`, and be at most 63 characters"
            ),
        ));
        return false;
    }
    true
}

/// The `ui` folder is resolved against the crate being compiled and must exist now, so
/// that a typo is a compile error rather than an empty UI at run time.
fn check_ui_folder(ui: &LitStr, errors: &mut Errors) {
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        errors.push(syn::Error::new_spanned(
            ui,
            "`ui` needs CARGO_MANIFEST_DIR; build with cargo",
        ));
        return;
    };
    let folder = PathBuf::from(manifest_dir).join(ui.value());
    if !folder.is_dir() {
        errors.push(syn::Error::new_spanned(
            ui,
            format!(
                "ui folder `{}` does not exist next to this crate's Cargo.toml",
                ui.value()
            ),
        ));
    }
}

/// The doc comment of the struct, with each line trimmed, becomes the description.
fn doc_comment(input: &DeriveInput) -> String {
    let lines: Vec<String> = input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// Collects every error so that one build reports all mistakes at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
