//! Route assembly: every plugin nested under `/plugins/<name>` behind its gate, with its
//! API, document, docs and UI; the management API behind its token; the shell at `/`;
//! the merged document; metrics and health checks.
//!
//! Architecture invariant: the routing table is built once at startup. Loading and
//! unloading never touch it; they flip the plugin's gate, which every request checks.

use std::cell::RefCell;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use poem::endpoint::{BoxEndpoint, DynEndpoint};
use poem::http::{HeaderName, Method, StatusCode, Uri, header};
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, handler};
use serde_json::json;

use crate::allow::{AllowedMethods, WithAllow};
use crate::embedded::EmbeddedFiles;
use crate::limit::{self, JsonBodyLimit};
use crate::logging::{RequestSpan, Served};
use crate::manager::api::ManageApi;
use crate::manager::auth::RequireToken;
use crate::manager::{ManagedPlugin, Manager};
use crate::manifest::BuildManifest;
use crate::metrics::HttpMetrics;
use crate::openapi::{self, NamespacedSpec};
use crate::store::Datastore;

/// The prefix of a plugin's API: `/plugins/<name>/api`.
pub fn api_prefix(plugin: &str) -> String {
    format!("/plugins/{plugin}/api")
}

/// A JSON error body `{"error": "..."}` with the given status.
pub fn error_response(status: StatusCode, message: impl Display) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(json!({ "error": message.to_string() }).to_string())
}

/// What the routes share: the manager and each plugin's document, rewritten once.
struct Site {
    manager: Arc<Manager>,
    specs: Vec<(Arc<ManagedPlugin>, NamespacedSpec)>,
    /// The management API's document, always part of the merged one.
    manage_spec: NamespacedSpec,
    datastore: Datastore,
}

/// Builds the whole application: every route of the contract. `token` guards `/manage`;
/// `max_json_body_bytes` caps the JSON bodies that the APIs read.
pub fn router(
    manager: Arc<Manager>,
    datastore: Datastore,
    manifest: BuildManifest,
    token: &str,
    max_json_body_bytes: usize,
) -> impl Endpoint<Output = Response> + 'static {
    let (manage_routes, manage_spec) =
        manage_routes(manager.clone(), manifest, max_json_body_bytes);

    let specs = manager
        .plugins()
        .iter()
        .filter_map(|plugin| {
            let spec: serde_json::Value = serde_json::from_str(plugin.spec()?).ok()?;
            let namespaced =
                NamespacedSpec::new(plugin.name(), plugin.descriptor().description, &spec);
            Some((plugin.clone(), namespaced))
        })
        .collect();
    let site = Arc::new(Site {
        manager: manager.clone(),
        specs,
        manage_spec,
        datastore,
    });

    let route = Route::new()
        .at("/", get(shell).data(site.clone()))
        .at("/openapi.json", get(merged_openapi).data(site.clone()))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz).data(site.clone()))
        .at("/metrics", get(prometheus_metrics))
        .nest("/static", EmbeddedFiles::static_assets())
        .nest(
            "/manage",
            RequireToken {
                token: Arc::from(token),
                inner: manage_routes,
            },
        );
    let route = manager.plugins().iter().fold(route, |route, plugin| {
        plugin_routes(route, plugin.clone(), max_json_body_bytes)
    });

    route.catch_all_error(|error: poem::Error| async move {
        if error.is_from_response() {
            return error.into_response();
        }
        error_response(error.status(), &error)
    })
}

/// The management API behind `/manage`: its service (with `Allow` on 405 and its own
/// words for a refused body), its document and its docs page; and its document
/// namespaced for the merged one.
fn manage_routes(
    manager: Arc<Manager>,
    manifest: BuildManifest,
    max_json_body_bytes: usize,
) -> (Route, NamespacedSpec) {
    let manage = poem_openapi::OpenApiService::new(
        ManageApi {
            manager,
            manifest: Arc::new(manifest),
        },
        "kneedeep management",
        crate::VERSION,
    )
    .description("Load and unload plugins, keep plugin sources, read the build manifest.")
    .server("/manage");
    let manage_document = manage.spec();
    let manage_value: serde_json::Value =
        serde_json::from_str(&manage_document).unwrap_or_else(|_| json!({}));
    let manage_spec = NamespacedSpec::new("manage", "The management API", &manage_value);
    let service = poem::IntoEndpoint::into_endpoint(manage).catch_error(
        |error: poem_openapi::error::ParseRequestPayloadError| async move {
            error_response(
                StatusCode::BAD_REQUEST,
                crate::manager::api::explain(&error),
            )
        },
    );
    let manage = WithAllow {
        inner: JsonBodyLimit {
            inner: service,
            limit: max_json_body_bytes,
        },
        allowed: Arc::new(AllowedMethods::from_document(&manage_value)),
    };

    let routes = Route::new()
        .at("/openapi.json", get(json_document(manage_document)))
        .at(
            "/docs",
            get(poem::endpoint::make_sync(|_| {
                docs_page("kneedeep management", "/manage/openapi.json")
            })),
        )
        .nest("/", manage);

    (routes, manage_spec)
}

/// Adds a plugin's routes under `/plugins/<name>`, each behind the plugin's gate: API,
/// document, docs page and UI.
///
/// They are entries of the one routing table rather than a table of their own, so that a
/// request to a plugin's API passes one router and one boxed endpoint on its way to the
/// plugin's OpenAPI service, as it would in a bare poem application.
fn plugin_routes(route: Route, plugin: Arc<ManagedPlugin>, max_json_body_bytes: usize) -> Route {
    let name = plugin.name();
    let gate = Arc::new(Gate {
        metrics: HttpMetrics::new(name),
        span: RequestSpan::new(name),
        plugin: plugin.clone(),
    });
    let prefix = format!("/plugins/{name}");
    let mut route = route;

    if let Some(api) = plugin.api() {
        let spec_url = format!("{prefix}/openapi.json");
        let document = serde_json::from_str(&api.spec).unwrap_or_else(|_| json!({}));
        let api_path = api_prefix(name);
        let endpoint = GatedApi {
            prefix: api_path.clone(),
            gate: gate.clone(),
            service: api.endpoint.clone(),
            allowed: AllowedMethods::from_document(&document),
            max_json_body_bytes,
        };
        let docs = poem::endpoint::make_sync(move |_| docs_page(name, &spec_url));
        route = route
            .nest(api_path, endpoint)
            .at(
                format!("{prefix}/openapi.json"),
                gate.around(json_document(api.spec.clone())),
            )
            .at(format!("{prefix}/docs"), gate.around(get(docs)));
    }
    if let Some(files) = plugin.descriptor().ui {
        route = route.nest(
            format!("{prefix}/ui"),
            gate.around(EmbeddedFiles::plugin_ui(files)),
        );
    }
    route
}

/// What every route of one plugin checks and records: whether the plugin is loaded, its
/// HTTP metrics, and the span its requests run in.
struct Gate {
    plugin: Arc<ManagedPlugin>,
    metrics: HttpMetrics,
    span: RequestSpan,
}

/// A request the gate let through: what its log line and metrics need.
struct Admitted {
    method: Method,
    /// The path as the client sent it; cloning a URI shares its bytes.
    uri: Uri,
    id: u64,
    started: Instant,
}

/// Numbers requests for their log lines and their `x-request-id` header.
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The response header that carries the request's number.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Gate {
    fn around<E>(self: &Arc<Self>, inner: E) -> Gated<E> {
        Gated {
            gate: self.clone(),
            inner,
        }
    }

    /// Lets a request in while the plugin is loaded, and numbers it; `None` while it is
    /// not, to be answered with [`Gate::refusal`].
    fn admit(&self, request: &Request) -> Option<Admitted> {
        if !self.plugin.is_loaded() {
            return None;
        }

        Some(Admitted {
            method: request.method().clone(),
            uri: request.original_uri().clone(),
            id: NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
        })
    }

    /// The answer while the plugin is not loaded.
    fn refusal(&self) -> Response {
        error_response(
            StatusCode::NOT_FOUND,
            format_args!("plugin '{}' is not loaded", self.plugin.name()),
        )
    }

    /// Records the request's metrics and its log line, and numbers the response. Called
    /// inside [`RequestSpan::run`].
    fn finish(&self, admitted: Admitted, result: poem::Result<Response>) -> Response {
        let mut response = match result {
            Ok(response) => response,
            Err(error) if error.is_from_response() => error.into_response(),
            Err(error) => error_response(error.status(), &error),
        };

        // FIXME(thin overhead margin on fast cores): with the metrics and the served line
        // below, a trivial request is served at 0.86 to 0.95 of bare poem's rate on one
        // core, with a p99 1.02 to 1.18 times bare poem's (`cargo xtask bench --only
        // overhead`; targets 0.85 and 1.25), but on a core that serves bare poem half again
        // faster, the code before the parked log writer measured 0.84 to 0.87. What is left
        // is spread thin: the histogram record, the line's formatting and copy, the writer
        // thread's batch writes on the same core, the span's enter and exit.
        let elapsed = admitted.started.elapsed();
        let status = response.status();
        self.metrics.record(&admitted.method, status, elapsed);
        self.span.served(&Served {
            id: admitted.id,
            method: admitted.method.as_str(),
            path: admitted.uri.path(),
            status: status.as_u16(),
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        });
        response
            .headers_mut()
            .insert(REQUEST_ID, request_id_value(admitted.id));
        response
    }
}

/// The `x-request-id` value of request `id`.
///
/// Its digits are cut from a buffer that this thread's responses share, so numbering a
/// response costs two atomic counts rather than an allocation and its release: the
/// buffer is given back once the last response cut from it is gone.
fn request_id_value(id: u64) -> header::HeaderValue {
    /// Bytes the buffer is grown by, enough for a few hundred ids.
    const REFILL: usize = 4096;

    thread_local! {
        static DIGITS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    }

    let mut number = itoa::Buffer::new();
    let digits = number.format(id).as_bytes();
    let cut = DIGITS.with_borrow_mut(|buffer| {
        if buffer.capacity() - buffer.len() < digits.len() {
            buffer.reserve(REFILL);
        }
        buffer.extend_from_slice(digits);
        buffer.split().freeze()
    });
    // Digits are always a valid header value; the fallback only keeps this panic-free.
    header::HeaderValue::from_maybe_shared(cut).unwrap_or_else(|_| header::HeaderValue::from(id))
}

/// One of a plugin's pages (document, docs, UI) behind its gate.
struct Gated<E> {
    gate: Arc<Gate>,
    inner: E,
}

impl<E: Endpoint<Output = Response>> Endpoint for Gated<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let Some(admitted) = self.gate.admit(&request) else {
            return Ok(self.gate.refusal());
        };
        let id = admitted.id;
        let served = async move {
            let result = self.inner.call(request).await;
            self.gate.finish(admitted, result)
        };
        Ok(self.gate.span.run(id, served).await)
    }
}

/// A plugin's API behind its gate: JSON bodies capped (413 past the cap), and 405
/// answers that say which methods the path allows.
///
/// This is every API request's path, so it is one async function, polled inside the
/// plugin's request span, that hands the request straight to the OpenAPI service's boxed
/// future. Each layer of async wrappers would hold its own copy of the request, and the
/// future that poem boxes per request would grow by kilobytes, which measurably costs
/// throughput.
struct GatedApi {
    /// Where the API is nested: `/plugins/<name>/api`.
    prefix: String,
    gate: Arc<Gate>,
    service: Arc<BoxEndpoint<'static>>,
    allowed: AllowedMethods,
    max_json_body_bytes: usize,
}

impl Endpoint for GatedApi {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let Some(admitted) = self.gate.admit(&request) else {
            return Ok(self.gate.refusal());
        };
        let id = admitted.id;
        Ok(self.gate.span.run(id, self.serve(request, admitted)).await)
    }
}

impl GatedApi {
    /// Serves an admitted request, inside [`RequestSpan::run`].
    async fn serve(&self, mut request: Request, admitted: Admitted) -> Response {
        if limit::is_json(&request) {
            let read = limit::read_json_body(&mut request, self.max_json_body_bytes);
            if let Err(refused) = Box::pin(read).await {
                return self.gate.finish(admitted, Ok(refused));
            }
        }
        let service: &dyn DynEndpoint<Output = Response> = &**self.service;
        let result = match service.call(request).await {
            Err(error) if error.status() == StatusCode::METHOD_NOT_ALLOWED => {
                Ok(error_response(StatusCode::METHOD_NOT_ALLOWED, &error))
            }
            other => other,
        }
        .map(|response| {
            let path = admitted.uri.path();
            let in_api = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
            self.allowed.add_allow_header(in_api, response)
        });
        self.gate.finish(admitted, result)
    }
}

/// Serves a JSON document built once.
fn json_document(document: String) -> impl Endpoint<Output = Response> {
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(document.clone())
    })
}

/// A Swagger UI page: it points the shared assets at one document.
fn docs_page(title: &str, spec_url: &str) -> Response {
    let page = format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} — API docs</title>
  <link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{ url: "{spec_url}", dom_id: "#swagger-ui" }});
  </script>
</body>
</html>
"##
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

const SHELL_TEMPLATE: &str = include_str!("../assets/shell.html");

#[handler]
fn shell(site: poem::web::Data<&Arc<Site>>) -> Response {
    let mut cards = String::new();
    for plugin in site.manager.plugins().iter().filter(|p| p.is_loaded()) {
        let descriptor = plugin.descriptor();
        let name = escape_html(descriptor.name);
        let open = match descriptor.ui {
            Some(_) => format!(r#"<a href="/plugins/{name}/ui/">Open</a> "#),
            None => String::new(),
        };
        cards.push_str(&format!(
            r#"<li class="plugin-card"><h2>{name} <span class="version">v{version}</span></h2><p>{description}</p><nav>{open}<a href="/plugins/{name}/docs">API docs</a></nav></li>
"#,
            version = escape_html(descriptor.version),
            description = escape_html(descriptor.description),
        ));
    }
    if cards.is_empty() {
        cards.push_str(r#"<li class="empty">No plugin is loaded.</li>"#);
    }

    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(SHELL_TEMPLATE.replacen("<!--plugins-->", &cards, 1))
}

#[handler]
fn merged_openapi(site: poem::web::Data<&Arc<Site>>) -> Response {
    let loaded = site
        .specs
        .iter()
        .filter(|(plugin, _)| plugin.is_loaded())
        .map(|(_, spec)| spec);
    let documents = loaded.chain(std::iter::once(&site.manage_spec));
    let document = openapi::merge("kneedeep", crate::VERSION, documents);
    Response::builder()
        .content_type("application/json")
        .body(document.to_string())
}

#[handler]
fn healthz() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Ready when the datastore answers.
#[handler]
async fn readyz(site: poem::web::Data<&Arc<Site>>) -> Response {
    match site.datastore.ping().await {
        Ok(()) => Response::builder()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format_args!("datastore unreachable: {error}"),
            )
        }
    }
}

#[handler]
fn prometheus_metrics() -> Response {
    let Some(handle) = crate::metrics::install() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed",
        );
    };
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_stay_whole_while_their_buffer_is_refilled() {
        // About 14 KiB of digits: the shared buffer is refilled several times while every
        // earlier value is still alive.
        let values: Vec<_> = (999_000..1_001_000)
            .chain([u64::MAX, 1])
            .map(|id| (id, request_id_value(id)))
            .collect();

        for (id, value) in &values {
            assert_eq!(value.to_str().unwrap(), id.to_string());
        }
        drop(values);
        assert_eq!(request_id_value(42), "42");
    }
}
