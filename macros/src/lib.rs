//! `#[derive(Plugin)]`: registers a kneedeep plugin in the framework's link-time registry.
//!
//! This file is only the entry point; parsing and validation live in `parse.rs`, code
//! generation in `expand.rs`. The generated code reaches the framework through its hidden
//! `kneedeep::__private` module, so a plugin crate needs no dependency but `kneedeep`.

mod expand;
mod parse;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Registers a plugin. See the `kneedeep` crate documentation for the keys.
///
/// ```text
/// /// Says hello.
/// #[derive(Plugin)]
/// #[plugin(name = "hello", api = HelloApi, ui = "ui")]
/// pub struct Hello;
/// ```
#[proc_macro_derive(Plugin, attributes(plugin))]
pub fn derive_plugin(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);

    match parse::PluginInput::from_derive(&input) {
        Ok(plugin) => expand::expand(&plugin).into(),
        Err(error) => error.into_compile_error().into(),
    }
}
