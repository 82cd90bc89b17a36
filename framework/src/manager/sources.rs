//! Plugin source URLs submitted through the management API, kept in the datastore under
//! the framework's namespace (`sources/<id>`), where `cargo xtask build-with-plugins`
//! reads them. The id is derived from the URL, so a URL is kept at most once.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Datastore, FRAMEWORK_NAMESPACE, PluginStore, PutOptions, StoreError};

/// Every key of a source starts with this.
const SOURCES_PREFIX: &str = "sources/";

/// One kept source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// 16 hex digits of the sha256 of the URL.
    pub id: String,
    /// An `https`, `http` or `file` URL of a plugin archive.
    pub url: String,
    /// The archive's expected sha256, when pinned.
    pub sha256: Option<String>,
    /// When it was added, RFC 3339.
    pub added: String,
}

/// Why a source was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL is not `https`, `http` or `file`, or has no host or path.
    #[error("source url {url:?} is not valid: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The sha256 is not 64 hex digits.
    #[error("sha256 {sha256:?} is not 64 hex digits")]
    InvalidSha256 {
        /// The given value.
        sha256: String,
    },
    /// The URL is kept already.
    #[error("source url {url:?} is already kept, with id {id}")]
    Duplicate {
        /// The URL.
        url: String,
        /// The id it has.
        id: String,
    },
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `url` is an `https`, `http` or `file` URL that names something.
fn check_url(url: &str) -> Result<(), SourceError> {
    let invalid = |reason| SourceError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("it must start with https://, http:// or file://"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it must not contain spaces or control characters"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "http" => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.contains('@') {
                return Err(invalid(
                    "it carries credentials, which would be kept and shown; use a URL without them",
                ));
            }
            if host.is_empty() || host.starts_with(':') {
                return Err(invalid("it has no host"));
            }
            Ok(())
        }
        "file" => {
            if !rest.starts_with('/') || rest.len() < 2 {
                return Err(invalid(
                    "a file URL needs an absolute path, as file:///path",
                ));
            }
            Ok(())
        }
        _ => Err(invalid("the scheme must be https, http or file")),
    }
}

/// Checks that `sha256` is 64 hex digits.
fn check_sha256(sha256: &str) -> Result<(), SourceError> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    Err(SourceError::InvalidSha256 {
        sha256: sha256.chars().take(100).collect(),
    })
}

/// Checks a source as `POST /manage/sources` and the build would: its URL, and its
/// sha256 when it has one.
pub(crate) fn check_source(url: &str, sha256: Option<&str>) -> Result<(), SourceError> {
    check_url(url)?;
    sha256.map_or(Ok(()), check_sha256)
}

/// The id of a URL: 16 hex digits of its sha256.
fn source_id(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}

/// The sources kept in one datastore.
#[derive(Clone, Debug)]
pub struct Sources {
    store: PluginStore,
}

impl Sources {
    /// The sources of `datastore`.
    pub fn new(datastore: &Datastore) -> Self {
        Sources {
            store: datastore.namespace(FRAMEWORK_NAMESPACE),
        }
    }

    /// Every kept source, by id.
    pub async fn list(&self) -> Result<Vec<Source>, StoreError> {
        let mut sources = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list(SOURCES_PREFIX, cursor.as_deref(), 1000)
                .await?;
            for meta in &page.objects {
                if let Some(source) = self.read(&meta.key).await? {
                    sources.push(source);
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(sources),
            }
        }
    }

    /// Keeps a new source; a URL kept already is [`SourceError::Duplicate`].
    pub async fn add(&self, url: &str, sha256: Option<&str>) -> Result<Source, SourceError> {
        check_url(url)?;
        if let Some(sha256) = sha256 {
            check_sha256(sha256)?;
        }

        let id = source_id(url);
        let source = Source {
            id: id.clone(),
            url: url.to_owned(),
            sha256: sha256.map(str::to_ascii_lowercase),
            added: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let value = serde_json::to_vec(&source).map_err(|error| StoreError::Corrupt {
            key: id.clone(),
            reason: error.to_string(),
        })?;
        let options = PutOptions::new()
            .content_type("application/json")
            .if_absent();
        match self.store.put(&key(&id), value, options).await {
            Ok(_) => Ok(source),
            Err(StoreError::PreconditionFailed { .. }) => Err(SourceError::Duplicate {
                url: url.to_owned(),
                id,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Forgets a source; whether there was one.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(false);
        }
        self.store.delete(&key(id)).await
    }

    async fn read(&self, key: &str) -> Result<Option<Source>, StoreError> {
        let Some(object) = self.store.get(key).await? else {
            return Ok(None);
        };
        let bytes = object.bytes().await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::Corrupt {
                key: key.to_owned(),
                reason: format!("not a source: {error}"),
            })
    }
}

fn key(id: &str) -> String {
    format!("{SOURCES_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_the_three_schemes_are_accepted() {
        for url in [
            "https://example.org/weather-0.2.0.tar.gz",
            "http://127.0.0.1:8000/a.crate",
            "HTTPS://Example.org/x.tgz",
            "file:///srv/plugins/a.tar",
        ] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            (
                "ftp://example.org/a.tar",
                "the scheme must be https, http or file",
            ),
            (
                "example.org/a.tar",
                "it must start with https://, http:// or file://",
            ),
            ("https:///a.tar", "it has no host"),
            (
                "https://exa mple.org/a.tar",
                "it must not contain spaces or control characters",
            ),
            (
                "file://relative/a.tar",
                "a file URL needs an absolute path, as file:///path",
            ),
            (
                "javascript://alert(1)",
                "the scheme must be https, http or file",
            ),
            (
                "https://user:secret@example.org/a.tar",
                "it carries credentials, which would be kept and shown; use a URL without them",
            ),
        ] {
            match check_url(url) {
                Err(SourceError::InvalidUrl { reason: got, .. }) => {
                    assert_eq!(got, reason, "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_sha256_is_64_hex_digits() {
        assert!(check_sha256(&"aB".repeat(32)).is_ok());
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert!(check_sha256(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_id_depends_only_on_the_url() {
        assert_eq!(source_id("https://a/x.tgz"), source_id("https://a/x.tgz"));
        assert_ne!(source_id("https://a/x.tgz"), source_id("https://a/y.tgz"));
        assert_eq!(source_id("https://a/x.tgz").len(), 16);
    }
}
