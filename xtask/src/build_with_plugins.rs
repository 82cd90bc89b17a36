//! `cargo xtask build-with-plugins`: gathers plugin sources, fetches and unpacks the
//! archives, checks each crate, generates the crate that links them all, builds it with
//! cargo, and replaces `dist/kneedeep` atomically. Each step is a function of its own
//! module; this one only runs them in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use kneedeep::{BuildManifest, Config, ManifestPlugin};

use crate::codegen::{self, Framework};
use crate::fetch::{FetchOptions, Fetcher};
use crate::lock::{self, Lock};
use crate::sources::{self, Location, Origin, Source};
use crate::unpack::{self, Limits};
use crate::validate::{self, PluginCrate, Trust};

/// Options of `build-with-plugins`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The config file: its `[[plugin_sources]]` and `[datastore]` are read, and
    /// `plugins.lock` is written next to it. A missing default file means no sources.
    #[arg(long, default_value = "kneedeep.toml", value_name = "PATH")]
    config: PathBuf,

    /// The plugins folder: crate folders and archives (`*.tar.gz`, `*.tgz`, `*.tar`,
    /// `*.crate`) in it are built in.
    #[arg(long, default_value = "plugins", value_name = "DIR")]
    plugins_dir: PathBuf,

    /// Where `kneedeep` is written.
    #[arg(long, default_value = "dist", value_name = "DIR")]
    out: PathBuf,

    /// Build in debug mode instead of release.
    #[arg(long)]
    debug: bool,

    /// Refuse any change to `plugins.lock`.
    #[arg(long)]
    locked: bool,

    /// Never touch the network: every archive must be in the cache already.
    #[arg(long)]
    offline: bool,

    /// Start the built binary (`kneedeep serve --config PATH`) once it is written.
    #[arg(long)]
    run: bool,

    /// Folder for the archive cache, unpacked sources and the generated crate
    /// [default: target/kneedeep-build in this repository].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// cargo's target folder for the build [default: this repository's target folder,
    /// so that the build reuses what `cargo build --release` compiled].
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
}

/// A plugin crate ready to build, and what the manifest says of it.
struct Resolved {
    source: Source,
    plugin: PluginCrate,
    sha256: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = workspace_root();
    let config_path = std::path::absolute(&args.config)?;
    let config_dir = config_path
        .parent()
        .context("the config's folder")?
        .to_owned();
    let config = load_config(&config_path, args.config == Path::new("kneedeep.toml"))?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| workspace.join("target/kneedeep-build"));
    let target_dir = args
        .target_dir
        .clone()
        .unwrap_or_else(|| workspace.join("target"));

    let mut notes = Vec::new();
    let sources = sources::gather(&config, &config_dir, &args.plugins_dir, &mut notes)?;
    notes.iter().for_each(|note| say(note));
    if sources.is_empty() {
        bail!(
            "no plugin sources: nothing in the config, the datastore or {}",
            args.plugins_dir.display()
        );
    }

    let previous_lock = Lock::read(&config_dir)?;
    if args.locked {
        refuse_unlocked_urls(&sources, &previous_lock)?;
    }
    let fetcher = Fetcher::new(FetchOptions {
        cache_dir: work_dir.join("cache"),
        offline: args.offline,
        ..FetchOptions::default()
    })?;
    let framework_version = semver::Version::parse(kneedeep::VERSION)?;

    let mut next_lock = Lock::default();
    let mut resolved = Vec::with_capacity(sources.len());
    for source in sources {
        let (root, trust, sha256) = match &source.location {
            Location::CrateFolder(folder) => (folder.clone(), Trust::InTree, None),
            Location::Archive { url, sha256 } => {
                // An archive dropped into the plugins folder is its own truth: a new
                // file there is a new plugin, never the locked bytes of the old one.
                let pin = match source.origin {
                    Origin::Folder => None,
                    _ => sha256.as_deref().or_else(|| previous_lock.get(url)),
                };
                let fetched = fetcher.fetch(url, pin)?;
                next_lock.insert(url, &fetched.sha256);
                let root = unpacked(&fetched.path, &fetched.sha256, &work_dir, url)?;
                (root, Trust::Archive, Some(fetched.sha256))
            }
        };
        let plugin = validate::validate(&root, &source.label(), trust, &framework_version)?;
        resolved.push(Resolved {
            source,
            plugin,
            sha256,
        });
    }
    refuse_duplicates(&resolved)?;
    if args.locked {
        lock::refuse_changes(&previous_lock, &next_lock)?;
    }

    let manifest = manifest(&resolved);
    let plugins: Vec<PluginCrate> = resolved.iter().map(|r| r.plugin.clone()).collect();
    let framework = Framework {
        framework_dir: workspace.join("framework"),
        macros_dir: workspace.join("macros"),
        lockfile: workspace.join("Cargo.lock"),
    };
    let generated = work_dir.join("app");
    codegen::generate(&generated, &framework, &plugins, &manifest)?;

    let built = cargo_build(&generated, &target_dir, args)?;
    let written = install(&built, &args.out)?;
    if let Some(path) = next_lock.write_if_changed(&config_dir, &previous_lock)? {
        say(&format!("wrote {}", path.display()));
    }
    say(&format!(
        "wrote {} with {}",
        written.display(),
        manifest.summary()
    ));

    if args.run {
        return run_binary(&written, &config_path);
    }
    Ok(())
}

/// The repository this xtask belongs to.
fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_owned()
}

/// The config; a missing default file means all defaults, a missing named one is an error.
fn load_config(path: &Path, is_default: bool) -> anyhow::Result<Config> {
    if is_default && !path.exists() {
        return Ok(Config::default());
    }
    Config::load(Some(path)).map_err(|error| anyhow::anyhow!("invalid config: {error}"))
}

/// With `--locked`, an archive URL that the lock does not know cannot be fetched.
fn refuse_unlocked_urls(sources: &[Source], lock: &Lock) -> anyhow::Result<()> {
    let unknown: Vec<String> = sources
        .iter()
        .filter_map(|source| match &source.location {
            Location::Archive { url, .. } if lock.get(url).is_none() => Some(url.clone()),
            _ => None,
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    bail!(
        "{} has no entry for these sources, and --locked forbids adding them:\n  {}",
        lock::LOCK_FILE,
        unknown.join("\n  ")
    )
}

// FIXME(the folders of archives no longer used stay in `<work>/src` forever; a build
// could remove those that no source of it names, once it has succeeded).

/// The crate root of an archive, unpacked once per content into `<work>/src/<sha256>`.
/// Reusing the folder keeps its files' mtimes, so cargo does not rebuild an unchanged
/// plugin; a changed archive has another sha256, hence another folder.
fn unpacked(archive: &Path, sha256: &str, work_dir: &Path, url: &str) -> anyhow::Result<PathBuf> {
    let destination = work_dir.join("src").join(sha256);
    if !destination.exists() {
        std::fs::create_dir_all(work_dir.join("src"))?;
        return unpack::unpack(archive, &destination, &Limits::default())
            .with_context(|| format!("plugin {url}"));
    }

    if destination.join("Cargo.toml").is_file() {
        return Ok(destination);
    }
    let mut folders = std::fs::read_dir(&destination)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()?;
    match (folders.pop(), folders.is_empty()) {
        (Some(root), true) if root.join("Cargo.toml").is_file() => Ok(root),
        _ => bail!(
            "plugin {url}: {} is not an unpacked crate; delete it and build again",
            destination.display()
        ),
    }
}

/// Two sources that give the same plugin (or the same package) are an error naming both.
fn refuse_duplicates(resolved: &[Resolved]) -> anyhow::Result<()> {
    let mut plugins: BTreeMap<&str, String> = BTreeMap::new();
    let mut packages: BTreeMap<&str, String> = BTreeMap::new();
    for entry in resolved {
        let label = entry.source.label();
        for name in &entry.plugin.plugin_names {
            if let Some(first) = plugins.insert(name, label.clone()) {
                bail!("two sources give the plugin {name:?}: {first} and {label}");
            }
        }
        if let Some(first) = packages.insert(&entry.plugin.package, label.clone()) {
            bail!(
                "two sources give the crate {:?}: {first} and {label}",
                entry.plugin.package
            );
        }
    }
    Ok(())
}

fn manifest(resolved: &[Resolved]) -> BuildManifest {
    let mut plugins: Vec<ManifestPlugin> = resolved
        .iter()
        .flat_map(|entry| {
            let url = match &entry.source.location {
                Location::Archive { url, .. } => Some(url.clone()),
                Location::CrateFolder(_) => None,
            };
            entry
                .plugin
                .plugin_names
                .iter()
                .map(move |name| ManifestPlugin {
                    name: name.clone(),
                    version: entry.plugin.version.clone(),
                    crate_name: entry.plugin.lib_name.clone(),
                    source: entry.source.origin.as_str().to_owned(),
                    url: url.clone(),
                    sha256: entry.sha256.clone(),
                })
        })
        .collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    BuildManifest {
        framework_version: kneedeep::VERSION.to_owned(),
        plugins,
    }
}

/// Builds the generated crate; returns the binary.
fn cargo_build(generated: &Path, target_dir: &Path, args: &Args) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(generated.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if !args.debug {
        command.arg("--release");
    }
    if args.offline {
        command.arg("--offline");
    }

    say(&format!(
        "building {} ({})",
        codegen::PACKAGE,
        if args.debug { "debug" } else { "release" }
    ));
    let status = command.status().context("run cargo")?;
    if !status.success() {
        bail!("cargo build of the generated crate failed ({status}); dist was left as it was");
    }
    let profile = if args.debug { "debug" } else { "release" };
    Ok(target_dir.join(profile).join(codegen::PACKAGE))
}

/// Copies `built` to `<out>/kneedeep` atomically: a reader sees the old binary or the
/// new one, and a failure leaves the old one as it was.
fn install(built: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let destination = out.join("kneedeep");
    let temporary = out.join(format!(".kneedeep.{}.tmp", std::process::id()));

    let copied = std::fs::copy(built, &temporary)
        .and_then(|_| std::fs::File::open(&temporary)?.sync_all())
        .and_then(|()| std::fs::rename(&temporary, &destination));
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("write {}", destination.display()));
    }
    Ok(destination)
}

fn run_binary(binary: &Path, config: &Path) -> anyhow::Result<()> {
    say(&format!("starting {}", binary.display()));
    let mut command = Command::new(binary);
    command.arg("serve");
    if config.exists() {
        command.arg("--config").arg(config);
    }
    if let Some(folder) = config.parent() {
        command.current_dir(folder);
    }
    let status = command
        .status()
        .with_context(|| format!("start {}", binary.display()))?;
    if !status.success() {
        bail!("{} exited with {status}", binary.display());
    }
    Ok(())
}

#[allow(clippy::print_stderr, reason = "the command's progress report")]
fn say(line: &str) {
    eprintln!("build-with-plugins: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(url: &str, package: &str, plugins: &[&str]) -> Resolved {
        Resolved {
            source: Source {
                origin: crate::sources::Origin::Config,
                location: Location::Archive {
                    url: url.to_owned(),
                    sha256: None,
                },
            },
            plugin: PluginCrate {
                root: PathBuf::from("/unused"),
                package: package.to_owned(),
                version: "0.1.0".to_owned(),
                lib_name: package.replace('-', "_"),
                plugin_names: plugins.iter().map(|name| (*name).to_owned()).collect(),
            },
            sha256: None,
        }
    }

    #[test]
    fn two_sources_of_one_plugin_are_an_error_naming_both() {
        let both = [
            resolved("https://a.example/weather.tgz", "weather-a", &["weather"]),
            resolved("https://b.example/weather.tgz", "weather-b", &["weather"]),
        ];
        let message = refuse_duplicates(&both).unwrap_err().to_string();
        assert_eq!(
            message,
            "two sources give the plugin \"weather\": https://a.example/weather.tgz and https://b.example/weather.tgz"
        );

        let same_crate = [
            resolved("https://a.example/x.tgz", "kneedeep-plugin-x", &["x"]),
            resolved("https://b.example/y.tgz", "kneedeep-plugin-x", &["y"]),
        ];
        let message = refuse_duplicates(&same_crate).unwrap_err().to_string();
        assert!(
            message.contains("the crate \"kneedeep-plugin-x\""),
            "{message}"
        );

        let distinct = [
            resolved("https://a.example/x.tgz", "x", &["x"]),
            resolved("https://a.example/y.tgz", "y", &["y"]),
        ];
        assert!(refuse_duplicates(&distinct).is_ok());
    }

    #[test]
    fn locked_refuses_a_source_the_lock_does_not_know() {
        let source = resolved("https://a.example/new.tgz", "new", &["new"]).source;
        let message = refuse_unlocked_urls(&[source], &Lock::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("https://a.example/new.tgz"), "{message}");
        assert!(
            message.contains("--locked forbids adding them"),
            "{message}"
        );
    }

    #[test]
    fn install_replaces_the_binary_and_a_failure_leaves_it() {
        let folder = tempfile::tempdir().unwrap();
        let built = folder.path().join("built");
        let out = folder.path().join("dist");
        std::fs::write(&built, "new binary").unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("kneedeep"), "old binary").unwrap();

        assert!(install(&folder.path().join("missing"), &out).is_err());
        assert_eq!(
            std::fs::read_to_string(out.join("kneedeep")).unwrap(),
            "old binary"
        );
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            1,
            "no temporary file is left"
        );

        install(&built, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("kneedeep")).unwrap(),
            "new binary"
        );
    }
}
