//! `hello`: the smallest kneedeep plugin, and the one the README walks through.
//! One endpoint, `GET /plugins/hello/api/hello?name=x`, and a page in `ui/` that calls it.

use kneedeep::prelude::*;

/// Says hello to whoever asks.
#[derive(Plugin)]
#[plugin(name = "hello", api = HelloApi, ui = "ui")]
pub struct Hello;

/// The API of `hello`; it has no state, so `Default` builds it.
#[derive(Default)]
pub struct HelloApi;

/// A greeting.
#[derive(Object)]
struct Greeting {
    /// `hello, <name>`.
    message: String,
}

#[OpenApi]
impl HelloApi {
    /// Greets `name` (`world` when it is left out).
    #[oai(path = "/hello", method = "get", operation_id = "hello")]
    async fn hello(&self, name: Query<Option<String>>) -> Json<Greeting> {
        let name = name.0.unwrap_or_else(|| "world".to_owned());
        Json(Greeting {
            message: format!("hello, {name}"),
        })
    }
}
