//! The build: `build-with-plugins` run again with nothing changed, against a no-op
//! `cargo build --release` of the stock app; then one plugin added, and what cargo
//! compiled for it.

use super::{bench_plugin, build_with_plugins_timed, cargo, process, report, run_timed};

/// Runs the build benchmark and prints its table.
pub(super) fn run() -> anyhow::Result<()> {
    let workspace = &process::workspace()?;
    let project = workspace.join("target/kneedeep-bench");
    let plugins = project.join("plugins");
    let _ = std::fs::remove_dir_all(&plugins);
    bench_plugin(&plugins, "alpha")?;

    // Both warmed first: what is measured is the run with nothing to do.
    let stock = || {
        let mut command = cargo();
        command.current_dir(workspace).args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kneedeep-app",
        ]);
        run_timed(command)
    };
    stock()?;
    build_with_plugins_timed(&project)?;
    let (no_op, _) = stock()?;
    let (unchanged, _) = build_with_plugins_timed(&project)?;

    let ratio = unchanged.as_secs_f64() / no_op.as_secs_f64();
    report("| measurement | build-with-plugins | baseline | ratio | target | met |");
    report("| --- | --- | --- | --- | --- | --- |");
    report(&format!(
        "| re-run with nothing changed, s (baseline: no-op `cargo build --release`) | {:.2} | {:.2} | {ratio:.2} | <= 2 | {} |",
        unchanged.as_secs_f64(),
        no_op.as_secs_f64(),
        if ratio <= 2.0 { "yes" } else { "NO" },
    ));

    bench_plugin(&plugins, "beta")?;
    let (added, output) = build_with_plugins_timed(&project)?;
    let compiled: Vec<&str> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let expected = ["kneedeep-plugin-beta", "kneedeep-with-plugins"];
    let only_those =
        compiled.len() == expected.len() && expected.iter().all(|name| compiled.contains(name));
    report(&format!(
        "| one plugin added: crates compiled ({}), in {:.1} s | {} | | | 2: the plugin and the generated crate, then the link | {} |",
        compiled.join(", "),
        added.as_secs_f64(),
        compiled.len(),
        if only_those { "yes" } else { "NO" },
    ));
    Ok(())
}
