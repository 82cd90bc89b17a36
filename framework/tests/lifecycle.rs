//! The plugin model end to end inside one process: the derive registers each plugin, the
//! manager builds its API and runs its hooks, and failures stay with their plugin.

use std::sync::atomic::{AtomicUsize, Ordering};

use kneedeep::__private::PLUGINS;
use kneedeep::prelude::*;
use kneedeep::{Config, Datastore, Manager, PluginState};

#[derive(Default)]
struct PingApi;

#[OpenApi]
impl PingApi {
    #[oai(path = "/ping", method = "get")]
    async fn ping(&self) -> PlainText<&'static str> {
        PlainText("pong")
    }
}

/// No hooks, no config.
#[derive(Plugin)]
#[plugin(name = "quiet", api = PingApi)]
struct Quiet;

static LOADS: AtomicUsize = AtomicUsize::new(0);
static UNLOADS: AtomicUsize = AtomicUsize::new(0);

/// Counts its hooks and reads its config.
#[derive(Plugin)]
#[plugin(name = "hooked", api = GreetApi, config = GreetConfig)]
struct Hooked;

#[derive(serde::Deserialize)]
struct GreetConfig {
    word: String,
}

struct GreetApi {
    word: String,
}

impl FromContext for GreetApi {
    fn from_context(context: &PluginContext) -> Result<Self, BoxError> {
        let config = context.config::<GreetConfig>().ok_or("no config")?;
        Ok(GreetApi {
            word: config.word.clone(),
        })
    }
}

#[OpenApi]
impl GreetApi {
    #[oai(path = "/greet", method = "get")]
    async fn greet(&self) -> PlainText<String> {
        PlainText(self.word.clone())
    }
}

impl Lifecycle for Hooked {
    async fn on_load(context: PluginContext) -> Result<(), BoxError> {
        assert_eq!(context.name(), "hooked");
        LOADS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_unload(_context: PluginContext) -> Result<(), BoxError> {
        UNLOADS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Plugin)]
#[plugin(name = "refuses", api = PingApi)]
struct Refuses;

impl Lifecycle for Refuses {
    async fn on_load(_context: PluginContext) -> Result<(), BoxError> {
        Err("the disk is full".into())
    }
}

#[derive(Plugin)]
#[plugin(name = "panics", api = PingApi)]
struct Panics;

impl Lifecycle for Panics {
    async fn on_load(_context: PluginContext) -> Result<(), BoxError> {
        panic!("boom")
    }
}

/// Takes a while to unload, long enough for a caller to give up waiting.
#[derive(Plugin)]
#[plugin(name = "slow", api = PingApi)]
struct Slow;

impl Lifecycle for Slow {
    async fn on_unload(_context: PluginContext) -> Result<(), BoxError> {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Ok(())
    }
}

#[derive(Plugin)]
#[plugin(name = "unbuildable", api = Unbuildable)]
struct UnbuildablePlugin;

struct Unbuildable;

impl FromContext for Unbuildable {
    fn from_context(_context: &PluginContext) -> Result<Self, BoxError> {
        Err("missing credentials".into())
    }
}

#[OpenApi]
impl Unbuildable {
    #[oai(path = "/x", method = "get")]
    async fn x(&self) -> PlainText<&'static str> {
        PlainText("x")
    }
}

/// A manager over every plugin of this binary, on a fresh SQLite datastore.
async fn manager(config: &str) -> Manager {
    manager_on(&datastore().await, config)
}

/// A manager over every plugin of this binary, on `datastore`.
fn manager_on(datastore: &Datastore, config: &str) -> Manager {
    let config: Config = toml_config(config);
    let descriptors: Vec<_> = PLUGINS.iter().collect();
    match Manager::new(&descriptors, &config, datastore) {
        Ok(manager) => manager,
        Err(errors) => panic!("config errors: {errors:?}"),
    }
}

/// A datastore in a folder that lives as long as the test process: the manager keeps
/// only a handle, and the pool must outlive it.
async fn datastore() -> Datastore {
    let folder = tempfile::tempdir().unwrap().keep();
    let url = format!("sqlite://{}", folder.join("kneedeep.db").display());
    let config = toml_config(&format!("[datastore]\nurl = {url:?}\n"));
    Datastore::open(&config.datastore).await.unwrap()
}

fn toml_config(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kneedeep.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path)).unwrap()
}

#[test]
fn the_registry_holds_exactly_the_plugins_of_this_binary() {
    let mut names: Vec<&str> = PLUGINS.iter().map(|d| d.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "hooked",
            "panics",
            "quiet",
            "refuses",
            "slow",
            "unbuildable"
        ]
    );
    assert!(PLUGINS.iter().all(|d| d.crate_name() == "lifecycle"));
}

#[test]
fn the_doc_comment_becomes_the_description() {
    let quiet = PLUGINS.iter().find(|d| d.name == "quiet").unwrap();
    assert_eq!(quiet.description, "No hooks, no config.");
}

#[tokio::test]
async fn hooks_run_on_load_and_unload_and_load_is_idempotent() {
    let manager = manager("[plugins.hooked]\nword = \"hi\"\n").await;
    let hooked = manager.get("hooked").unwrap();
    let before = LOADS.load(Ordering::SeqCst);

    assert_eq!(hooked.load().await, PluginState::Loaded);
    assert_eq!(hooked.load().await, PluginState::Loaded);
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        before + 1,
        "a second load does not rerun the hook"
    );
    assert!(hooked.is_loaded());

    let unloads = UNLOADS.load(Ordering::SeqCst);
    assert_eq!(hooked.unload().await, PluginState::Unloaded);
    assert_eq!(hooked.unload().await, PluginState::Unloaded);
    assert_eq!(UNLOADS.load(Ordering::SeqCst), unloads + 1);
    assert!(!hooked.is_loaded());
}

#[tokio::test]
async fn a_plugin_without_hooks_loads() {
    let manager = manager("[plugins.hooked]\nword = \"hi\"\n").await;
    assert_eq!(
        manager.get("quiet").unwrap().load().await,
        PluginState::Loaded
    );
}

#[tokio::test]
async fn a_failing_or_panicking_hook_marks_only_that_plugin_failed() {
    let manager = manager("[plugins.hooked]\nword = \"hi\"\n").await;
    manager
        .start(&toml_config("[plugins.hooked]\nword = \"hi\"\n"))
        .await
        .unwrap();

    let refuses = manager.get("refuses").unwrap().state();
    assert_eq!(
        refuses,
        PluginState::Failed("load hook failed: the disk is full".into())
    );
    let panics = manager.get("panics").unwrap().state();
    assert_eq!(
        panics,
        PluginState::Failed("load hook panicked: boom".into())
    );

    assert_eq!(manager.get("quiet").unwrap().state(), PluginState::Loaded);
    assert_eq!(manager.get("hooked").unwrap().state(), PluginState::Loaded);
}

#[tokio::test]
async fn an_api_that_cannot_be_built_fails_its_plugin_and_cannot_be_loaded() {
    let manager = manager("[plugins.hooked]\nword = \"hi\"\n").await;
    let plugin = manager.get("unbuildable").unwrap();

    let expected = PluginState::Failed("its API could not be built: missing credentials".into());
    assert_eq!(plugin.state(), expected);
    assert_eq!(plugin.load().await, expected);
    assert!(!plugin.is_loaded());
}

#[tokio::test]
async fn a_bad_plugin_table_is_reported_with_plugin_and_key() {
    let config = toml_config("[plugins.hooked]\nwrod = \"typo\"\n\n[plugins.ghost]\nx = 1\n");
    let descriptors: Vec<_> = PLUGINS.iter().collect();
    let errors = Manager::new(&descriptors, &config, &datastore().await)
        .err()
        .expect("config errors");
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();

    assert!(
        errors.contains(&"plugin 'hooked': key 'wrod': unknown key".to_owned()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"plugin 'hooked': key 'word': missing field `word`".to_owned()),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("plugin 'ghost': no such plugin is compiled in")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn an_unload_whose_caller_gives_up_still_finishes_and_is_kept() {
    let config = "[plugins.hooked]\nword = \"hi\"\n";
    let datastore = datastore().await;
    let manager = manager_on(&datastore, config);
    assert_eq!(
        manager.set_loaded("slow", true).await.unwrap(),
        Some(PluginState::Loaded)
    );

    // The caller stops waiting while the unload hook runs, as a handler does when its
    // client disconnects.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        manager.set_loaded("slow", false),
    )
    .await;
    assert!(gave_up.is_err(), "the unload hook should still be running");

    let slow = manager.get("slow").unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while slow.state() != PluginState::Unloaded {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unload never finished: {:?}, gate open: {}",
            slow.state(),
            slow.is_loaded()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!slow.is_loaded());

    // What a restart reads back is what the caller asked for.
    let restarted = manager_on(&datastore, config);
    restarted.start(&toml_config(config)).await.unwrap();
    assert_eq!(
        restarted.get("slow").unwrap().state(),
        PluginState::Unloaded
    );
}
