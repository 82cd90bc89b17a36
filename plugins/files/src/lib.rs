//! `files`: files of any size and type, uploaded with `PUT` and served back with their
//! content type, length and ETag; listed with paging; and a page to upload and download
//! them. Bodies are streamed both ways through the datastore, never held whole.

use std::time::SystemTime;

use kneedeep::payload::AnyContent;
use kneedeep::poem::Body;
use kneedeep::poem_openapi::param::Header;
use kneedeep::poem_openapi::payload::Binary;
use kneedeep::prelude::*;

/// Files of any type: upload, list, download and delete them.
#[derive(Plugin)]
#[plugin(name = "files", api = FilesApi, ui = "ui")]
pub struct Files;

/// The API of `files`: each file is one object of the plugin's datastore, keyed by name.
pub struct FilesApi {
    store: PluginStore,
}

impl FromContext for FilesApi {
    fn from_context(context: &PluginContext) -> Result<Self, BoxError> {
        Ok(FilesApi {
            store: context.store().clone(),
        })
    }
}

/// A stored file's metadata.
#[derive(Object, Clone)]
struct Item {
    name: String,
    /// Bytes.
    size: u64,
    /// The sha256 of the content, in hex; the `ETag` header is this, quoted.
    etag: String,
    content_type: String,
    /// When it was last written, RFC 3339.
    updated: String,
}

/// What a `PUT` answers.
#[derive(Object)]
struct Written {
    name: String,
    size: u64,
    etag: String,
}

/// One page of files, by name.
#[derive(Object)]
struct Page {
    items: Vec<Item>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next: Option<String>,
}

#[derive(ApiResponse)]
enum PutResponse {
    /// The file was stored.
    #[oai(status = 201)]
    Created(Json<Written>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
enum GetResponse {
    /// The file's content, streamed.
    #[oai(status = 200)]
    Ok(
        AnyContent,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "ETag")] String,
        /// Always `attachment`: an uploaded page never runs as this site.
        #[oai(header = "Content-Disposition")]
        String,
        /// `sandbox`, for the same reason.
        #[oai(header = "Content-Security-Policy")]
        String,
    ),
}

#[derive(ApiResponse)]
enum HeadResponse {
    /// The file exists.
    #[oai(status = 200)]
    Ok(
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "ETag")] String,
    ),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// The file is gone.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi]
impl FilesApi {
    /// Stores the request body under `name`, with its content type. `If-Match: "<etag>"`
    /// replaces only that version; `If-None-Match: *` only creates.
    #[oai(path = "/files/:name", method = "put", operation_id = "put")]
    async fn put(
        &self,
        name: Path<String>,
        #[oai(name = "Content-Type")] content_type: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
        body: Binary<Body>,
    ) -> Result<PutResponse, ApiError> {
        let content_type = content_type
            .0
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let mut options = PutOptions::new().content_type(content_type);
        // An empty header carries no condition.
        let if_match = if_match.0.filter(|etag| !etag.trim().is_empty());
        if let Some(etag) = if_match {
            options = options.if_match(etag.trim().trim_matches('"'));
        } else if if_none_match.0.as_deref().map(str::trim) == Some("*") {
            options = options.if_absent();
        }

        let meta = self
            .store
            .put_stream(&name.0, body.0.into_bytes_stream(), options)
            .await?;
        let etag = format!("\"{}\"", meta.etag);
        Ok(PutResponse::Created(
            Json(Written {
                name: meta.key,
                size: meta.size,
                etag: meta.etag,
            }),
            etag,
        ))
    }

    /// Downloads a file, streamed.
    #[oai(path = "/files/:name", method = "get", operation_id = "get")]
    async fn get(&self, name: Path<String>) -> Result<GetResponse, ApiError> {
        let Some(object) = self.store.get(&name.0).await? else {
            return Err(not_found(&name.0));
        };
        let meta = object.meta;
        let disposition = format!(
            "attachment; filename*=UTF-8''{}",
            encode_filename(&meta.key)
        );
        let content = AnyContent {
            content_type: meta.content_type,
            body: Body::from_bytes_stream(object.body),
        };
        Ok(GetResponse::Ok(
            content,
            meta.size,
            format!("\"{}\"", meta.etag),
            disposition,
            "sandbox".to_owned(),
        ))
    }

    /// A file's size, content type and ETag, without its content.
    #[oai(path = "/files/:name", method = "head", operation_id = "head")]
    async fn head(&self, name: Path<String>) -> Result<HeadResponse, ApiError> {
        let Some(meta) = self.store.head(&name.0).await? else {
            // The same 404 as `GET`, headers and all; a HEAD answer has no body.
            return Err(not_found(&name.0));
        };
        let etag = format!("\"{}\"", meta.etag);
        Ok(HeadResponse::Ok(meta.content_type, meta.size, etag))
    }

    /// Lists files by name, `limit` at a time.
    #[oai(path = "/files", method = "get", operation_id = "list")]
    async fn list(
        &self,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
        /// The `next` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page>, ApiError> {
        let page = self.store.list("", cursor.0.as_deref(), limit.0).await?;
        let items = page
            .objects
            .into_iter()
            .map(|meta| Item {
                name: meta.key,
                size: meta.size,
                etag: meta.etag,
                content_type: meta.content_type,
                updated: rfc3339(meta.updated),
            })
            .collect();
        Ok(Json(Page {
            items,
            next: page.next,
        }))
    }

    /// Deletes a file.
    #[oai(path = "/files/:name", method = "delete", operation_id = "delete")]
    async fn delete(&self, name: Path<String>) -> Result<DeleteResponse, ApiError> {
        match self.store.delete(&name.0).await? {
            true => Ok(DeleteResponse::Deleted),
            false => Err(not_found(&name.0)),
        }
    }
}

fn default_limit() -> u32 {
    100
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no file named '{name}'"))
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Percent-encodes a file name for `filename*=` (RFC 8187): all but unreserved bytes.
fn encode_filename(name: &str) -> String {
    name.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
