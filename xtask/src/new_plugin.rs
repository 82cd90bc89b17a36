//! `cargo xtask new-plugin NAME`: writes a plugin crate that builds, tests and loads as it
//! is, from the templates in `xtask/templates/plugin/`.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

/// Options of `new-plugin`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The plugin's name: a lowercase letter, then lowercase letters, digits or `-`.
    name: String,

    /// The folder to create the crate in, as `<dir>/<name>`.
    #[arg(long, default_value = "plugins", value_name = "DIR")]
    dir: PathBuf,
}

/// Each template and where it goes inside the new crate.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/plugin/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/plugin/src/lib.rs.tmpl"),
    ),
    (
        "ui/index.html",
        include_str!("../templates/plugin/ui/index.html.tmpl"),
    ),
    (
        "ui/app.js",
        include_str!("../templates/plugin/ui/app.js.tmpl"),
    ),
];

/// Names the framework keeps for its own routes; the derive refuses them too.
const RESERVED_NAMES: &[&str] = &[
    "manage",
    "metrics",
    "healthz",
    "readyz",
    "openapi.json",
    "static",
];

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let crate_dir = args.dir.join(&args.name);
    if crate_dir.exists() {
        bail!(
            "{} already exists; pick another name or remove it",
            crate_dir.display()
        );
    }

    let framework = relative_framework_path(&crate_dir)?;
    for (path, template) in TEMPLATES {
        let text = render(template, &args.name, &framework);
        let target = crate_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }

    #[allow(clippy::print_stdout, reason = "command output")]
    {
        println!("created plugin '{}' in {}", args.name, crate_dir.display());
        println!(
            "next: cargo test -p kneedeep-plugin-{}, then cargo xtask build-with-plugins --run",
            args.name
        );
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if RESERVED_NAMES.contains(&name) {
        bail!(
            "plugin name '{name}' is reserved by the framework ({})",
            RESERVED_NAMES.join(", ")
        );
    }
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_is_good = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_well || !rest_is_good || name.len() > 63 {
        bail!(
            "plugin name '{name}' is not valid: it must start with a lowercase letter, continue \
             with lowercase letters, digits or '-', and be at most 63 characters"
        );
    }
    Ok(())
}

/// `{{name}}`, `{{type}}` (the name in UpperCamelCase) and `{{framework}}`.
fn render(template: &str, name: &str, framework: &str) -> String {
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    template
        .replace("{{name}}", name)
        .replace("{{type}}", &type_name)
        .replace("{{framework}}", framework)
}

/// The path from the new crate to this workspace's `framework/`, relative when it can be.
fn relative_framework_path(crate_dir: &Path) -> anyhow::Result<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?;
    let framework = workspace.join("framework");
    let current = std::env::current_dir().context("reading the current folder")?;
    let crate_dir = current.join(crate_dir);

    let from: Vec<Component<'_>> = crate_dir.components().collect();
    let to: Vec<Component<'_>> = framework.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return Ok(framework.display().to_string());
    }
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for component in &to[common..] {
        relative.push(component);
    }
    Ok(relative.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_derive_rules() {
        assert!(check_name("weather-2").is_ok());
        for bad in ["", "Weather", "2fa", "we_ather", "manage", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn type_name_is_upper_camel_case() {
        assert_eq!(
            render("{{type}}Api for {{name}}", "my-weather", "../f"),
            "MyWeatherApi for my-weather"
        );
    }
}
