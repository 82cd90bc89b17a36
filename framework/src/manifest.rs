//! The build manifest: which framework and which plugins (with source and sha256) a binary
//! was built from. `cargo xtask build-with-plugins` embeds it; a plain `cargo build` of
//! the stock app gets one derived from the registry, every plugin marked `in-tree`.

use serde::{Deserialize, Serialize};

use crate::cli::Linked;
use crate::registry::PLUGINS;

/// What a binary was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildManifest {
    /// The version of the `kneedeep` crate linked in.
    pub framework_version: String,
    /// Every plugin, sorted by name.
    pub plugins: Vec<ManifestPlugin>,
}

/// One plugin of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPlugin {
    /// The plugin's name.
    pub name: String,
    /// Its crate's version.
    pub version: String,
    /// Its crate's name.
    #[serde(rename = "crate")]
    pub crate_name: String,
    /// Where it came from: `in-tree`, `folder`, `config` or `datastore`.
    pub source: String,
    /// The source URL or file, where there is one.
    #[serde(default)]
    pub url: Option<String>,
    /// The sha256 of the source archive, where there is one.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl BuildManifest {
    /// The manifest the binary carries, or one derived from its registry.
    pub fn of(linked: Linked) -> BuildManifest {
        if let Some(manifest) = linked
            .manifest
            .and_then(|json| serde_json::from_str(json).ok())
        {
            return manifest;
        }

        let mut plugins: Vec<ManifestPlugin> = PLUGINS
            .iter()
            .map(|descriptor| ManifestPlugin {
                name: descriptor.name.to_owned(),
                version: descriptor.version.to_owned(),
                crate_name: descriptor.crate_name().to_owned(),
                source: "in-tree".to_owned(),
                url: None,
                sha256: None,
            })
            .collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        BuildManifest {
            framework_version: crate::VERSION.to_owned(),
            plugins,
        }
    }

    /// `kneedeep 0.1.0 (framework 0.1.0; 3 plugins: files 0.1.0, ...)`.
    pub fn summary(&self) -> String {
        let plugins: Vec<String> = self
            .plugins
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        format!(
            "kneedeep {} (framework {}; {} plugins: {})",
            crate::VERSION,
            self.framework_version,
            self.plugins.len(),
            plugins.join(", ")
        )
    }

    /// The table `kneedeep plugins` prints.
    pub fn table(&self) -> String {
        let mut rows = vec![["NAME", "VERSION", "SOURCE", "SHA256"].map(str::to_owned)];
        for plugin in &self.plugins {
            let source = match &plugin.url {
                Some(url) => format!("{} {url}", plugin.source),
                None => plugin.source.clone(),
            };
            let sha256 = plugin.sha256.clone().unwrap_or_else(|| "-".to_owned());
            rows.push([plugin.name.clone(), plugin.version.clone(), source, sha256]);
        }

        let widths: Vec<usize> = (0..4)
            .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
            .collect();
        rows.iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(cell, width)| format!("{cell:<width$}"))
                    .collect();
                cells.join("  ").trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
