//! Downloading plugin archives: the cache keyed by content sha256, pins, and the rules
//! a download must pass.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use reqwest::Url;
use reqwest::header::{ACCEPT_ENCODING, HeaderMap, HeaderValue};
use reqwest::redirect;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

/// Where archives are cached and the limits a download must keep.
#[derive(Debug, Clone)]
pub(crate) struct FetchOptions {
    /// The cache folder; each archive is kept there as `<sha256>.archive`. Created when
    /// missing. No default: it must be set.
    pub(crate) cache_dir: PathBuf,
    /// Never touch the network: an https or http archive must be in the cache under its
    /// pinned sha256 already (a `file:` URL is still read). Default: `false`.
    pub(crate) offline: bool,
    /// The largest archive accepted, in bytes. Default: 256 MiB.
    pub(crate) max_bytes: u64,
    /// How long a connection may go without receiving anything before it counts as
    /// stalled (and how long connecting may take). Default: 30 s.
    pub(crate) stall_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            cache_dir: PathBuf::new(),
            offline: false,
            max_bytes: 256 * 1024 * 1024,
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// An archive in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The cached file, `<cache_dir>/<sha256>.archive`.
    pub(crate) path: PathBuf,
    /// The sha256 of the archive's bytes, in lowercase hex.
    pub(crate) sha256: String,
}

/// Fetches archives into the cache, with one HTTP client shared by every fetch.
pub(crate) struct Fetcher {
    options: FetchOptions,
    client: reqwest::blocking::Client,
}

const MAX_REDIRECTS: usize = 10;
const BUFFER_SIZE: usize = 64 * 1024;
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const TAR_MAGIC: &[u8] = b"ustar";
const TAR_MAGIC_OFFSET: usize = 257;
/// How many leading bytes decide whether a body is an archive.
const HEAD_LEN: usize = TAR_MAGIC_OFFSET + TAR_MAGIC.len();

impl Fetcher {
    /// Creates the cache folder and the HTTP client.
    pub(crate) fn new(options: FetchOptions) -> anyhow::Result<Fetcher> {
        if options.cache_dir.as_os_str().is_empty() {
            bail!("the archive cache folder is not set");
        }
        std::fs::create_dir_all(&options.cache_dir)
            .with_context(|| format!("create the archive cache {}", options.cache_dir.display()))?;

        // Fails only when the process already has a provider, which is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Without it a server may compress; the bytes hashed must be the bytes served.
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));

        // The blocking client's `timeout` is not a total deadline: it bounds the wait for
        // the response head, then each read of the body on its own, so a stalled
        // connection fails fast while a slow but moving one goes on. (The async
        // `read_timeout` cannot serve here: the blocking response polls the body outside
        // reqwest's runtime, where its timer panics.)
        let client = reqwest::blocking::Client::builder()
            .tls_backend_rustls()
            .default_headers(headers)
            .redirect(redirect_policy())
            .connect_timeout(options.stall_timeout)
            .timeout(options.stall_timeout)
            .build()
            .context("build the HTTP client")?;
        Ok(Fetcher { options, client })
    }

    /// Returns the archive at `url` from the cache, downloading it first when needed.
    ///
    /// `url` is https, http or file. `expected` is the pinned sha256 (from the config, the
    /// datastore, or plugins.lock), if any.
    pub(crate) fn fetch(&self, url: &str, expected: Option<&str>) -> anyhow::Result<Fetched> {
        let parsed = match Url::parse(url) {
            Ok(parsed) => parsed,
            Err(error) => bail!("fetch {url}: not a valid URL ({error})"),
        };

        let shown = shown_url(&parsed);
        self.fetch_url(&parsed, &shown, expected)
            .with_context(|| format!("fetch {shown}"))
    }

    fn fetch_url(&self, url: &Url, shown: &str, expected: Option<&str>) -> anyhow::Result<Fetched> {
        let expected = expected.map(parse_pin).transpose()?;
        if let Some(sha256) = &expected {
            if let Some(fetched) = self.cached(sha256)? {
                return Ok(fetched);
            }
        }

        let is_file = match url.scheme() {
            "http" | "https" => false,
            "file" => true,
            other => bail!("the scheme `{other}` is not supported (https, http or file)"),
        };
        if self.options.offline && !is_file {
            return Err(offline_error(expected.as_deref()));
        }

        let progress = Progress::start(shown);
        let (body, length) = if is_file {
            open_file(url)?
        } else {
            self.open_http(url)?
        };
        self.store(body, length, expected.as_deref(), progress)
    }

    /// The cached archive for `sha256`, if there is one whose bytes still hash to it; a
    /// damaged one is removed.
    fn cached(&self, sha256: &str) -> anyhow::Result<Option<Fetched>> {
        let path = self.cache_path(sha256);
        let actual = match sha256_of_file(&path) {
            Ok(actual) => actual,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("read {}", path.display())),
        };

        if actual != sha256 {
            std::fs::remove_file(&path)
                .with_context(|| format!("remove the damaged {}", path.display()))?;
            return Ok(None);
        }
        Ok(Some(Fetched {
            path,
            sha256: sha256.to_owned(),
        }))
    }

    fn open_http(&self, url: &Url) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
        let stall_timeout = self.options.stall_timeout;
        let response = self.client.get(url.clone()).send().map_err(|error| {
            let error = anyhow::Error::new(error.without_url());
            if is_timeout(&error) {
                return error.context(format!("no response within {stall_timeout:?}"));
            }
            error
        })?;

        let status = response.status();
        if !status.is_success() {
            bail!("the server answered {status}");
        }
        let length = response.content_length();
        Ok((Box::new(response), length))
    }

    /// Copies `body` into a temporary file in the cache while hashing it, checks it, and
    /// only then moves it to its place; on any failure the temporary file is removed.
    fn store(
        &self,
        mut body: Box<dyn Read>,
        length: Option<u64>,
        expected: Option<&str>,
        progress: Progress,
    ) -> anyhow::Result<Fetched> {
        let max_bytes = self.options.max_bytes;
        if let Some(length) = length {
            if length > max_bytes {
                bail!("the archive is {length} bytes, over the size cap of {max_bytes} bytes");
            }
        }

        progress.set_length(length);
        let received = self.receive(&mut body, length, &progress)?;
        if let Some(length) = length {
            if received.bytes < length {
                bail!(
                    "the body was cut short: {} of {length} bytes",
                    received.bytes
                );
            }
        }

        if !is_archive(&received.head) {
            bail!(
                "the {} bytes received are not an archive (neither gzip nor tar)",
                received.bytes
            );
        }
        if let Some(expected) = expected {
            if received.sha256 != expected {
                bail!(
                    "sha256 mismatch: expected {expected}, got {}",
                    received.sha256
                );
            }
        }

        let path = self.cache_path(&received.sha256);
        received
            .file
            .persist(&path)
            .map_err(|error| error.error)
            .with_context(|| format!("move the archive to {}", path.display()))?;
        progress.finish(received.bytes, &received.sha256);
        Ok(Fetched {
            path,
            sha256: received.sha256,
        })
    }

    /// Streams `body` into a temporary file in the cache, hashing and counting it.
    fn receive(
        &self,
        body: &mut dyn Read,
        length: Option<u64>,
        progress: &Progress,
    ) -> anyhow::Result<Received> {
        let cache_dir = &self.options.cache_dir;
        let mut file = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(cache_dir)
            .with_context(|| format!("create a temporary file in {}", cache_dir.display()))?;

        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(HEAD_LEN);
        let mut bytes: u64 = 0;
        let mut buffer = vec![0; BUFFER_SIZE];
        loop {
            let read = match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => return Err(self.read_error(error, bytes, length)),
            };

            bytes += read as u64;
            if bytes > self.options.max_bytes {
                bail!(
                    "the body passed the size cap of {} bytes",
                    self.options.max_bytes
                );
            }

            let chunk = &buffer[..read];
            hasher.update(chunk);
            let head_missing = HEAD_LEN - head.len();
            head.extend_from_slice(&chunk[..read.min(head_missing)]);
            file.write_all(chunk)
                .with_context(|| format!("write {}", file.path().display()))?;
            progress.advance(read as u64);
        }

        let sha256 = hex::encode(hasher.finalize());
        Ok(Received {
            file,
            bytes,
            sha256,
            head,
        })
    }

    fn read_error(&self, error: std::io::Error, bytes: u64, length: Option<u64>) -> anyhow::Error {
        let error = anyhow::Error::new(error);
        if is_timeout(&error) {
            let stall_timeout = self.options.stall_timeout;
            return error.context(format!(
                "the connection stalled: nothing received for {stall_timeout:?} after {bytes} bytes"
            ));
        }

        let of_length = length
            .map(|length| format!(" of {length}"))
            .unwrap_or_default();
        error.context(format!(
            "the body was cut short after {bytes}{of_length} bytes"
        ))
    }

    fn cache_path(&self, sha256: &str) -> PathBuf {
        self.options.cache_dir.join(format!("{sha256}.archive"))
    }
}

/// A body received into a temporary file, not checked yet.
struct Received {
    file: NamedTempFile,
    bytes: u64,
    sha256: String,
    /// The first bytes, to tell an archive from anything else.
    head: Vec<u8>,
}

/// Follows up to [`MAX_REDIRECTS`] redirects and names a loop as such. Credentials are
/// never forwarded to another host: reqwest turns the URL's userinfo into an
/// `Authorization` header and drops that header on a redirect to another host, port or
/// scheme (a test below checks it).
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        if attempt.previous().contains(attempt.url()) {
            let message = format!("redirect loop: {} was visited already", attempt.url());
            return attempt.error(message);
        }

        // `previous` holds the first URL too, which is not a redirect.
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("too many redirects (more than {MAX_REDIRECTS})"));
        }
        attempt.follow()
    })
}

fn open_file(url: &Url) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    let Ok(path) = url.to_file_path() else {
        bail!("not a local file path");
    };

    let file = File::open(&path).with_context(|| format!("read {}", path.display()))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("read {}", path.display()))?;
    Ok((Box::new(file), Some(metadata.len())))
}

fn offline_error(expected: Option<&str>) -> anyhow::Error {
    match expected {
        Some(sha256) => anyhow!(
            "the archive with sha256 {sha256} is not in the cache, and --offline forbids \
             downloading it"
        ),
        None => anyhow!(
            "no sha256 is pinned to find the archive in the cache, and --offline forbids \
             downloading it"
        ),
    }
}

/// The pin in lowercase, once it is known to be a sha256 (it becomes a file name).
fn parse_pin(expected: &str) -> anyhow::Result<String> {
    let pin = expected.to_ascii_lowercase();
    if pin.len() != 64 || !pin.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        bail!("the pinned sha256 `{expected}` is not 64 hex digits");
    }
    Ok(pin)
}

fn is_archive(head: &[u8]) -> bool {
    head.starts_with(GZIP_MAGIC) || head.get(TAR_MAGIC_OFFSET..HEAD_LEN) == Some(TAR_MAGIC)
}

/// Whether a timeout caused `error`. The blocking response's reads wrap reqwest's error
/// in an `io::Error`, whose `source` skips the wrapped error itself.
fn is_timeout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            let wrapped = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>());
            return io.kind() == std::io::ErrorKind::TimedOut
                || wrapped.is_some_and(reqwest::Error::is_timeout);
        }
        cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
    })
}

fn sha256_of_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; BUFFER_SIZE];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// The URL as messages show it: a password in it is replaced by `***`.
fn shown_url(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }

    let mut shown = url.clone();
    // Cannot fail: a URL with a password has a host.
    let _ = shown.set_password(Some("***"));
    shown.to_string()
}

/// The progress of one transfer: a bar with bytes and rate when stderr is a terminal,
/// otherwise a line when it starts and one when it ends.
enum Progress {
    Bar { bar: ProgressBar, url: String },
    Lines { url: String },
}

impl Progress {
    fn start(url: &str) -> Progress {
        let url = url.to_owned();
        if !std::io::stderr().is_terminal() {
            report(&format!("fetching {url}"));
            return Progress::Lines { url };
        }

        // A failed transfer leaves its bar where it stopped.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_finish(ProgressFinish::Abandon)
            .with_style(progress_style(UNKNOWN_LENGTH_TEMPLATE))
            .with_message(format!("fetching {url}"));
        Progress::Bar { bar, url }
    }

    fn set_length(&self, length: Option<u64>) {
        let (Progress::Bar { bar, .. }, Some(length)) = (self, length) else {
            return;
        };
        bar.set_style(progress_style(KNOWN_LENGTH_TEMPLATE));
        bar.set_length(length);
    }

    fn advance(&self, bytes: u64) {
        if let Progress::Bar { bar, .. } = self {
            bar.inc(bytes);
        }
    }

    fn finish(&self, bytes: u64, sha256: &str) {
        let url = match self {
            Progress::Bar { bar, url } => {
                bar.finish_and_clear();
                url
            }
            Progress::Lines { url } => url,
        };
        report(&format!("fetched {url}: {bytes} bytes, sha256 {sha256}"));
    }
}

const UNKNOWN_LENGTH_TEMPLATE: &str = "{msg} {bytes} {binary_bytes_per_sec}";
const KNOWN_LENGTH_TEMPLATE: &str = "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec}";

fn progress_style(template: &str) -> ProgressStyle {
    // Both templates are constants that a test parses; were one broken, the bar would
    // still show, in the default style.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[allow(clippy::print_stderr, reason = "the progress lines of a download")]
fn report(line: &str) {
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Instant;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tempfile::TempDir;

    use super::*;

    /// One thing a test server does on a connection, in order.
    enum Step {
        Send(Vec<u8>),
        Wait(Duration),
    }

    /// An HTTP server on 127.0.0.1 that answers each request with the scripted steps of
    /// its path (404 for other paths) on a connection of its own, then closes it.
    struct TestServer {
        port: u16,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl TestServer {
        /// `routes` is given the port, for redirects that name it.
        fn start(routes: impl FnOnce(u16) -> Vec<(&'static str, Vec<Step>)>) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let routes: Arc<HashMap<&str, Vec<Step>>> =
                Arc::new(routes(port).into_iter().collect());
            let requests = Arc::new(Mutex::new(Vec::new()));

            let recorded = Arc::clone(&requests);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let stream = stream.unwrap();
                    let routes = Arc::clone(&routes);
                    let recorded = Arc::clone(&recorded);
                    thread::spawn(move || answer(&stream, &routes, &recorded));
                }
            });
            TestServer { port, requests }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        /// The head of every request received so far, in order, lowercased.
        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    fn answer(
        stream: &TcpStream,
        routes: &HashMap<&str, Vec<Step>>,
        recorded: &Mutex<Vec<String>>,
    ) {
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        recorded.lock().unwrap().push(head);

        let not_found = respond("404 Not Found", b"no such route");
        let mut stream = stream;
        for step in routes.get(path.as_str()).unwrap_or(&not_found) {
            match step {
                Step::Send(bytes) => {
                    if stream.write_all(bytes).is_err() {
                        return;
                    }
                }
                Step::Wait(duration) => thread::sleep(*duration),
            }
        }
    }

    /// A raw HTTP/1.1 response head (`Connection: close` added) followed by `body`.
    fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
        let mut bytes = format!("HTTP/1.1 {status}\r\nConnection: close\r\n").into_bytes();
        for header in headers {
            bytes.extend_from_slice(format!("{header}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
        bytes
    }

    /// Answers with `status` and `body`, its length declared.
    fn respond(status: &str, body: &[u8]) -> Vec<Step> {
        let length = format!("Content-Length: {}", body.len());
        vec![Step::Send(response(status, &[&length], body))]
    }

    /// Answers 200 with `body`, its length declared.
    fn ok(body: &[u8]) -> Vec<Step> {
        respond("200 OK", body)
    }

    fn redirect_to(location: &str) -> Vec<Step> {
        let location = format!("Location: {location}");
        vec![Step::Send(response(
            "302 Found",
            &[&location, "Content-Length: 0"],
            b"",
        ))]
    }

    /// A small plugin crate as a .tar.gz.
    fn plugin_archive() -> Vec<u8> {
        let encoder = GzEncoder::new(Vec::new(), Compression::default());
        let tar = plugin_tar(encoder);
        tar.finish().unwrap()
    }

    fn plugin_tar<W: Write>(writer: W) -> W {
        let manifest = b"[package]\nname = \"hello\"\nversion = \"0.1.0\"\n";
        let mut header = tar::Header::new_ustar();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();

        let mut builder = tar::Builder::new(writer);
        builder
            .append_data(&mut header, "hello/Cargo.toml", &manifest[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn fetcher(cache: &TempDir, adjust: impl FnOnce(&mut FetchOptions)) -> Fetcher {
        let mut options = FetchOptions {
            cache_dir: cache.path().to_owned(),
            ..FetchOptions::default()
        };
        adjust(&mut options);
        Fetcher::new(options).unwrap()
    }

    fn cache_entries(cache: &TempDir) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(cache.path()).unwrap();
        entries.map(|entry| entry.unwrap().path()).collect()
    }

    /// Fetches `url` into an empty cache with the options `adjust` sets, expects a failure
    /// whose message names the URL and each of `reasons`, and a cache still empty.
    fn check_failure(
        adjust: impl FnOnce(&mut FetchOptions),
        url: &str,
        expected: Option<&str>,
        reasons: &[&str],
    ) {
        let cache = tempfile::tempdir().unwrap();
        let error = fetcher(&cache, adjust).fetch(url, expected).unwrap_err();

        let message = format!("{error:#}");
        assert!(
            message.contains(url),
            "the message does not name {url}: {message}"
        );
        for reason in reasons {
            assert!(message.contains(reason), "no `{reason}` in: {message}");
        }
        assert_eq!(
            cache_entries(&cache),
            Vec::<PathBuf>::new(),
            "after: {message}"
        );
    }

    #[test]
    fn archive_is_cached_by_sha256_and_a_pinned_fetch_does_not_download_again() {
        let archive = plugin_archive();
        let server = TestServer::start(|_| vec![("/hello.tar.gz", ok(&archive))]);
        let cache = tempfile::tempdir().unwrap();
        let fetcher = fetcher(&cache, |_| {});
        let url = server.url("/hello.tar.gz");

        let fetched = fetcher.fetch(&url, None).unwrap();
        let sha256 = sha256_hex(&archive);
        assert_eq!(fetched.sha256, sha256);
        assert_eq!(fetched.path, cache.path().join(format!("{sha256}.archive")));
        assert_eq!(std::fs::read(&fetched.path).unwrap(), archive);
        assert_eq!(cache_entries(&cache), vec![fetched.path.clone()]);
        assert!(server.requests()[0].contains("accept-encoding: identity\r\n"));

        let again = fetcher
            .fetch(&url, Some(&sha256.to_ascii_uppercase()))
            .unwrap();
        assert_eq!(again, fetched);
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn not_found_with_an_html_page_is_refused() {
        let page = respond("404 Not Found", b"<html><body>not here</body></html>");
        let server = TestServer::start(|_| vec![("/gone.tar.gz", page)]);
        check_failure(
            |_| {},
            &server.url("/gone.tar.gz"),
            None,
            &["404 Not Found"],
        );
    }

    #[test]
    fn server_error_is_refused() {
        let page = respond("500 Internal Server Error", b"oops");
        let server = TestServer::start(|_| vec![("/broken.tar.gz", page)]);
        check_failure(
            |_| {},
            &server.url("/broken.tar.gz"),
            None,
            &["500 Internal Server Error"],
        );
    }

    #[test]
    fn gzip_content_encoding_keeps_the_served_bytes() {
        let archive = plugin_archive();
        let length = format!("Content-Length: {}", archive.len());
        let headers = [
            length.as_str(),
            "Content-Type: application/gzip",
            "Content-Encoding: gzip",
        ];
        let served = vec![Step::Send(response("200 OK", &headers, &archive))];
        let server = TestServer::start(|_| vec![("/hello.tar.gz", served)]);
        let cache = tempfile::tempdir().unwrap();

        let fetched = fetcher(&cache, |_| {})
            .fetch(&server.url("/hello.tar.gz"), None)
            .unwrap();
        assert_eq!(fetched.sha256, sha256_hex(&archive));
        assert_eq!(std::fs::read(&fetched.path).unwrap(), archive);
    }

    #[test]
    fn redirect_chain_of_three_is_followed() {
        let archive = plugin_archive();
        let server = TestServer::start(|port| {
            let at = |path: &str| format!("http://127.0.0.1:{port}{path}");
            vec![
                ("/one", redirect_to(&at("/two"))),
                ("/two", redirect_to(&at("/three"))),
                ("/three", redirect_to("/hello.tar.gz")),
                ("/hello.tar.gz", ok(&archive)),
            ]
        });
        let cache = tempfile::tempdir().unwrap();

        let fetched = fetcher(&cache, |_| {})
            .fetch(&server.url("/one"), None)
            .unwrap();
        assert_eq!(fetched.sha256, sha256_hex(&archive));
        assert_eq!(server.requests().len(), 4);
    }

    #[test]
    fn redirect_loop_is_refused_as_a_loop() {
        let server = TestServer::start(|_| {
            vec![
                ("/ping", redirect_to("/pong")),
                ("/pong", redirect_to("/ping")),
            ]
        });
        check_failure(|_| {}, &server.url("/ping"), None, &["redirect loop"]);
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn more_than_ten_redirects_are_refused() {
        let server = TestServer::start(|_| {
            const PATHS: [&str; 12] = [
                "/0", "/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8", "/9", "/10", "/11",
            ];
            PATHS
                .windows(2)
                .map(|pair| (pair[0], redirect_to(pair[1])))
                .collect()
        });
        check_failure(|_| {}, &server.url("/0"), None, &["too many redirects"]);
    }

    #[test]
    fn body_shorter_than_its_content_length_is_refused() {
        let archive = plugin_archive();
        let length = format!("Content-Length: {}", archive.len() + 1000);
        let short = vec![Step::Send(response("200 OK", &[&length], &archive))];
        let server = TestServer::start(|_| vec![("/short.tar.gz", short)]);

        let reason = format!(
            "cut short after {} of {} bytes",
            archive.len(),
            archive.len() + 1000
        );
        check_failure(|_| {}, &server.url("/short.tar.gz"), None, &[&reason]);
    }

    #[test]
    fn chunked_body_closed_before_its_last_chunk_is_refused() {
        let archive = plugin_archive();
        let mut chunk = format!("{:x}\r\n", archive.len()).into_bytes();
        chunk.extend_from_slice(&archive);
        chunk.extend_from_slice(b"\r\n");
        let unfinished = vec![
            Step::Send(response("200 OK", &["Transfer-Encoding: chunked"], b"")),
            Step::Send(chunk),
        ];
        let server = TestServer::start(|_| vec![("/unfinished.tar.gz", unfinished)]);

        let reason = format!("cut short after {} bytes", archive.len());
        check_failure(|_| {}, &server.url("/unfinished.tar.gz"), None, &[&reason]);
    }

    #[test]
    fn stall_after_the_headers_fails_after_the_stall_timeout() {
        let stalled = vec![
            Step::Send(response("200 OK", &["Content-Length: 1000"], b"")),
            Step::Wait(Duration::from_secs(20)),
        ];
        let server = TestServer::start(|_| vec![("/stalled.tar.gz", stalled)]);

        let started = Instant::now();
        let short_stall = |options: &mut FetchOptions| {
            options.stall_timeout = Duration::from_millis(500);
        };
        let url = server.url("/stalled.tar.gz");
        check_failure(short_stall, &url, None, &["stalled", "after 0 bytes"]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn silence_before_the_headers_fails_after_the_stall_timeout() {
        let silent = vec![Step::Wait(Duration::from_secs(20))];
        let server = TestServer::start(|_| vec![("/silent.tar.gz", silent)]);

        let started = Instant::now();
        let short_stall = |options: &mut FetchOptions| {
            options.stall_timeout = Duration::from_millis(500);
        };
        check_failure(
            short_stall,
            &server.url("/silent.tar.gz"),
            None,
            &["no response within"],
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn slow_but_moving_body_is_not_cut_off() {
        let archive = plugin_archive();
        let length = format!("Content-Length: {}", archive.len());
        let mut slow = vec![Step::Send(response("200 OK", &[&length], b""))];
        for piece in archive.chunks(archive.len().div_ceil(10)) {
            slow.push(Step::Wait(Duration::from_millis(200)));
            slow.push(Step::Send(piece.to_vec()));
        }
        let server = TestServer::start(|_| vec![("/slow.tar.gz", slow)]);
        let cache = tempfile::tempdir().unwrap();
        let fetcher = fetcher(&cache, |options| {
            options.stall_timeout = Duration::from_secs(1)
        });

        let started = Instant::now();
        let fetched = fetcher.fetch(&server.url("/slow.tar.gz"), None).unwrap();
        assert_eq!(fetched.sha256, sha256_hex(&archive));
        assert!(
            started.elapsed() > Duration::from_millis(1500),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn wrong_sha256_is_refused_naming_both() {
        let archive = plugin_archive();
        let server = TestServer::start(|_| vec![("/hello.tar.gz", ok(&archive))]);
        let pinned = "0".repeat(64);

        let actual = sha256_hex(&archive);
        let url = server.url("/hello.tar.gz");
        check_failure(
            |_| {},
            &url,
            Some(&pinned),
            &["sha256 mismatch", &pinned, &actual],
        );
    }

    #[test]
    fn html_served_with_200_is_not_an_archive() {
        let page = ok(b"<!doctype html><html><body>please log in</body></html>");
        let server = TestServer::start(|_| vec![("/hello.tar.gz", page)]);
        check_failure(
            |_| {},
            &server.url("/hello.tar.gz"),
            None,
            &["not an archive"],
        );
    }

    #[test]
    fn content_length_over_the_size_cap_is_refused_before_the_body() {
        let archive = plugin_archive();
        let server = TestServer::start(|_| vec![("/big.tar.gz", ok(&archive))]);

        let cap = |options: &mut FetchOptions| options.max_bytes = 64;
        let reason = format!(
            "the archive is {} bytes, over the size cap of 64 bytes",
            archive.len()
        );
        check_failure(cap, &server.url("/big.tar.gz"), None, &[&reason]);
    }

    #[test]
    fn chunked_body_over_the_size_cap_is_refused() {
        let mut chunks = Vec::new();
        for _ in 0..4 {
            chunks.extend_from_slice(b"200\r\n");
            chunks.extend_from_slice(&[0x1f; 0x200]);
            chunks.extend_from_slice(b"\r\n");
        }
        chunks.extend_from_slice(b"0\r\n\r\n");
        let body = response("200 OK", &["Transfer-Encoding: chunked"], &chunks);
        let server = TestServer::start(|_| vec![("/endless.tar.gz", vec![Step::Send(body)])]);

        let cap = |options: &mut FetchOptions| options.max_bytes = 1024;
        let url = server.url("/endless.tar.gz");
        check_failure(cap, &url, None, &["passed the size cap of 1024 bytes"]);
    }

    #[test]
    fn credentials_are_not_sent_to_another_host_after_a_redirect() {
        let archive = plugin_archive();
        let server = TestServer::start(|port| {
            let elsewhere = format!("http://localhost:{port}/hello.tar.gz");
            vec![
                ("/start", redirect_to(&elsewhere)),
                ("/hello.tar.gz", ok(&archive)),
            ]
        });
        let cache = tempfile::tempdir().unwrap();
        let url = format!("http://user:secret@127.0.0.1:{}/start", server.port);

        fetcher(&cache, |_| {}).fetch(&url, None).unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert!(
            requests[0].contains("authorization: basic "),
            "{}",
            requests[0]
        );
        assert!(requests[1].contains(&format!("host: localhost:{}", server.port)));
        assert!(!requests[1].contains("authorization"), "{}", requests[1]);
    }

    #[test]
    fn messages_hide_the_password_of_the_url() {
        let server = TestServer::start(|_| Vec::new());
        let url = format!("http://user:secret@127.0.0.1:{}/gone.tar.gz", server.port);

        let cache = tempfile::tempdir().unwrap();

        let error = fetcher(&cache, |_| {}).fetch(&url, None).unwrap_err();
        let message = format!("{error:#}");
        let shown = format!("http://user:***@127.0.0.1:{}/gone.tar.gz", server.port);
        assert!(message.contains(&shown), "{message}");
        assert!(message.contains("404 Not Found"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(cache_entries(&cache), Vec::<PathBuf>::new());
    }

    #[test]
    fn file_url_is_checked_and_cached() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("hello.tar.gz");
        let archive = plugin_archive();
        std::fs::write(&path, &archive).unwrap();
        let cache = tempfile::tempdir().unwrap();

        let url = Url::from_file_path(&path).unwrap().to_string();
        let fetched = fetcher(&cache, |_| {})
            .fetch(&url, Some(&sha256_hex(&archive)))
            .unwrap();
        assert_eq!(
            fetched.path,
            cache
                .path()
                .join(format!("{}.archive", sha256_hex(&archive)))
        );
        assert_eq!(std::fs::read(&fetched.path).unwrap(), archive);
    }

    #[test]
    fn file_url_of_a_plain_tar_is_an_archive() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("hello.tar");
        let archive = plugin_tar(Vec::new());
        std::fs::write(&path, &archive).unwrap();
        let cache = tempfile::tempdir().unwrap();

        let url = Url::from_file_path(&path).unwrap().to_string();
        let fetched = fetcher(&cache, |_| {}).fetch(&url, None).unwrap();
        assert_eq!(fetched.sha256, sha256_hex(&archive));
    }

    #[test]
    fn file_url_goes_through_the_same_checks() {
        let folder = tempfile::tempdir().unwrap();
        let page = folder.path().join("page.tar.gz");
        std::fs::write(&page, b"<html></html>").unwrap();
        let page_url = Url::from_file_path(&page).unwrap().to_string();
        check_failure(|_| {}, &page_url, None, &["not an archive"]);

        let archive = folder.path().join("hello.tar.gz");
        std::fs::write(&archive, plugin_archive()).unwrap();
        let url = Url::from_file_path(&archive).unwrap().to_string();
        check_failure(
            |options| options.max_bytes = 64,
            &url,
            None,
            &["over the size cap"],
        );
        check_failure(|_| {}, &url, Some(&"0".repeat(64)), &["sha256 mismatch"]);
    }

    #[test]
    fn missing_file_url_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("missing.tar.gz");

        let url = Url::from_file_path(&path).unwrap().to_string();
        let reason = format!("read {}", path.display());
        check_failure(|_| {}, &url, None, &[&reason]);
    }

    #[test]
    fn offline_uses_an_archive_cached_under_its_pin() {
        let archive = plugin_archive();
        let server = TestServer::start(|_| vec![("/hello.tar.gz", ok(&archive))]);
        let cache = tempfile::tempdir().unwrap();
        let url = server.url("/hello.tar.gz");
        let fetched = fetcher(&cache, |_| {}).fetch(&url, None).unwrap();

        let offline = fetcher(&cache, |options| options.offline = true);
        assert_eq!(offline.fetch(&url, Some(&fetched.sha256)).unwrap(), fetched);
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn offline_without_the_archive_cached_says_what_is_missing() {
        let server = TestServer::start(|_| Vec::new());
        let url = server.url("/hello.tar.gz");
        let pinned = "ab".repeat(32);

        let offline = |options: &mut FetchOptions| options.offline = true;
        check_failure(
            offline,
            &url,
            Some(&pinned),
            &[&pinned, "not in the cache", "--offline"],
        );
        check_failure(offline, &url, None, &["no sha256 is pinned", "--offline"]);
        assert_eq!(server.requests().len(), 0);
    }

    #[test]
    fn damaged_cache_entry_is_downloaded_again() {
        let archive = plugin_archive();
        let server = TestServer::start(|_| vec![("/hello.tar.gz", ok(&archive))]);
        let cache = tempfile::tempdir().unwrap();
        let sha256 = sha256_hex(&archive);
        let cached = cache.path().join(format!("{sha256}.archive"));
        std::fs::write(&cached, b"damaged").unwrap();

        let fetched = fetcher(&cache, |_| {}).fetch(&server.url("/hello.tar.gz"), Some(&sha256));
        assert_eq!(fetched.unwrap().path, cached);
        assert_eq!(std::fs::read(&cached).unwrap(), archive);
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn pin_that_is_not_a_sha256_is_refused() {
        let url = "https://example.org/hello.tar.gz";
        check_failure(|_| {}, url, Some("../../escape"), &["is not 64 hex digits"]);
    }

    #[test]
    fn other_schemes_are_refused() {
        let url = "ftp://example.org/hello.tar.gz";
        check_failure(|_| {}, url, None, &["the scheme `ftp` is not supported"]);
    }

    #[test]
    fn progress_templates_parse() {
        assert!(ProgressStyle::with_template(UNKNOWN_LENGTH_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(KNOWN_LENGTH_TEMPLATE).is_ok());
    }
}
