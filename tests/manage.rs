//! The management API of the real binary: the token on every route, load and unload in
//! force from the next request, sources, the build manifest, states that survive a
//! restart on SQLite and on PostgreSQL, and replicas on one PostgreSQL kept in step.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Kneedeep, PostgresDatabase, client};

const TOKEN: &str = "test-token-0123456789";

fn config_with_token(extra: &str) -> String {
    format!("[manage]\ntoken = \"{TOKEN}\"\n\n{extra}")
}

/// A management request with the token.
async fn manage(
    server: &Kneedeep,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client()
        .request(method, server.url(path))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("a management request");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

async fn status_of(server: &Kneedeep, path: &str) -> StatusCode {
    client()
        .get(server.url(path))
        .send()
        .await
        .expect("GET")
        .status()
}

async fn plugin_state(server: &Kneedeep, name: &str) -> String {
    let (status, plugin) = manage(
        server,
        Method::GET,
        &format!("/manage/plugins/{name}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plugin}");
    plugin["state"].as_str().unwrap().to_owned()
}

/// Every management route, with a body where it takes one.
const ROUTES: [(&str, &str); 10] = [
    ("GET", "/manage/plugins"),
    ("GET", "/manage/plugins/notes"),
    ("POST", "/manage/plugins/notes/load"),
    ("POST", "/manage/plugins/notes/unload"),
    ("GET", "/manage/sources"),
    ("POST", "/manage/sources"),
    ("DELETE", "/manage/sources/0123456789abcdef"),
    ("GET", "/manage/build"),
    ("GET", "/manage/openapi.json"),
    ("GET", "/manage/docs"),
];

#[tokio::test]
async fn every_management_route_needs_the_bearer_token_from_every_address() {
    let server = Kneedeep::start(&config_with_token(""));
    let http = client();

    for (method, path) in ROUTES {
        let method: Method = method.parse().unwrap();
        let attempts = [
            ("no token", None, vec![]),
            ("a wrong token", Some("Bearer wrong-token"), vec![]),
            (
                "the token in another scheme",
                Some(&*format!("Basic {TOKEN}")),
                vec![],
            ),
            (
                "spoofed forwarding headers from loopback",
                None,
                vec![
                    ("X-Forwarded-For", "127.0.0.1"),
                    ("X-Real-IP", "127.0.0.1"),
                    ("Forwarded", "for=127.0.0.1"),
                ],
            ),
        ];
        for (what, authorization, headers) in attempts {
            let mut request = http
                .request(method.clone(), server.url(path))
                .json(&json!({ "url": "https://example.org/a.tar.gz" }));
            if let Some(authorization) = authorization {
                request = request.header("Authorization", authorization);
            }
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {what}"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }

    // The scheme's case does not matter (RFC 9110), the token's does.
    let lowercase = http
        .get(server.url("/manage/plugins"))
        .header("Authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lowercase.status(), StatusCode::OK);
    let wrong_case = http
        .get(server.url("/manage/plugins"))
        .header("Authorization", format!("Bearer {}", TOKEN.to_uppercase()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_case.status(), StatusCode::UNAUTHORIZED);

    // Nothing those requests tried happened.
    assert_eq!(plugin_state(&server, "notes").await, "loaded");
    let (_, sources) = manage(&server, Method::GET, "/manage/sources", None).await;
    assert_eq!(sources, json!([]));

    for (method, path) in ROUTES {
        let body = (method == "POST").then(|| json!({ "url": "https://example.org/a.tar.gz" }));
        let (status, _) = manage(&server, method.parse().unwrap(), path, body).await;
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with the token"
        );
        assert!(!status.is_server_error(), "{method} {path}: {status}");
    }
}

#[tokio::test]
async fn a_get_never_changes_state() {
    let server = Kneedeep::start(&config_with_token(""));
    for path in ["/manage/plugins/notes/unload", "/manage/plugins/notes/load"] {
        let (status, body) = manage(&server, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "GET {path}: {body}");
    }
    assert_eq!(plugin_state(&server, "notes").await, "loaded");
    assert_eq!(
        status_of(&server, "/plugins/notes/api/notes").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_a_configured_token_one_is_generated_owner_only_and_its_file_logged() {
    let server = Kneedeep::start("");
    let file = server.dir.path().join("kneedeep-data").join("manage-token");
    let token = std::fs::read_to_string(&file).expect("the generated token file");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }
    assert!(
        server.output().contains("manage-token"),
        "{}",
        server.output()
    );

    let response = client()
        .get(server.url("/manage/plugins"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn plugins_are_listed_with_state_urls_and_source() {
    let server = Kneedeep::start(&config_with_token(""));
    let (status, plugins) = manage(&server, Method::GET, "/manage/plugins", None).await;
    assert_eq!(status, StatusCode::OK);

    let names: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["files", "hello", "notes"]);
    let notes = &plugins[2];
    assert_eq!(notes["version"], "0.1.0");
    assert_eq!(
        notes["description"],
        "Short notes: add, list, edit and delete them."
    );
    assert_eq!(notes["state"], "loaded");
    assert_eq!(notes["error"], Value::Null);
    assert_eq!(notes["api"], "/plugins/notes/api");
    assert_eq!(notes["openapi"], "/plugins/notes/openapi.json");
    assert_eq!(notes["docs"], "/plugins/notes/docs");
    assert_eq!(notes["ui"], "/plugins/notes/ui/");
    assert_eq!(notes["source"]["kind"], "in-tree");

    let (status, one) = manage(&server, Method::GET, "/manage/plugins/hello", None).await;
    assert_eq!((status, &one["name"]), (StatusCode::OK, &json!("hello")));

    for path in [
        "/manage/plugins/ghost",
        "/manage/plugins/ghost/load",
        "/manage/plugins/ghost/unload",
    ] {
        let method = if path.ends_with("ghost") {
            Method::GET
        } else {
            Method::POST
        };
        let (status, body) = manage(&server, method, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "no plugin named 'ghost' is compiled in");
    }
}

#[tokio::test]
async fn unload_hides_the_plugin_at_once_and_load_brings_it_back() {
    let server = Kneedeep::start(&config_with_token(""));

    for _ in 0..2 {
        let (status, body) =
            manage(&server, Method::POST, "/manage/plugins/notes/unload", None).await;
        assert_eq!(
            (status, &body["state"]),
            (StatusCode::OK, &json!("unloaded")),
            "idempotent"
        );
    }
    let api = client()
        .get(server.url("/plugins/notes/api/notes"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    let error: Value = api.json().await.unwrap();
    assert_eq!(error, json!({ "error": "plugin 'notes' is not loaded" }));
    for path in [
        "/plugins/notes/openapi.json",
        "/plugins/notes/docs",
        "/plugins/notes/ui/",
    ] {
        assert_eq!(
            status_of(&server, path).await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let shell = client()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !shell.contains("/plugins/notes/"),
        "the shell leaves notes out"
    );
    assert!(shell.contains("/plugins/hello/"));
    let merged: Value = client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&String> = merged["paths"].as_object().unwrap().keys().collect();
    assert!(
        paths
            .iter()
            .all(|path| !path.starts_with("/plugins/notes/")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|path| path.starts_with("/manage/plugins")),
        "{paths:?}"
    );

    for _ in 0..2 {
        let (status, body) =
            manage(&server, Method::POST, "/manage/plugins/notes/load", None).await;
        assert_eq!(
            (status, &body["state"]),
            (StatusCode::OK, &json!("loaded")),
            "idempotent"
        );
    }
    assert_eq!(
        status_of(&server, "/plugins/notes/api/notes").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sources_are_checked_kept_and_forgotten() {
    let server = Kneedeep::start(&config_with_token(""));
    let url = "https://example.org/weather-0.2.0.tar.gz";
    let sha256 = "ab".repeat(32);

    let (status, created) = manage(
        &server,
        Method::POST,
        "/manage/sources",
        Some(json!({ "url": url, "sha256": sha256 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["url"], url);
    assert_eq!(created["sha256"], sha256);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 16);

    let (status, body) = manage(
        &server,
        Method::POST,
        "/manage/sources",
        Some(json!({ "url": url })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");

    let refused = [
        (
            json!({ "url": "ftp://example.org/a.tar" }),
            "url must be an https or http URL",
        ),
        (
            json!({ "url": "not a url" }),
            "url must be an https or http URL",
        ),
        (
            json!({ "url": "https:///a.tar" }),
            "url must be an https or http URL",
        ),
        (
            json!({ "url": "https://user:secret@example.org/a.tar" }),
            "without credentials",
        ),
        (
            json!({ "url": "https://example.org/b.tgz", "sha256": "xyz" }),
            "sha256 must be 64 hex digits",
        ),
        (json!({ "url": 42 }), "url"),
        (json!({}), "NewSource"),
    ];
    for (body, reason) in refused {
        let (status, error) =
            manage(&server, Method::POST, "/manage/sources", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains(reason),
            "{body}: {error}"
        );
    }
    let not_json = client()
        .post(server.url("/manage/sources"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body(url)
        .send()
        .await
        .unwrap();
    assert!(not_json.status().is_client_error(), "{}", not_json.status());

    let (_, sources) = manage(&server, Method::GET, "/manage/sources", None).await;
    assert_eq!(sources.as_array().unwrap().len(), 1);
    assert_eq!(sources[0]["id"], id.as_str());

    let path = format!("/manage/sources/{id}");
    let (status, _) = manage(&server, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = manage(&server, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, sources) = manage(&server, Method::GET, "/manage/sources", None).await;
    assert_eq!(sources, json!([]));
}

#[tokio::test]
async fn the_build_manifest_and_the_documents_are_served() {
    let server = Kneedeep::start(&config_with_token(""));
    let (status, build) = manage(&server, Method::GET, "/manage/build", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(build["framework_version"], "0.1.0");
    let plugins: Vec<(&str, &str)> = build["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        plugins,
        [
            ("files", "in-tree"),
            ("hello", "in-tree"),
            ("notes", "in-tree")
        ]
    );

    let (status, document) = manage(&server, Method::GET, "/manage/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["servers"][0]["url"], "/manage");
    assert!(
        document["paths"]["/plugins/{name}/load"]["post"].is_object(),
        "{document}"
    );

    let docs = client()
        .get(server.url("/manage/docs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("/manage/openapi.json"));
}

#[tokio::test]
async fn a_load_hook_that_fails_marks_only_that_plugin_failed() {
    let server = Kneedeep::start(&config_with_token("[plugins.hello]\ngreeting = \"hi\"\n"));

    let (_, hello) = manage(&server, Method::GET, "/manage/plugins/hello", None).await;
    assert_eq!(hello["state"], "failed");
    let error = hello["error"].as_str().unwrap();
    assert!(
        error.contains("load hook failed") && error.contains("no {name} placeholder"),
        "{error}"
    );
    assert_eq!(
        status_of(&server, "/plugins/hello/api/hello").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_of(&server, "/plugins/notes/api/notes").await,
        StatusCode::OK
    );

    let (status, again) = manage(&server, Method::POST, "/manage/plugins/hello/load", None).await;
    assert_eq!(
        (status, &again["state"]),
        (StatusCode::OK, &json!("failed"))
    );
    let (_, unloaded) = manage(&server, Method::POST, "/manage/plugins/hello/unload", None).await;
    assert_eq!(unloaded["state"], "unloaded");
}

#[tokio::test]
async fn a_hundred_toggles_under_traffic_answer_only_200_or_404() {
    let server = Kneedeep::start(&config_with_token(""));
    let url = server.url("/plugins/hello/api/hello?name=load");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let traffic = tokio::spawn({
        let done = done.clone();
        async move {
            let http = client();
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(response) => seen.push(response.status().as_u16()),
                    Err(error) => panic!("a request failed during the toggles: {error}"),
                }
            }
            seen
        }
    });

    for toggle in 0..100 {
        let action = if toggle % 2 == 0 { "unload" } else { "load" };
        let (status, body) = manage(
            &server,
            Method::POST,
            &format!("/manage/plugins/hello/{action}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);

    let seen = traffic.await.expect("the client task");
    let unexpected: Vec<&u16> = seen
        .iter()
        .filter(|status| !matches!(status, 200 | 404))
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 200 and 404: {unexpected:?}"
    );
    assert!(
        seen.contains(&200) && seen.contains(&404),
        "both states were seen over {} requests",
        seen.len()
    );
}

#[tokio::test]
async fn states_and_sources_survive_a_restart_on_sqlite() {
    let server = Kneedeep::start(&config_with_token(""));
    restart_keeps_state(server, &config_with_token("")).await;
}

#[tokio::test]
async fn states_and_sources_survive_a_restart_on_postgres() {
    let Some(database) = PostgresDatabase::create("restart").await else {
        return;
    };
    let config = config_with_token(&format!("[datastore]\nurl = \"{}\"\n", database.url));
    let server = Kneedeep::start(&config);
    restart_keeps_state(server, &config).await;
}

/// Unloads notes and keeps a source, restarts the real process, and finds both.
async fn restart_keeps_state(server: Kneedeep, config: &str) {
    manage(&server, Method::POST, "/manage/plugins/notes/unload", None).await;
    let source = json!({ "url": "file:///srv/plugins/weather.tar.gz" });
    let (status, _) = manage(&server, Method::POST, "/manage/sources", Some(source)).await;
    assert_eq!(status, StatusCode::CREATED);

    let (exit, _, dir) = server.terminate(Duration::from_secs(15));
    assert!(exit.success());
    let server = Kneedeep::start_in(dir, config);

    assert_eq!(plugin_state(&server, "notes").await, "unloaded");
    assert_eq!(
        status_of(&server, "/plugins/notes/api/notes").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(plugin_state(&server, "hello").await, "loaded");
    let (_, sources) = manage(&server, Method::GET, "/manage/sources", None).await;
    assert_eq!(sources[0]["url"], "file:///srv/plugins/weather.tar.gz");

    // A state asked for through the API wins over the config's `enabled`.
    let (exit, _, dir) = server.terminate(Duration::from_secs(15));
    assert!(exit.success());
    let enabled = format!("{config}\n[plugins.notes]\nenabled = true\n");
    let server = Kneedeep::start_in(dir, &enabled);
    assert_eq!(plugin_state(&server, "notes").await, "unloaded");
}

#[tokio::test]
async fn replicas_on_one_postgres_follow_each_other_within_a_second() {
    let Some(database) = PostgresDatabase::create("replicas").await else {
        return;
    };
    let config = config_with_token(&format!("[datastore]\nurl = \"{}\"\n", database.url));
    let first = Kneedeep::start(&config);
    let second = Kneedeep::start(&config);

    for (changed, other, action, expected) in [
        (&first, &second, "unload", StatusCode::NOT_FOUND),
        (&second, &first, "load", StatusCode::OK),
    ] {
        let (status, _) = manage(
            changed,
            Method::POST,
            &format!("/manage/plugins/notes/{action}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let started = Instant::now();
        while status_of(other, "/plugins/notes/api/notes").await != expected {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the other replica did not {action} notes within a second:\n{}",
                other.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Cut every connection of both replicas, as a database restart would: the listeners
    // come back and re-read every state, so a change made meanwhile is not lost.
    database.terminate_connections().await;
    let (status, _) = manage(&first, Method::POST, "/manage/plugins/notes/unload", None).await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    while status_of(&second, "/plugins/notes/api/notes").await != StatusCode::NOT_FOUND {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the other replica missed a change made while its listener reconnected:\n{}",
            second.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        second.output().contains("change feed"),
        "the listener did reconnect"
    );

    let source = json!({ "url": "https://example.org/shared.tar.gz" });
    let (status, _) = manage(&first, Method::POST, "/manage/sources", Some(source)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, sources) = manage(&second, Method::GET, "/manage/sources", None).await;
    assert_eq!(sources[0]["url"], "https://example.org/shared.tar.gz");
}
