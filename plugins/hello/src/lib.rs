//! `hello`: the smallest kneedeep plugin, and the one the README walks through.
//! One endpoint, `GET /plugins/hello/api/hello?name=x`, a page in `ui/` that calls it,
//! a config table, and a load hook that refuses a greeting with nowhere to put the name.

use kneedeep::prelude::*;
use serde::Deserialize;

/// Says hello to whoever asks.
#[derive(Plugin)]
#[plugin(name = "hello", api = HelloApi, ui = "ui", config = HelloConfig)]
pub struct Hello;

/// `[plugins.hello]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct HelloConfig {
    /// The answer, with `{name}` where the name goes. Default `hello, {name}`.
    pub greeting: String,
}

impl Default for HelloConfig {
    fn default() -> Self {
        HelloConfig {
            greeting: "hello, {name}".to_owned(),
        }
    }
}

impl Lifecycle for Hello {
    /// A greeting without `{name}` is a valid string but a useless plugin: it is refused
    /// here, which marks the plugin `failed` with this message.
    async fn on_load(context: PluginContext) -> Result<(), BoxError> {
        let config = context
            .config::<HelloConfig>()
            .ok_or("hello config missing")?;
        if !config.greeting.contains("{name}") {
            let greeting = &config.greeting;
            return Err(format!("greeting {greeting:?} has no {{name}} placeholder").into());
        }
        Ok(())
    }
}

/// The API of `hello`.
pub struct HelloApi {
    greeting: String,
}

impl HelloApi {
    /// The API with `greeting`, outside the framework: how the overhead benchmark serves
    /// the same handler on a bare poem server.
    pub fn new(greeting: impl Into<String>) -> Self {
        HelloApi {
            greeting: greeting.into(),
        }
    }
}

impl FromContext for HelloApi {
    fn from_context(context: &PluginContext) -> Result<Self, BoxError> {
        let config = context
            .config::<HelloConfig>()
            .ok_or("hello config missing")?;
        Ok(HelloApi::new(config.greeting.clone()))
    }
}

/// A greeting.
#[derive(Object)]
struct Greeting {
    /// The configured greeting with the name in it: `hello, <name>` by default.
    message: String,
}

#[OpenApi]
impl HelloApi {
    /// Greets `name` (`world` when it is left out).
    #[oai(path = "/hello", method = "get", operation_id = "hello")]
    async fn hello(&self, name: Query<Option<String>>) -> Json<Greeting> {
        let name = name.0.as_deref().unwrap_or("world");
        Json(Greeting {
            message: self.greeting.replace("{name}", name),
        })
    }
}
