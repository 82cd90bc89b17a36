//! Serving files embedded in the binary: each plugin's UI folder and the framework's own
//! static assets (the stylesheet and the one shared copy of Swagger UI).

use std::borrow::Cow;

use bytes::Bytes;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use crate::plugin::UiFiles;
use crate::server::error_response;

/// The framework's assets, served under `/static/`.
#[derive(rust_embed::RustEmbed)]
#[folder = "assets/static/"]
pub(crate) struct StaticAssets;

/// Serves one embedded folder: `index.html` for the folder itself, a content type from
/// the file name, a strong ETag from the content hash, and 304 on `If-None-Match`.
pub(crate) struct EmbeddedFiles {
    files: UiFiles,
    /// Served with `Cache-Control`; plugin UIs revalidate, shared assets may be cached.
    cache_control: &'static str,
}

impl EmbeddedFiles {
    pub(crate) fn plugin_ui(files: UiFiles) -> Self {
        EmbeddedFiles {
            files,
            cache_control: "no-cache",
        }
    }

    pub(crate) fn static_assets() -> Self {
        EmbeddedFiles {
            files: UiFiles::of::<StaticAssets>(),
            cache_control: "public, max-age=3600",
        }
    }
}

impl Endpoint for EmbeddedFiles {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let path = request.uri().path().trim_start_matches('/');

        // `/plugins/x/ui` must become `/plugins/x/ui/`, or the page's relative links break.
        if path.is_empty() && !request.original_uri().path().ends_with('/') {
            let target = format!("{}/", request.original_uri().path());
            return Ok(Response::builder()
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(header::LOCATION, target)
                .finish());
        }

        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let name = if decoded.is_empty() || decoded.ends_with('/') {
            format!("{decoded}index.html")
        } else {
            decoded.into_owned()
        };
        let Some(file) = (self.files.get)(&name) else {
            return Ok(error_response(
                StatusCode::NOT_FOUND,
                format!("no file '{name}' here"),
            ));
        };

        let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
        let matches = request
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(',')
                    .any(|tag| tag.trim() == etag || tag.trim() == "*")
            });

        let builder = Response::builder()
            .header(header::ETAG, etag)
            .header(header::CACHE_CONTROL, self.cache_control);
        if matches {
            return Ok(builder.status(StatusCode::NOT_MODIFIED).finish());
        }

        let content_type = HeaderValue::from_str(file.metadata.mimetype())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        Ok(builder
            .header(header::CONTENT_TYPE, content_type)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(match file.data {
                Cow::Borrowed(data) => Body::from_bytes(Bytes::from_static(data)),
                Cow::Owned(data) => Body::from_vec(data),
            })
            .into_response())
    }
}
