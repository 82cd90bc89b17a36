//! The metrics service: the `metrics` facade with a Prometheus recorder, rendered at
//! `GET /metrics`. The framework records per-plugin HTTP and datastore metrics; a plugin
//! records its own through [`PluginMetrics`], which adds `plugin="<name>"`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::http::{Method, StatusCode};

pub use ::metrics::{Counter, Gauge, Histogram};

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// How often the recorder's upkeep runs, which keeps histograms bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls return the same
/// handle. `None` when another recorder was installed first.
pub(crate) fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Runs the recorder's upkeep forever; spawn it once.
pub(crate) async fn upkeep(handle: &'static PrometheusHandle) {
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        interval.tick().await;
        handle.run_upkeep();
    }
}

/// The metrics a plugin records through its context; each carries `plugin="<name>"`.
#[derive(Clone, Copy, Debug)]
pub struct PluginMetrics {
    plugin: &'static str,
}

impl PluginMetrics {
    pub(crate) fn new(plugin: &'static str) -> Self {
        PluginMetrics { plugin }
    }

    /// A counter named `name`, labelled with the plugin.
    pub fn counter(&self, name: &'static str) -> Counter {
        ::metrics::counter!(name, "plugin" => self.plugin)
    }

    /// A gauge named `name`, labelled with the plugin.
    pub fn gauge(&self, name: &'static str) -> Gauge {
        ::metrics::gauge!(name, "plugin" => self.plugin)
    }

    /// A histogram named `name`, labelled with the plugin.
    pub fn histogram(&self, name: &'static str) -> Histogram {
        ::metrics::histogram!(name, "plugin" => self.plugin)
    }
}

/// The HTTP metrics of one plugin: requests by method and status class, and a latency
/// histogram. Each series is registered the first time it is recorded and kept, so the
/// request path only bumps atomics, and a plugin nobody calls holds no series.
pub(crate) struct HttpMetrics {
    plugin: &'static str,
    requests: [[OnceLock<Counter>; STATUS_CLASSES.len()]; METHODS.len()],
    latency: OnceLock<Histogram>,
}

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "other",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl HttpMetrics {
    pub(crate) fn new(plugin: &'static str) -> Self {
        HttpMetrics {
            plugin,
            requests: Default::default(),
            latency: OnceLock::new(),
        }
    }

    pub(crate) fn record(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        let method = match *method {
            Method::GET => 0,
            Method::POST => 1,
            Method::PUT => 2,
            Method::DELETE => 3,
            Method::HEAD => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            _ => 7,
        };
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        let plugin = self.plugin;

        self.requests[method][class]
            .get_or_init(|| {
                ::metrics::counter!(
                    "kneedeep_http_requests_total",
                    "plugin" => plugin, "method" => METHODS[method], "status" => STATUS_CLASSES[class]
                )
            })
            .increment(1);
        self.latency
            .get_or_init(|| {
                ::metrics::histogram!("kneedeep_http_request_duration_seconds", "plugin" => plugin)
            })
            .record(elapsed.as_secs_f64());
    }
}

/// Records a plugin's loaded state (1 or 0).
pub(crate) fn plugin_loaded(plugin: &'static str, loaded: bool) {
    ::metrics::gauge!("kneedeep_plugin_loaded", "plugin" => plugin)
        .set(f64::from(u8::from(loaded)));
}

/// Records one datastore operation of a plugin and the value bytes it moved.
pub(crate) fn datastore_operation(plugin: &'static str, operation: &'static str, bytes: u64) {
    ::metrics::counter!("kneedeep_datastore_operations_total", "plugin" => plugin, "operation" => operation)
        .increment(1);
    if bytes > 0 {
        ::metrics::counter!("kneedeep_datastore_bytes_total", "plugin" => plugin, "operation" => operation)
            .increment(bytes);
    }
}
