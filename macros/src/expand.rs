//! Code generation for `#[derive(Plugin)]`: one static descriptor in the link-time registry,
//! plus the small functions it points at. Everything generic lives in the framework; this
//! only names the plugin's own types.

use proc_macro2::TokenStream;
use quote::quote;

use crate::parse::PluginInput;

pub(crate) fn expand(plugin: &PluginInput) -> TokenStream {
    let PluginInput {
        ident,
        name,
        api,
        ui,
        config,
        description,
    } = plugin;
    let private = quote!(::kneedeep::__private);

    let config_type = match config {
        Some(config) => quote!(#config),
        None => quote!(#private::NoConfig),
    };

    let (ui_struct, ui_value) = match ui {
        Some(folder) => (
            quote! {
                #[derive(#private::RustEmbed)]
                #[folder = #folder]
                #[crate_path = "::kneedeep::__private::rust_embed"]
                struct __KneedeepUi;
            },
            quote!(::core::option::Option::Some(#private::UiFiles::of::<__KneedeepUi>())),
        ),
        None => (quote!(), quote!(::core::option::Option::None)),
    };

    quote! {
        const _: () = {
            #ui_struct

            #[#private::linkme::distributed_slice(#private::PLUGINS)]
            #[linkme(crate = #private::linkme)]
            static __KNEEDEEP_PLUGIN: #private::PluginDescriptor = #private::PluginDescriptor {
                name: #name,
                version: ::core::env!("CARGO_PKG_VERSION"),
                description: #description,
                module_path: ::core::module_path!(),
                ui: #ui_value,
                parse_config: #private::parse_config::<#config_type>,
                mount: __kneedeep_mount,
                on_load: __kneedeep_on_load,
                on_unload: __kneedeep_on_unload,
            };

            fn __kneedeep_mount(
                context: &::kneedeep::PluginContext,
            ) -> ::core::result::Result<#private::MountedApi, ::kneedeep::BoxError> {
                use #private::{ApiFromContext as _, ApiFromDefault as _};
                let api = (&&#private::Probe::<#api>::new()).construct(context)?;
                ::core::result::Result::Ok(#private::mount(api, context))
            }

            fn __kneedeep_on_load(context: ::kneedeep::PluginContext) -> #private::HookFuture {
                use #private::{HooksFromLifecycle as _, NoHooks as _};
                (&&#private::Probe::<#ident>::new()).on_load(context)
            }

            fn __kneedeep_on_unload(context: ::kneedeep::PluginContext) -> #private::HookFuture {
                use #private::{HooksFromLifecycle as _, NoHooks as _};
                (&&#private::Probe::<#ident>::new()).on_unload(context)
            }
        };
    }
}
