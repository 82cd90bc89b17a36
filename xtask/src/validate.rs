//! Checks an unpacked plugin crate before it is built: one package with the derive, no
//! dependency that escapes the build (`[patch]`, path or git), and a framework
//! requirement that this build meets. Also finds the plugin names it declares.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use toml::{Table, Value};

/// A plugin crate that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginCrate {
    /// The crate's root folder.
    pub(crate) root: PathBuf,
    /// `[package] name`.
    pub(crate) package: String,
    /// `[package] version`.
    pub(crate) version: String,
    /// The library's name as Rust code spells it (`extern crate` name).
    pub(crate) lib_name: String,
    /// The names given to `#[plugin(name = ...)]` in its sources.
    pub(crate) plugin_names: Vec<String>,
}

/// Whether the crate is a folder of this repository, which may reach the framework by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// A crate folder of the plugins folder: its `kneedeep` path dependency is allowed.
    InTree,
    /// An archive from anywhere: no path dependency at all.
    Archive,
}

/// The dependency tables a manifest may have, at its top level or under `[target.*]`.
const DEPENDENCY_TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

/// Checks the crate at `root`; `label` names its source in every message.
pub(crate) fn validate(
    root: &Path,
    label: &str,
    trust: Trust,
    framework: &semver::Version,
) -> anyhow::Result<PluginCrate> {
    let manifest_path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("plugin {label}: cannot read its Cargo.toml"))?;
    let manifest: Table = text
        .parse()
        .with_context(|| format!("plugin {label}: its Cargo.toml is not valid TOML"))?;

    let Some(package) = manifest.get("package").and_then(Value::as_table) else {
        bail!("plugin {label}: its Cargo.toml has no [package]; a plugin is one crate");
    };
    if manifest.contains_key("workspace") && has_members(&manifest) {
        bail!("plugin {label}: its Cargo.toml is a workspace; a plugin is one crate");
    }
    for refused in ["patch", "replace"] {
        if manifest.contains_key(refused) {
            bail!(
                "plugin {label}: its Cargo.toml has a [{refused}] section, which a plugin may not carry"
            );
        }
    }

    let package_name = string_field(package, "name")
        .with_context(|| format!("plugin {label}: [package] has no name"))?;
    let version = string_field(package, "version")
        .with_context(|| format!("plugin {label}: [package] has no version"))?;
    let lib_name = manifest
        .get("lib")
        .and_then(|lib| lib.get("name"))
        .and_then(Value::as_str)
        .map_or_else(|| package_name.replace('-', "_"), str::to_owned);

    let mut framework_requirement = None;
    for (table, name, dependency) in dependencies(&manifest) {
        let is_framework = name == "kneedeep"
            || dependency.get("package").and_then(Value::as_str) == Some("kneedeep");
        if dependency.get("git").is_some() {
            bail!(
                "plugin {label}: dependency {name:?} in [{table}] comes from git; a plugin may only use registry dependencies"
            );
        }
        if dependency.get("path").is_some() && !(is_framework && trust == Trust::InTree) {
            bail!(
                "plugin {label}: dependency {name:?} in [{table}] is a path dependency; a plugin may only use registry dependencies"
            );
        }
        if is_framework && table == "dependencies" {
            framework_requirement = Some(requirement(dependency));
        }
    }

    let Some(requirement) = framework_requirement else {
        bail!("plugin {label}: it does not depend on kneedeep");
    };
    let requirement = semver::VersionReq::parse(&requirement).with_context(|| {
        format!(
            "plugin {label}: its kneedeep requirement {requirement:?} is not a version requirement"
        )
    })?;
    if !requirement.matches(framework) {
        bail!(
            "plugin {label}: it requires kneedeep {requirement}, but this build provides kneedeep {framework}"
        );
    }

    let plugin_names = declared_plugins(&root.join("src"))
        .with_context(|| format!("plugin {label}: cannot read its sources"))?;
    if plugin_names.is_empty() {
        bail!(
            "plugin {label}: no #[derive(Plugin)] with #[plugin(name = \"...\")] in its src folder"
        );
    }

    Ok(PluginCrate {
        root: root.to_owned(),
        package: package_name,
        version,
        lib_name,
        plugin_names,
    })
}

fn has_members(manifest: &Table) -> bool {
    manifest
        .get("workspace")
        .and_then(|workspace| workspace.get("members"))
        .and_then(Value::as_array)
        .is_some_and(|members| !members.is_empty())
}

fn string_field(table: &Table, key: &str) -> Option<String> {
    table.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Every dependency of the manifest: (table, name, specification).
fn dependencies(manifest: &Table) -> Vec<(String, &str, &Value)> {
    let mut found = Vec::new();
    collect_dependencies("", manifest, &mut found);
    if let Some(targets) = manifest.get("target").and_then(Value::as_table) {
        for (target, table) in targets {
            if let Some(table) = table.as_table() {
                collect_dependencies(&format!("target.{target}."), table, &mut found);
            }
        }
    }
    found
}

fn collect_dependencies<'a>(
    prefix: &str,
    table: &'a Table,
    found: &mut Vec<(String, &'a str, &'a Value)>,
) {
    for kind in DEPENDENCY_TABLES {
        let Some(entries) = table.get(kind).and_then(Value::as_table) else {
            continue;
        };
        for (name, dependency) in entries {
            found.push((format!("{prefix}{kind}"), name.as_str(), dependency));
        }
    }
}

/// The version requirement of a dependency: `"0.1"` or `{ version = "0.1", ... }`.
fn requirement(dependency: &Value) -> String {
    match dependency {
        Value::String(version) => version.clone(),
        other => other
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("*")
            .to_owned(),
    }
}

/// The `name = "..."` of every `#[plugin(...)]` attribute under `src`.
fn declared_plugins(src: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut folders = vec![src.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path)?;
                names.extend(plugin_names_in(&text));
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The plugin names of `#[plugin(...)]` attributes that follow a `derive(Plugin)`.
fn plugin_names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("derive(Plugin)") {
        rest = &rest[at..];
        let Some(attribute) = rest.find("#[plugin(") else {
            break;
        };
        let attribute = &rest[attribute + "#[plugin(".len()..];
        let arguments = attribute.split(")]").next().unwrap_or_default();
        let name = arguments.split(',').find_map(|argument| {
            let (key, value) = argument.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
        });
        names.extend(name);
        rest = attribute;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "use kneedeep::prelude::*;\n\n/// Weather.\n#[derive(Plugin)]\n#[plugin(name = \"weather\", api = WeatherApi)]\npub struct Weather;\n";

    fn check(manifest: &str, trust: Trust) -> anyhow::Result<PluginCrate> {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("src")).unwrap();
        std::fs::write(folder.path().join("Cargo.toml"), manifest).unwrap();
        std::fs::write(folder.path().join("src/lib.rs"), LIB).unwrap();
        let framework = semver::Version::parse("0.1.3").unwrap();
        validate(folder.path(), "weather.tar.gz", trust, &framework)
    }

    fn error(manifest: &str) -> String {
        format!("{:#}", check(manifest, Trust::Archive).unwrap_err())
    }

    const PACKAGE: &str =
        "[package]\nname = \"kneedeep-plugin-weather\"\nversion = \"0.2.0\"\nedition = \"2024\"\n";

    #[test]
    fn a_plugin_crate_with_registry_dependencies_passes() {
        let manifest = format!("{PACKAGE}\n[dependencies]\nkneedeep = \"0.1\"\nitoa = \"1\"\n");
        let plugin = check(&manifest, Trust::Archive).unwrap();
        assert_eq!(plugin.package, "kneedeep-plugin-weather");
        assert_eq!(plugin.version, "0.2.0");
        assert_eq!(plugin.lib_name, "kneedeep_plugin_weather");
        assert_eq!(plugin.plugin_names, ["weather"]);
    }

    #[test]
    fn escaping_dependencies_are_refused_naming_the_plugin_and_the_dependency() {
        for (extra, expected) in [
            (
                "[dependencies]\nkneedeep = \"0.1\"\nx = { path = \"../x\" }\n",
                "dependency \"x\" in [dependencies] is a path dependency",
            ),
            (
                "[dependencies]\nkneedeep = \"0.1\"\nx = { git = \"https://example.org/x\" }\n",
                "dependency \"x\" in [dependencies] comes from git",
            ),
            (
                "[dependencies]\nkneedeep = \"0.1\"\n[target.'cfg(unix)'.dev-dependencies]\ny = { path = \"y\" }\n",
                "[target.cfg(unix).dev-dependencies] is a path dependency",
            ),
            (
                "[dependencies]\nkneedeep = \"0.1\"\n[patch.crates-io]\nserde = { path = \"s\" }\n",
                "has a [patch] section",
            ),
            (
                "[dependencies]\nkneedeep = { version = \"0.1\", path = \"../../framework\" }\n",
                "dependency \"kneedeep\" in [dependencies] is a path dependency",
            ),
        ] {
            let message = error(&format!("{PACKAGE}\n{extra}"));
            assert!(message.starts_with("plugin weather.tar.gz: "), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_framework_requirement_this_build_cannot_meet_names_both_versions() {
        let message = error(&format!("{PACKAGE}\n[dependencies]\nkneedeep = \"0.2\"\n"));
        assert!(
            message.contains("requires kneedeep ^0.2, but this build provides kneedeep 0.1.3"),
            "{message}"
        );
        let message = error(&format!("{PACKAGE}\n[dependencies]\nserde = \"1\"\n"));
        assert!(message.contains("does not depend on kneedeep"), "{message}");
    }

    #[test]
    fn an_in_tree_crate_may_reach_the_framework_by_path_but_nothing_else() {
        let framework =
            "[dependencies]\nkneedeep = { version = \"0.1\", path = \"../../framework\" }\n";
        assert!(check(&format!("{PACKAGE}\n{framework}"), Trust::InTree).is_ok());
        let other = format!("{PACKAGE}\n{framework}x = {{ path = \"../x\" }}\n");
        assert!(check(&other, Trust::InTree).is_err());
    }

    #[test]
    fn a_workspace_or_a_crate_without_package_is_not_a_plugin() {
        assert!(error("[workspace]\nmembers = [\"a\"]\n").contains("no [package]"));
        let message = error(&format!("{PACKAGE}\n[workspace]\nmembers = [\"a\"]\n"));
        assert!(message.contains("is a workspace"), "{message}");
    }

    #[test]
    fn plugin_names_are_read_from_the_derive_attribute() {
        let text = "#[derive(Plugin)]\n#[plugin(api = A, name = \"two-words\", ui = \"ui\")]\nstruct A;\n#[derive(Plugin)]\n#[plugin(name=\"b\", api = B)]\nstruct B;";
        assert_eq!(plugin_names_in(text), ["two-words", "b"]);
        assert!(plugin_names_in("#[plugin(name = \"x\")] without the derive").is_empty());
    }
}
