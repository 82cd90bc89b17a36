//! Where plugins come from: `[[plugin_sources]]` in the config, the source URLs kept in
//! the datastore that the config names, and the plugins folder (crate folders and
//! archives). Gathering only lists them; fetching and unpacking come later.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kneedeep::{Config, Datastore, DatastoreConfig, Sources};

/// Where a source was found; the build manifest reports it as `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A crate folder in the plugins folder.
    InTree,
    /// An archive dropped into the plugins folder.
    Folder,
    /// `[[plugin_sources]]` in the config.
    Config,
    /// A source URL kept in the datastore.
    Datastore,
}

impl Origin {
    /// The manifest's word for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Origin::InTree => "in-tree",
            Origin::Folder => "folder",
            Origin::Config => "config",
            Origin::Datastore => "datastore",
        }
    }
}

/// One plugin source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) origin: Origin,
    pub(crate) location: Location,
}

/// What a source points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A crate folder used as it is.
    CrateFolder(PathBuf),
    /// An archive to fetch: an `https`, `http` or `file` URL, with its pin if it has one.
    Archive { url: String, sha256: Option<String> },
}

impl Source {
    /// How messages and the lock file name this source: its URL, or its folder.
    pub(crate) fn label(&self) -> String {
        match &self.location {
            Location::CrateFolder(folder) => folder.display().to_string(),
            Location::Archive { url, .. } => url.clone(),
        }
    }
}

/// The file names the plugins folder may hold archives under.
const ARCHIVE_SUFFIXES: [&str; 4] = [".tar.gz", ".tgz", ".tar", ".crate"];

/// Every source, in a stable order: the config's, the datastore's, then the folder's.
/// `notes` receives what was skipped and why.
pub(crate) fn gather(
    config: &Config,
    config_dir: &Path,
    plugins_dir: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Source>> {
    let mut sources: Vec<Source> = config
        .plugin_sources
        .iter()
        .map(|source| Source {
            origin: Origin::Config,
            location: Location::Archive {
                url: source.url.clone(),
                sha256: source.sha256.clone(),
            },
        })
        .collect();

    sources.extend(from_datastore(&config.datastore, config_dir, notes)?);
    sources.extend(from_folder(plugins_dir)?);
    Ok(sources)
}

/// The source URLs kept in the datastore. A datastore that does not exist yet has none.
fn from_datastore(
    datastore: &DatastoreConfig,
    config_dir: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Source>> {
    let mut datastore = datastore.clone();
    if let Some(path) = datastore.url.strip_prefix("sqlite://") {
        // The server resolves a relative path from its working folder: the config's.
        let file = config_dir.join(path.split('?').next().unwrap_or(path));
        if !file.exists() {
            notes.push(format!(
                "datastore {} does not exist yet: no sources from it",
                file.display()
            ));
            return Ok(Vec::new());
        }
        datastore.url = format!("sqlite://{}", file.display());
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start a runtime to read the datastore")?;
    let kept = runtime.block_on(async {
        let store = match Datastore::open(&datastore).await {
            Ok(store) => store,
            Err(error) if error.to_string().contains("does not exist") => return Ok(None),
            Err(error) => return Err(error),
        };
        Sources::new(&store).list().await.map(Some)
    });
    let kept = kept.with_context(|| "read the plugin sources kept in the datastore")?;

    let Some(kept) = kept else {
        notes.push("the datastore database does not exist yet: no sources from it".to_owned());
        return Ok(Vec::new());
    };
    Ok(kept
        .into_iter()
        .map(|source| Source {
            origin: Origin::Datastore,
            location: Location::Archive {
                url: source.url,
                sha256: source.sha256,
            },
        })
        .collect())
}

/// The crate folders and archives of the plugins folder, by file name.
fn from_folder(plugins_dir: &Path) -> anyhow::Result<Vec<Source>> {
    let entries = match std::fs::read_dir(plugins_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("read {}", plugins_dir.display()));
        }
    };

    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("read {}", plugins_dir.display()))?;
    paths.sort();

    let mut sources = Vec::new();
    for path in paths {
        let path = std::path::absolute(&path).unwrap_or(path);
        if path.join("Cargo.toml").is_file() {
            sources.push(Source {
                origin: Origin::InTree,
                location: Location::CrateFolder(path),
            });
            continue;
        }

        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if path.is_file() && ARCHIVE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
            sources.push(Source {
                origin: Origin::Folder,
                location: Location::Archive {
                    url: format!("file://{}", path.display()),
                    sha256: None,
                },
            });
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_folder_gives_crate_folders_and_archives_only() {
        let folder = tempfile::tempdir().unwrap();
        let plugins = folder.path();
        std::fs::create_dir_all(plugins.join("alpha/src")).unwrap();
        std::fs::write(plugins.join("alpha/Cargo.toml"), "[package]\n").unwrap();
        std::fs::create_dir_all(plugins.join("not-a-crate")).unwrap();
        for file in [
            "b.tar.gz",
            "c.tgz",
            "d.tar",
            "e.crate",
            "notes.txt",
            "f.zip",
        ] {
            std::fs::write(plugins.join(file), "x").unwrap();
        }

        let sources = from_folder(plugins).unwrap();
        let labels: Vec<String> = sources
            .iter()
            .map(|source| {
                let label = source.label();
                let name = label.rsplit('/').next().unwrap().to_owned();
                format!("{}:{name}", source.origin.as_str())
            })
            .collect();
        assert_eq!(
            labels,
            [
                "in-tree:alpha",
                "folder:b.tar.gz",
                "folder:c.tgz",
                "folder:d.tar",
                "folder:e.crate"
            ]
        );
    }

    #[test]
    fn a_missing_plugins_folder_has_no_sources() {
        let folder = tempfile::tempdir().unwrap();
        assert!(from_folder(&folder.path().join("none")).unwrap().is_empty());
    }

    #[test]
    fn a_datastore_that_does_not_exist_yet_is_skipped_with_a_note() {
        let folder = tempfile::tempdir().unwrap();
        let datastore = DatastoreConfig {
            url: "sqlite://data/kneedeep.db".to_owned(),
            ..DatastoreConfig::default()
        };
        let mut notes = Vec::new();

        let sources = from_datastore(&datastore, folder.path(), &mut notes).unwrap();
        assert!(sources.is_empty());
        assert!(notes[0].contains("does not exist yet"), "{notes:?}");
        assert!(!folder.path().join("data").exists(), "nothing was created");
    }
}
