//! End to end over a real socket: the stock `kneedeep` binary serves the shell, and each
//! in-tree plugin's API, document, docs and UI, behind its gate.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Kneedeep, client, run_command};

const PLUGINS: [&str; 3] = ["files", "hello", "notes"];

async fn get_json(url: &str) -> (StatusCode, Value) {
    let response = client().get(url).send().await.expect("GET");
    let status = response.status();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn shell_lists_every_loaded_plugin_with_links_to_ui_and_docs() {
    let server = Kneedeep::start("");

    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();

    for plugin in PLUGINS {
        assert!(
            page.contains(&format!("href=\"/plugins/{plugin}/ui/\"")),
            "{plugin} UI link"
        );
        assert!(
            page.contains(&format!("href=\"/plugins/{plugin}/docs\"")),
            "{plugin} docs link"
        );
    }
    assert!(
        page.contains("Says hello to whoever asks."),
        "description from the doc comment"
    );
}

#[tokio::test]
async fn each_plugin_serves_its_api_document_docs_and_ui() {
    let server = Kneedeep::start("");

    let (status, body) = get_json(&server.url("/plugins/hello/api/hello?name=ada")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "message": "hello, ada" }))
    );

    for plugin in PLUGINS {
        let (status, document) =
            get_json(&server.url(&format!("/plugins/{plugin}/openapi.json"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(document["info"]["title"], plugin);
        assert_eq!(
            document["servers"][0]["url"],
            format!("/plugins/{plugin}/api")
        );

        let docs = client()
            .get(server.url(&format!("/plugins/{plugin}/docs")))
            .send()
            .await
            .unwrap();
        assert_eq!(docs.status(), StatusCode::OK);
        let page = docs.text().await.unwrap();
        assert!(
            page.contains(&format!("/plugins/{plugin}/openapi.json")),
            "docs point at the document"
        );

        let ui = client()
            .get(server.url(&format!("/plugins/{plugin}/ui/")))
            .send()
            .await
            .unwrap();
        assert_eq!(ui.status(), StatusCode::OK);
        assert_eq!(ui.headers()["content-type"], "text/html");
        assert!(ui.text().await.unwrap().contains("<!DOCTYPE html>"));
    }
}

#[tokio::test]
async fn ui_without_trailing_slash_redirects_and_assets_have_types_and_etags() {
    let server = Kneedeep::start("");
    let http = client();

    let redirect = http
        .get(server.url("/plugins/notes/ui"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/plugins/notes/ui/");

    let script = http
        .get(server.url("/plugins/notes/ui/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript");
    let etag = script.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "a quoted sha256: {etag}"
    );

    let again = http
        .get(server.url("/plugins/notes/ui/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let missing = http
        .get(server.url("/plugins/notes/ui/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let css = http
        .get(server.url("/static/kneedeep.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css");
}

#[tokio::test]
async fn every_docs_page_uses_the_one_shared_copy_of_swagger_ui() {
    let server = Kneedeep::start("");
    let http = client();

    for plugin in PLUGINS {
        let page = http
            .get(server.url(&format!("/plugins/{plugin}/docs")))
            .send()
            .await
            .unwrap();
        let page = page.text().await.unwrap();
        assert!(
            page.contains("src=\"/static/swagger-ui/swagger-ui-bundle.js\""),
            "{plugin}: {page}"
        );
        assert!(
            page.len() < 4096,
            "the page only points at the shared bundle"
        );
    }

    let bundle = http
        .get(server.url("/static/swagger-ui/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 1_000_000);
}

/// The router's own answer for a path that matched nothing.
fn is_route_miss(status: StatusCode, body: &str) -> bool {
    status == StatusCode::NOT_FOUND && body.contains("\"not found\"")
        || status == StatusCode::METHOD_NOT_ALLOWED
}

/// Sends every operation of `document` to `base` + its path (with `x` for each path
/// parameter) and returns those that the router, not a handler, answered.
async fn unreachable_operations(base: &str, document: &Value) -> Vec<String> {
    let http = client();
    let mut missed = Vec::new();

    for (path, item) in document["paths"].as_object().expect("paths") {
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = http
                .request(method.clone(), format!("{base}{concrete}"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if is_route_miss(status, &body) {
                missed.push(format!("{method} {concrete} -> {status} {body}"));
            }
        }
    }
    missed
}

#[tokio::test]
async fn every_operation_of_every_plugin_document_reaches_its_handler() {
    let server = Kneedeep::start("");

    for plugin in PLUGINS {
        let (_, document) = get_json(&server.url(&format!("/plugins/{plugin}/openapi.json"))).await;
        let api_base = server.url(document["servers"][0]["url"].as_str().unwrap());
        let operations = document["paths"].as_object().unwrap().len();
        assert!(operations > 0, "{plugin} documents operations");

        let missed = unreachable_operations(&api_base, &document).await;
        assert!(
            missed.is_empty(),
            "{plugin}: no prefix may be missing or doubled: {missed:#?}"
        );
    }
}

#[tokio::test]
async fn merged_document_namespaces_schemas_and_operation_ids_per_plugin() {
    let server = Kneedeep::start("");
    let (status, merged) = get_json(&server.url("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);

    let schemas = merged["components"]["schemas"].as_object().unwrap();
    assert!(
        schemas.contains_key("notes.Item") && schemas.contains_key("files.Item"),
        "{schemas:?}"
    );
    assert!(!schemas.contains_key("Item"));

    let list = |path: &str| merged["paths"][path]["get"]["operationId"].clone();
    assert_eq!(list("/plugins/notes/api/notes"), "notes.list");
    assert_eq!(list("/plugins/files/api/files"), "files.list");

    let text = merged.to_string();
    assert!(
        !text.contains("\"#/components/schemas/Item\""),
        "every $ref is namespaced"
    );

    let missed = unreachable_operations(&server.base, &merged).await;
    assert!(
        missed.is_empty(),
        "merged paths carry their full prefix: {missed:#?}"
    );
}

#[tokio::test]
async fn a_plugin_disabled_in_config_is_gone_from_its_routes_the_shell_and_the_document() {
    let server = Kneedeep::start("[plugins.hello]\nenabled = false\n");
    let http = client();

    let (status, body) = get_json(&server.url("/plugins/hello/api/hello?name=x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "error": "plugin 'hello' is not loaded" }));

    for path in [
        "/plugins/hello/openapi.json",
        "/plugins/hello/docs",
        "/plugins/hello/ui/",
    ] {
        let response = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let shell = http
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !shell.contains("/plugins/hello/"),
        "the shell leaves hello out"
    );
    assert!(shell.contains("/plugins/notes/"), "and keeps the others");

    let (_, merged) = get_json(&server.url("/openapi.json")).await;
    let paths = merged["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|path| !path.starts_with("/plugins/hello/")),
        "{paths:?}"
    );
    assert!(paths.contains_key("/plugins/notes/api/notes"));
}

#[tokio::test]
async fn unknown_routes_answer_404_with_a_json_error() {
    let server = Kneedeep::start("");

    for path in ["/nope", "/plugins/nope/api/x", "/plugins/hello/api/nope"] {
        let (status, body) = get_json(&server.url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_method_a_path_does_not_take_is_a_405_that_says_which_it_takes() {
    let server = Kneedeep::start("");

    for (path, allowed) in [
        ("/plugins/notes/api/notes", "GET, POST"),
        ("/plugins/notes/api/notes/some-id", "GET, PUT, DELETE"),
    ] {
        let response = client().patch(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(response.headers()["allow"], allowed, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_malformed_request_is_a_400_with_a_json_error() {
    let server = Kneedeep::start("");

    let response = client()
        .post(server.url("/plugins/notes/api/notes"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("parse"), "{body}");

    let (status, body) = get_json(&server.url("/plugins/notes/api/notes?limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
}

#[tokio::test]
async fn notes_can_be_created_listed_paged_updated_and_deleted() {
    let server = Kneedeep::start("");
    let http = client();
    let notes = server.url("/plugins/notes/api/notes");

    let mut ids = Vec::new();
    for title in ["one", "two", "three"] {
        let response = http
            .post(&notes)
            .json(&json!({ "title": title, "body": "b" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let note: Value = response.json().await.unwrap();
        assert_eq!(note["title"], title);
        assert_eq!(note["created"], note["updated"]);
        ids.push(note["id"].as_str().unwrap().to_owned());
    }

    let (_, first) = get_json(&format!("{notes}?limit=2")).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next"].as_str().expect("a next cursor");
    let (_, second) = get_json(&format!("{notes}?limit=2&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["title"], "three");
    assert_eq!(second["next"], Value::Null);

    let one = format!("{notes}/{}", ids[0]);
    let updated = http
        .put(&one)
        .json(&json!({ "title": "uno", "body": "c" }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let (_, read) = get_json(&one).await;
    assert_eq!(
        (read["title"].as_str(), read["body"].as_str()),
        (Some("uno"), Some("c"))
    );

    assert_eq!(
        http.delete(&one).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let (status, body) = get_json(&one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains(&ids[0]));
}

#[tokio::test]
async fn files_keep_their_bytes_and_content_type() {
    let server = Kneedeep::start("");
    let http = client();
    let file = server.url("/plugins/files/api/files/report%20v1.csv");
    let content = b"a,b\n1,2\n".repeat(1000);

    let put = http
        .put(&file)
        .header("content-type", "text/csv")
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let written: Value = put.json().await.unwrap();
    assert_eq!(written["name"], "report v1.csv");
    assert_eq!(written["size"], content.len());

    let got = http.get(&file).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "text/csv");
    let quoted_etag = format!("\"{}\"", written["etag"].as_str().unwrap());
    assert_eq!(got.headers()["etag"], quoted_etag.as_str());
    assert_eq!(got.bytes().await.unwrap().as_ref(), content.as_slice());

    let head = http.head(&file).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        content.len().to_string().as_str()
    );

    let (_, list) = get_json(&server.url("/plugins/files/api/files")).await;
    assert_eq!(list["items"][0]["name"], "report v1.csv");
    assert_eq!(list["items"][0]["content_type"], "text/csv");

    assert_eq!(
        http.delete(&file).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get(&file).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn health_check_answers() {
    let server = Kneedeep::start("");
    let (status, body) = get_json(&server.url("/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "status": "ok" })));
}

#[test]
fn sigterm_stops_the_server_gracefully_and_promptly() {
    let server = Kneedeep::start("");
    let (status, took, _) = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(15));
}

#[test]
fn plugins_command_lists_exactly_the_linked_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_command(dir.path(), &["plugins"]);
    assert_eq!(code, 0, "{stderr}");

    let names: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(names, PLUGINS);
    assert!(
        stdout
            .lines()
            .skip(1)
            .all(|line| line.contains("0.1.0") && line.contains("in-tree")),
        "{stdout}"
    );
}

#[test]
fn version_shows_the_build_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run_command(dir.path(), &["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("kneedeep 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("3 plugins: files 0.1.0, hello 0.1.0, notes 0.1.0"),
        "{stdout}"
    );
}

#[test]
fn check_config_reports_every_bad_plugin_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kneedeep.toml"),
        "[plugins.notes]\nmax_note_bytes = \"big\"\n\n[plugins.hello]\ncolour = 1\n",
    )
    .unwrap();

    let (code, _, stderr) = run_command(dir.path(), &["check-config"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("plugin 'notes': key 'max_note_bytes': invalid type"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plugin 'hello': key 'colour': unknown key"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("kneedeep.toml"),
        "[plugins.notes]\nmax_note_bytes = 10\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_command(dir.path(), &["check-config"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("config is valid"));
}

#[test]
fn a_bad_plugin_table_fails_startup_naming_plugin_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kneedeep.toml"),
        "[plugins.notes]\nmax_note_bytes = -1\n",
    )
    .unwrap();

    let (code, _, stderr) = run_command(dir.path(), &["serve"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("plugin 'notes': key 'max_note_bytes'"),
        "{stderr}"
    );
}
