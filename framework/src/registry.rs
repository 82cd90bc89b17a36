//! The link-time registry: every `#[derive(Plugin)]` adds one descriptor to a linkme
//! distributed slice, so nothing runs before `main`. Startup checks the registry against
//! the list of crates the binary was built to link.

use std::collections::BTreeMap;

use linkme::distributed_slice;

use crate::plugin::PluginDescriptor;

/// Every plugin linked into this binary, in link order.
#[doc(hidden)]
#[distributed_slice]
pub static PLUGINS: [PluginDescriptor];

/// Why the registry cannot be served as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two linked plugins claim the same name.
    #[error("plugin name '{name}' is registered twice: by `{first}` and by `{second}`")]
    DuplicateName {
        /// The name both claim.
        name: String,
        /// The module that registered it first.
        first: String,
        /// The module that registered it second.
        second: String,
    },
    /// The binary was built to link a crate that registered no plugin.
    #[error(
        "crate `{crate_name}` was built into this binary but registered no plugin \
         (the linker dropped it, or it lacks #[derive(Plugin)])"
    )]
    Missing {
        /// The crate named by the build but absent from the registry.
        crate_name: String,
    },
    /// A plugin is registered by a crate the build did not name.
    #[error("plugin '{name}' from crate `{crate_name}` is linked but was not named by the build")]
    Unexpected {
        /// The plugin's name.
        name: String,
        /// The crate it came from.
        crate_name: String,
    },
}

/// Checks that plugin names are unique and that the registered plugins come from exactly
/// the `expected_crates`. Returns the plugins sorted by name.
pub(crate) fn verify(
    registered: &'static [PluginDescriptor],
    expected_crates: &[&str],
) -> Result<Vec<&'static PluginDescriptor>, Vec<RegistryError>> {
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<&str, &'static PluginDescriptor> = BTreeMap::new();

    for descriptor in registered {
        if let Some(first) = by_name.insert(descriptor.name, descriptor) {
            errors.push(RegistryError::DuplicateName {
                name: descriptor.name.to_owned(),
                first: first.module_path.to_owned(),
                second: descriptor.module_path.to_owned(),
            });
        }
        if !expected_crates.contains(&descriptor.crate_name()) {
            errors.push(RegistryError::Unexpected {
                name: descriptor.name.to_owned(),
                crate_name: descriptor.crate_name().to_owned(),
            });
        }
    }

    for crate_name in expected_crates {
        if !registered.iter().any(|d| d.crate_name() == *crate_name) {
            errors.push(RegistryError::Missing {
                crate_name: (*crate_name).to_owned(),
            });
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(by_name.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NoConfig, parse_config};
    use crate::context::PluginContext;
    use crate::plugin::{BoxError, HookFuture, MountedApi};

    fn no_api(_: &PluginContext) -> Result<MountedApi, BoxError> {
        Err("not built in this test".into())
    }

    fn no_hook(_: PluginContext) -> HookFuture {
        Box::pin(async { Ok(()) })
    }

    const fn descriptor(name: &'static str, module_path: &'static str) -> PluginDescriptor {
        PluginDescriptor {
            name,
            version: "1.0.0",
            description: "",
            module_path,
            ui: None,
            parse_config: parse_config::<NoConfig>,
            mount: no_api,
            on_load: no_hook,
            on_unload: no_hook,
        }
    }

    static TWO_DISTINCT: [PluginDescriptor; 2] = [
        descriptor("notes", "notes_crate"),
        descriptor("files", "files_crate::plugin"),
    ];
    static SAME_NAME: [PluginDescriptor; 2] = [
        descriptor("notes", "notes_crate"),
        descriptor("notes", "other_notes"),
    ];

    #[test]
    fn distinct_plugins_of_the_named_crates_are_returned_by_name() {
        let plugins = verify(&TWO_DISTINCT, &["notes_crate", "files_crate"]).unwrap();
        let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
        assert_eq!(names, ["files", "notes"]);
    }

    #[test]
    fn two_plugins_with_the_same_name_are_an_error_naming_both() {
        let errors = verify(&SAME_NAME, &["notes_crate", "other_notes"]).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["plugin name 'notes' is registered twice: by `notes_crate` and by `other_notes`"]
        );
    }

    #[test]
    fn a_crate_the_linker_dropped_is_an_error() {
        let errors = verify(&TWO_DISTINCT, &["notes_crate", "files_crate", "weather"]).unwrap_err();
        assert_eq!(
            errors,
            [RegistryError::Missing {
                crate_name: "weather".into()
            }]
        );
    }

    #[test]
    fn a_plugin_the_build_did_not_name_is_an_error() {
        let errors = verify(&TWO_DISTINCT, &["notes_crate"]).unwrap_err();
        assert_eq!(
            errors,
            [RegistryError::Unexpected {
                name: "files".into(),
                crate_name: "files_crate".into()
            }]
        );
    }
}
