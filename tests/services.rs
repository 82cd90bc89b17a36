//! The services a plugin gets, seen from outside the real binary: Prometheus metrics
//! labelled per plugin, log events that carry the plugin's name, and configuration
//! layered from the file and the environment.

mod support;

use prometheus_parse::{Sample, Scrape, Value as MetricValue};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Kneedeep, client};

/// Scrapes `GET /metrics` and parses it with a real parser of the Prometheus format.
async fn scrape(server: &Kneedeep) -> Scrape {
    let response = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );

    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    Scrape::parse(lines).expect("valid Prometheus text")
}

/// The samples of `metric` whose labels include every one of `labels`.
fn samples<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .filter(|sample| {
            labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
        })
        .collect()
}

/// The value of the one counter or gauge sample of `metric` with `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, metric, labels);
    assert_eq!(
        found.len(),
        1,
        "one sample of {metric} {labels:?}, found {found:?}"
    );
    match found[0].value {
        MetricValue::Counter(value) | MetricValue::Gauge(value) | MetricValue::Untyped(value) => {
            value
        }
        ref other => panic!("{metric} is not a counter or gauge: {other:?}"),
    }
}

async fn create_note(server: &Kneedeep, title: &str) -> reqwest::Response {
    client()
        .post(server.url("/plugins/notes/api/notes"))
        .json(&json!({ "title": title, "body": "text" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn metrics_count_each_plugins_requests_datastore_use_and_own_metrics() {
    let server = Kneedeep::start("");
    let http = client();
    for _ in 0..3 {
        let hello = http
            .get(server.url("/plugins/hello/api/hello?name=x"))
            .send()
            .await
            .unwrap();
        assert_eq!(hello.status(), StatusCode::OK);
    }
    assert_eq!(
        create_note(&server, "first").await.status(),
        StatusCode::CREATED
    );
    let missing = http
        .get(server.url("/plugins/notes/api/notes/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let scrape = scrape(&server).await;
    let requests = "kneedeep_http_requests_total";
    let hello_ok = [("plugin", "hello"), ("method", "GET"), ("status", "2xx")];
    assert_eq!(value(&scrape, requests, &hello_ok), 3.0);
    let notes_created = [("plugin", "notes"), ("method", "POST"), ("status", "2xx")];
    assert_eq!(value(&scrape, requests, &notes_created), 1.0);
    let notes_missing = [("plugin", "notes"), ("method", "GET"), ("status", "4xx")];
    assert_eq!(value(&scrape, requests, &notes_missing), 1.0);

    let latency = samples(
        &scrape,
        "kneedeep_http_request_duration_seconds",
        &[("plugin", "hello")],
    );
    let MetricValue::Histogram(buckets) = &latency[0].value else {
        panic!("latency is not a histogram: {latency:?}");
    };
    let observed = buckets
        .iter()
        .map(|bucket| bucket.count)
        .fold(0.0, f64::max);
    assert_eq!(
        observed, 3.0,
        "every hello request is in the histogram: {buckets:?}"
    );

    for plugin in ["files", "hello", "notes"] {
        assert_eq!(
            value(&scrape, "kneedeep_plugin_loaded", &[("plugin", plugin)]),
            1.0
        );
    }
    let puts = [("plugin", "notes"), ("operation", "put")];
    assert_eq!(
        value(&scrape, "kneedeep_datastore_operations_total", &puts),
        1.0
    );
    assert!(value(&scrape, "kneedeep_datastore_bytes_total", &puts) > 0.0);
    assert_eq!(
        value(&scrape, "notes_created_total", &[("plugin", "notes")]),
        1.0
    );
}

/// The JSON log lines the server printed, once one of them is a `served` line of
/// `plugin`: the process writes its log after it answers, so a test waits for it.
async fn json_lines_after_served(server: &Kneedeep, plugin: &str) -> Vec<Value> {
    for _ in 0..100 {
        let output = server.output();
        let lines: Vec<Value> = output
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let served = |line: &Value| {
            line["fields"]["message"] == "served" && line["span"]["plugin"] == plugin
        };
        if lines.iter().any(served) {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no request line of {plugin} within 5 s:\n{}",
        server.output()
    );
}

#[tokio::test]
async fn every_event_of_a_plugin_request_carries_the_plugin_and_each_request_one_line() {
    let server = Kneedeep::start("[log]\nformat = \"json\"\nlevel = \"info\"\n");
    let created = create_note(&server, "logged").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let request_id: u64 = created.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    // The plugin's own event: notes logs nothing about its name, the framework adds it.
    let lines = json_lines_after_served(&server, "notes").await;
    let own = lines
        .iter()
        .find(|line| line["fields"]["message"] == "note created")
        .unwrap_or_else(|| panic!("no 'note created' event in {lines:#?}"));
    assert_eq!(own["span"]["plugin"], "notes", "{own}");
    assert_eq!(own["span"]["id"], request_id, "{own}");

    let served: Vec<&Value> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == "served")
        .filter(|line| line["span"]["id"] == request_id)
        .collect();
    assert_eq!(served.len(), 1, "exactly one request line: {served:#?}");
    let served = served[0];
    assert_eq!(served["level"], "INFO");
    assert_eq!(served["span"]["plugin"], "notes");
    assert_eq!(served["fields"]["method"], "POST");
    assert_eq!(served["fields"]["path"], "/plugins/notes/api/notes");
    assert_eq!(served["fields"]["status"], 201);
    assert!(served["fields"]["latency_us"].is_u64(), "{served}");
}

#[tokio::test]
async fn a_level_directive_naming_a_plugin_applies_to_its_requests_only() {
    // `kneedeep::cli=info` keeps the line that says where the server listens.
    let config = "[log]\nformat = \"json\"\nlevel = \"warn,kneedeep::cli=info,notes=info\"\n";
    let server = Kneedeep::start(config);
    // hello first: its line, if it were written, comes before the one the test waits for.
    let hello = client()
        .get(server.url("/plugins/hello/api/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    assert_eq!(
        create_note(&server, "loud").await.status(),
        StatusCode::CREATED
    );

    let served: Vec<String> = json_lines_after_served(&server, "notes")
        .await
        .iter()
        .filter(|line| line["fields"]["message"] == "served")
        .map(|line| line["span"]["plugin"].to_string())
        .collect();
    assert_eq!(served, ["\"notes\""], "hello is at warn, notes at info");
}

#[tokio::test]
async fn an_environment_variable_overrides_the_file_and_reaches_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KNEEDEEP_PLUGINS__NOTES__MAX_NOTE_BYTES", "8"),
        // Not config keys: the tests' own settings must not stop the server.
        ("KNEEDEEP_TEST_POSTGRES_URL", "postgres://elsewhere/db"),
        ("KNEEDEEP_UNRELATED", "1"),
    ];
    let server = Kneedeep::start_with_env(dir, "[plugins.notes]\nmax_note_bytes = 4096\n", &env);

    let refused = create_note(&server, "longer than eight bytes").await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("max_note_bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn readiness_reports_the_datastore() {
    let server = Kneedeep::start("");
    let response = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "status": "ready" }));
}

#[tokio::test]
async fn a_json_body_over_the_cap_is_refused_before_it_is_read_whole() {
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nmax_json_body_bytes = 4096\n\n\
                  [manage]\ntoken = \"t\"\n";
    let server = Kneedeep::start(config);
    let padded = format!(
        "{{\"title\": \"pad\", \"body\": \"x\"{}}}",
        " ".repeat(10_000)
    );

    for (path, token) in [
        ("/plugins/notes/api/notes", None),
        ("/manage/sources", Some("t")),
    ] {
        let mut request = client()
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(padded.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("server.max_json_body_bytes"), "{message}");
    }

    let small = create_note(&server, "fits").await;
    assert_eq!(small.status(), StatusCode::CREATED);
}

#[test]
fn check_config_reports_values_their_types_cannot_catch() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[datastore]\nurl = \"mysql://db/x\"\n\n[manage]\ntoken = \" \"\n\n\
                  [[plugin_sources]]\nurl = \"ftp://example.org/a.tgz\"\nsha256 = \"zz\"\n";
    std::fs::write(dir.path().join("kneedeep.toml"), config).unwrap();

    let (code, _, stderr) = support::run_command(dir.path(), &["check-config"]);
    assert_ne!(code, 0);
    for expected in [
        "key 'datastore.url'",
        "key 'manage.token': it is empty",
        "key 'plugin_sources[0]'",
    ] {
        assert!(stderr.contains(expected), "{expected} in:\n{stderr}");
    }
    let (code, _, stderr) = support::run_command(dir.path(), &["serve"]);
    assert_ne!(code, 0, "serve refuses the same config:\n{stderr}");
}
