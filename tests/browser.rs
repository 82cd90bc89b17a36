//! End to end in a real headless Chromium, driven over WebDriver: the shell, the notes and
//! files UIs, and a plugin's Swagger UI, each scenario against a `kneedeep` of its own.
//!
//! Needs `chromedriver` and Chromium (Debian: `apt-get install chromium chromium-driver`).
//! `KNEEDEEP_TEST_CHROMEDRIVER` and `KNEEDEEP_TEST_CHROMIUM` name others than the default
//! `chromedriver` (looked up in `PATH`) and `/usr/bin/chromium`. Without them the tests
//! say that they were skipped, unless `CI` is set, where they fail.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use support::{Kneedeep, client};
use tempfile::TempDir;

/// Where each scenario's final page is saved as `<test>.png`.
const ARTIFACTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/test-artifacts/browser"
);

/// How long a page may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// Headless, and fit for a container: run as root (no sandbox), without a GPU, and with
/// a small `/dev/shm`.
const CHROMIUM_ARGS: [&str; 5] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

#[tokio::test]
async fn shell_lists_plugins_and_opens_a_plugin_ui() {
    in_browser(
        "shell_lists_plugins_and_opens_a_plugin_ui",
        async |browser, server| {
            browser.goto(&server.url("/")).await?;

            let headings = wait_for_all(browser, "ul.plugins li.plugin-card h2").await?;
            let mut shown = Vec::new();
            for heading in headings {
                let text = heading.text().await?;
                shown.push(text.split_whitespace().next().unwrap_or("").to_owned());
            }
            shown.sort();
            ensure!(
                shown == ["files", "hello", "notes"],
                "the shell lists {shown:?}"
            );

            for plugin in ["files", "hello", "notes"] {
                let card = format!("li.plugin-card:has(a[href=\"/plugins/{plugin}/ui/\"])");
                wait_for(browser, Locator::Css(&card)).await?;
                let docs = format!("{card} a[href=\"/plugins/{plugin}/docs\"]");
                wait_for(browser, Locator::Css(&docs)).await?;
            }

            let open = r#"a[href="/plugins/hello/ui/"]"#;
            wait_for(browser, Locator::Css(open)).await?.click().await?;
            wait_for(browser, Locator::Css("form#hello-form")).await?;
            let url = browser.current_url().await?;
            ensure!(
                url.as_str() == server.url("/plugins/hello/ui/"),
                "clicking hello's link opened {url}"
            );

            let heading = wait_for(browser, Locator::Css("header h1")).await?;
            ensure!(
                heading.text().await? == "hello",
                "the opened page is not hello's"
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn note_added_in_the_ui_is_listed_and_survives_a_reload() {
    in_browser(
        "note_added_in_the_ui_is_listed_and_survives_a_reload",
        async |browser, server| {
            let title = "Grüße aus dem Browser ✓";
            let body = "written by a real browser\nsecond line";
            let listed = format!(
                "//ul[@id='notes']/li[contains(@class,'note')][h3[normalize-space()='{title}']]"
            );

            browser.goto(&server.url("/plugins/notes/ui/")).await?;
            wait_for(browser, Locator::Css("#new-title"))
                .await?
                .send_keys(title)
                .await?;
            wait_for(browser, Locator::Css("#new-body"))
                .await?
                .send_keys(body)
                .await?;
            wait_for(browser, Locator::Css("#note-form button[type=submit]"))
                .await?
                .click()
                .await?;

            let note = wait_for(browser, Locator::XPath(&listed)).await?;
            let shown_body = note.find(Locator::Css(".note-body")).await?.text().await?;
            ensure!(
                shown_body == body,
                "the listed note's body is {shown_body:?}"
            );

            browser.refresh().await?;
            wait_for(browser, Locator::XPath(&listed))
                .await
                .context("the note is gone after a reload")?;

            let response = client()
                .get(server.url("/plugins/notes/api/notes"))
                .send()
                .await?;
            ensure!(
                response.status().is_success(),
                "GET notes: {}",
                response.status()
            );
            let page: Value = response.json().await?;
            let kept = page["items"]
                .as_array()
                .context("GET notes has no items")?
                .iter()
                .any(|item| item["title"] == title && item["body"] == body);
            ensure!(kept, "the API does not have the note: {page}");
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn file_uploaded_in_the_ui_downloads_byte_identical() {
    in_browser(
        "file_uploaded_in_the_ui_downloads_byte_identical",
        async |browser, server| {
            let name = "grüße ✓ 世界.bin";
            let mut content = "Grüße, 世界 ✓\r\n".as_bytes().to_vec();
            content.extend(0..=255u8);
            content.extend([0, 0, 0xff, 0xfe, b'\n']);
            let path = server.dir.path().join(name);
            std::fs::write(&path, &content).context("write the file to upload")?;

            browser.goto(&server.url("/plugins/files/ui/")).await?;
            let input = wait_for(browser, Locator::Css("#file-input")).await?;
            let path = path.to_str().context("the upload path is not UTF-8")?;
            input.send_keys(path).await?;
            wait_for(browser, Locator::Css("#upload"))
                .await?
                .click()
                .await?;

            let listed = format!("li.file[data-name=\"{name}\"]");
            let item = wait_for(browser, Locator::Css(&listed)).await?;
            let size = item.find(Locator::Css(".file-size")).await?;
            let expected_size = format!("{} bytes", content.len());
            ensure!(
                size.attr("title").await?.as_deref() == Some(expected_size.as_str()),
                "the listed size is not {expected_size}"
            );

            let link = item.find(Locator::Css("a.download")).await?;
            let href = link
                .attr("href")
                .await?
                .context("the download link has no href")?;
            let downloaded = fetch_in_page(browser, &href).await?;
            ensure!(
                downloaded == content,
                "downloaded {} bytes that differ from the {} uploaded",
                downloaded.len(),
                content.len()
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn swagger_ui_try_it_out_shows_the_handler_response() {
    in_browser(
        "swagger_ui_try_it_out_shows_the_handler_response",
        async |browser, server| {
            browser.goto(&server.url("/plugins/hello/docs")).await?;

            let operation = "div.opblock[id$='-hello']";
            let summary = format!("{operation} .opblock-summary");
            wait_for(browser, Locator::Css(&summary))
                .await
                .context("Swagger UI does not show the operation hello")?
                .click()
                .await?;
            let try_it_out = format!("{operation} button.try-out__btn");
            wait_for(browser, Locator::Css(&try_it_out))
                .await?
                .click()
                .await?;
            let name_input = format!("{operation} tr[data-param-name='name'] input");
            wait_for(browser, Locator::Css(&name_input))
                .await?
                .send_keys("Grace")
                .await?;
            let execute = format!("{operation} button.execute");
            wait_for(browser, Locator::Css(&execute))
                .await?
                .click()
                .await?;

            let response_body = "//table[contains(@class,'live-responses-table')]\
                //pre[contains(., 'hello, Grace')]";
            let shown = wait_for(browser, Locator::XPath(response_body))
                .await
                .context("the response body does not show \"hello, Grace\"")?;

            // For the screenshot: the answer is below the fold.
            let scroll = "arguments[0].scrollIntoView({ block: 'center' })";
            browser.execute(scroll, vec![json!(shown)]).await?;
            Ok(())
        },
    )
    .await;
}

/// Runs `scenario` in a fresh browser against a fresh `kneedeep`, saves a screenshot of
/// the final page (also on failure), and fails the test with the scenario's error.
async fn in_browser(test: &str, scenario: impl AsyncFnOnce(&Client, &Kneedeep) -> Result<()>) {
    let Some(tools) = BrowserTools::find(test) else {
        return;
    };

    let server = Kneedeep::start("");
    let driver = ChromeDriver::start(&tools.chromedriver)
        .unwrap_or_else(|error| panic!("{test}: {error:#}"));
    let browser = driver
        .open_session(&tools.chromium)
        .await
        .unwrap_or_else(|error| panic!("{test}: {error:#}"));

    let outcome = scenario(&browser, &server).await;

    let screenshot = save_screenshot(&browser, test).await;
    let closed = browser.close().await;
    if let Err(error) = outcome {
        let screenshot = match &screenshot {
            Ok(path) => format!("screenshot: {}", path.display()),
            Err(error) => format!("no screenshot: {error:#}"),
        };
        panic!(
            "{test}: {error:#}\n{screenshot}\nkneedeep output:\n{}",
            server.output()
        );
    }
    screenshot.unwrap_or_else(|error| panic!("{test}: saving the screenshot: {error:#}"));
    closed.unwrap_or_else(|error| panic!("{test}: closing the browser: {error}"));
}

/// The two programs the tests need.
struct BrowserTools {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

impl BrowserTools {
    /// Finds both programs. When one is missing this fails the test under CI, and
    /// elsewhere says that `test` is skipped and returns `None`.
    fn find(test: &str) -> Option<BrowserTools> {
        let chromedriver = env_or("KNEEDEEP_TEST_CHROMEDRIVER", "chromedriver");
        let chromium = env_or("KNEEDEEP_TEST_CHROMIUM", "/usr/bin/chromium");

        let found = (find_program(&chromedriver), find_program(&chromium));
        if let (Some(chromedriver), Some(chromium)) = found {
            return Some(BrowserTools {
                chromedriver,
                chromium,
            });
        }

        let missing = match found {
            (None, None) => format!("{chromedriver} and {chromium}"),
            (None, Some(_)) => chromedriver,
            (Some(_), _) => chromium,
        };
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test}: {missing} not found (apt-get install chromium chromium-driver), \
                 and under CI the browser tests must run"
            );
        }
        // Straight to the process's stderr: the test harness would hide `eprintln!` of a
        // passing test, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test}: chromedriver/chromium not installed \
             (apt-get install chromium chromium-driver); not found: {missing}"
        );
        None
    }
}

fn env_or(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// `program` itself when it is a path to a file, else the first file of that name in `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }

    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(program))
        .find(|candidate| candidate.is_file())
}

/// A `chromedriver` on a free loopback port, killed with everything it started when
/// dropped.
struct ChromeDriver {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The browser's profile, removed after the browser is gone.
    profile: TempDir,
}

impl ChromeDriver {
    fn start(program: &Path) -> Result<ChromeDriver> {
        let profile = tempfile::tempdir().context("create the browser profile folder")?;

        // Its own process group, so that dropping it ends the browsers it started too. A
        // UTF-8 locale, because without one it finds no file whose path is not ASCII.
        let mut child = std::os::unix::process::CommandExt::process_group(
            Command::new(program)
                .arg("--port=0")
                .env("LC_ALL", "C.UTF-8")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            0,
        )
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;

        let output = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        drain(
            child.stdout.take().context("stdout")?,
            output.clone(),
            Some(port_tx),
        );
        drain(child.stderr.take().context("stderr")?, output.clone(), None);

        let Ok(port) = port_rx.recv_timeout(PATIENCE) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "chromedriver did not say its port; its output:\n{}",
                output.lock().unwrap()
            );
        };
        Ok(ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        })
    }

    /// A new headless Chromium session.
    async fn open_session(&self, chromium: &Path) -> Result<Client> {
        let mut args: Vec<String> = CHROMIUM_ARGS.map(str::to_owned).to_vec();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium, "args": args }),
        );

        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .with_context(|| format!("open a Chromium session through {}", self.url))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Copies a child's output into `sink`, and sends the port chromedriver says it listens on.
fn drain(
    stream: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    port: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let announced = line
                .split_once("started successfully on port ")
                .and_then(|(_, rest)| rest.trim_end_matches('.').parse().ok());
            if let (Some(sender), Some(number)) = (&port, announced) {
                let _ = sender.send(number);
            }

            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
}

/// Polls until `locator` matches an element of the current page.
async fn wait_for(browser: &Client, locator: Locator<'_>) -> Result<Element> {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(locator)
        .await
        .with_context(|| format!("waiting for {locator:?}"))
}

/// Polls until `selector` matches something, then returns every match.
async fn wait_for_all(browser: &Client, selector: &str) -> Result<Vec<Element>> {
    wait_for(browser, Locator::Css(selector)).await?;

    Ok(browser.find_all(Locator::Css(selector)).await?)
}

/// Fetches `url` from inside the page, as the page's own scripts would, and returns the
/// body's bytes.
async fn fetch_in_page(browser: &Client, url: &str) -> Result<Vec<u8>> {
    const FETCH: &str = r#"
        const [url, done] = arguments;
        fetch(url)
            .then(async (response) => done({
                status: response.status,
                bytes: Array.from(new Uint8Array(await response.arrayBuffer())),
            }))
            .catch((error) => done({ error: String(error) }));
    "#;
    let answer = browser.execute_async(FETCH, vec![json!(url)]).await?;

    if let Some(error) = answer["error"].as_str() {
        bail!("fetch {url} in the page: {error}");
    }
    ensure!(
        answer["status"] == 200,
        "fetch {url} in the page: status {}",
        answer["status"]
    );
    answer["bytes"]
        .as_array()
        .context("the page sent no bytes")?
        .iter()
        .map(|byte| {
            byte.as_u64()
                .and_then(|byte| u8::try_from(byte).ok())
                .context("the page sent something that is not a byte")
        })
        .collect()
}

/// Saves the current page as `<ARTIFACTS>/<test>.png`.
async fn save_screenshot(browser: &Client, test: &str) -> Result<PathBuf> {
    let png = browser.screenshot().await.context("take a screenshot")?;

    std::fs::create_dir_all(ARTIFACTS).with_context(|| format!("create {ARTIFACTS}"))?;
    let path = Path::new(ARTIFACTS).join(format!("{test}.png"));
    std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}
