//! The stock kneedeep binary: the framework with the in-tree plugins linked in.
//! `cargo xtask build-with-plugins` generates a binary like this one for any set of plugins.

use std::process::ExitCode;

use kneedeep_plugin_files as _;
use kneedeep_plugin_hello as _;
use kneedeep_plugin_notes as _;

fn main() -> ExitCode {
    kneedeep::run(kneedeep::Linked {
        crates: &[
            "kneedeep_plugin_files",
            "kneedeep_plugin_hello",
            "kneedeep_plugin_notes",
        ],
        manifest: None,
    })
}
