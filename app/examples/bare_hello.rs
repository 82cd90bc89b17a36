//! The baseline of `cargo xtask bench`'s request overhead: hello's handler on a bare poem
//! server, at the same path and on the same runtime as in kneedeep, without the gate, the
//! request span, the metrics or the request log.
//!
//! `cargo run --release -p kneedeep-app --example bare_hello -- 127.0.0.1:8081`

use kneedeep::poem::listener::TcpListener;
use kneedeep::poem::{Route, Server};
use kneedeep::poem_openapi::OpenApiService;
use kneedeep_plugin_hello::HelloApi;

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let api = OpenApiService::new(HelloApi::new("hello, {name}"), "hello", "0.1.0")
        .server("/plugins/hello/api");
    let app = Route::new().nest("/plugins/hello/api", api);

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(Server::new(TcpListener::bind(listen)).run(app))
}
