//! `files`: files of any type, uploaded with `PUT` and served back with their content
//! type, length and ETag; listed with paging; and a page to upload and download them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use kneedeep::poem::Body;
use kneedeep::poem::web::headers::ContentType;
use kneedeep::poem_openapi::payload::Binary;
use kneedeep::prelude::*;
use sha2::{Digest, Sha256};

/// Files of any type: upload, list, download and delete them.
#[derive(Plugin)]
#[plugin(name = "files", api = FilesApi, ui = "ui")]
pub struct Files;

/// The API of `files`.
#[derive(Default)]
pub struct FilesApi {
    // FIXME(the datastore service does not exist yet): files live in memory, whole, and are
    // lost on restart; they move onto the plugin's datastore, streamed in chunks.
    files: Mutex<BTreeMap<String, Stored>>,
}

struct Stored {
    data: Vec<u8>,
    item: Item,
}

/// A stored file's metadata.
#[derive(Object, Clone)]
struct Item {
    name: String,
    /// Bytes.
    size: u64,
    /// Changes whenever the content does.
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
    next: Option<String>,
}

/// An error body.
#[derive(Object)]
struct Error {
    error: String,
}

#[derive(ApiResponse)]
enum PutResponse {
    /// The file was stored.
    #[oai(status = 201)]
    Created(Json<Written>),
    /// The request body could not be read to its end.
    #[oai(status = 400)]
    BadBody(Json<Error>),
}

#[derive(ApiResponse)]
enum GetResponse {
    /// The file's content.
    #[oai(status = 200)]
    Ok(
        Binary<Body>,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "ETag")] String,
    ),
    /// No file has this name.
    #[oai(status = 404)]
    NotFound(Json<Error>),
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
    /// No file has this name.
    #[oai(status = 404)]
    NotFound,
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// The file is gone.
    #[oai(status = 204)]
    Deleted,
    /// No file has this name.
    #[oai(status = 404)]
    NotFound(Json<Error>),
}

#[OpenApi]
impl FilesApi {
    /// Stores the request body under `name`, with its content type.
    #[oai(path = "/files/:name", method = "put", operation_id = "put")]
    async fn put(
        &self,
        name: Path<String>,
        content_type: kneedeep::poem::web::TypedHeader<ContentType>,
        body: Binary<Body>,
    ) -> PutResponse {
        let data = match body.0.into_vec().await {
            Ok(data) => data,
            Err(error) => {
                return PutResponse::BadBody(Json(Error {
                    error: error.to_string(),
                }));
            }
        };
        let item = Item {
            name: name.0.clone(),
            size: data.len() as u64,
            etag: format!("\"{}\"", hex(&Sha256::digest(&data))),
            content_type: content_type.0.to_string(),
            updated: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        };
        let written = Written {
            name: item.name.clone(),
            size: item.size,
            etag: item.etag.clone(),
        };
        self.lock().insert(name.0, Stored { data, item });
        PutResponse::Created(Json(written))
    }

    /// Downloads a file.
    #[oai(path = "/files/:name", method = "get", operation_id = "get")]
    async fn get(&self, name: Path<String>) -> GetResponse {
        match self.lock().get(&name.0) {
            Some(stored) => GetResponse::Ok(
                Binary(Body::from_vec(stored.data.clone())),
                stored.item.content_type.clone(),
                stored.item.etag.clone(),
            ),
            None => GetResponse::NotFound(not_found(&name.0)),
        }
    }

    /// A file's size, content type and ETag, without its content.
    #[oai(path = "/files/:name", method = "head", operation_id = "head")]
    async fn head(&self, name: Path<String>) -> HeadResponse {
        match self.lock().get(&name.0) {
            Some(stored) => HeadResponse::Ok(
                stored.item.content_type.clone(),
                stored.item.size,
                stored.item.etag.clone(),
            ),
            None => HeadResponse::NotFound,
        }
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
        cursor: Query<Option<String>>,
    ) -> Json<Page> {
        let files = self.lock();
        let after = cursor.0.unwrap_or_default();
        let limit = limit.0 as usize;
        let mut items: Vec<Item> = files
            .range::<String, _>((
                std::ops::Bound::Excluded(&after),
                std::ops::Bound::Unbounded,
            ))
            .take(limit + 1)
            .map(|(_, stored)| stored.item.clone())
            .collect();
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items
                .last()
                .map(|item| item.name.clone())
                .unwrap_or_default()
        });
        Json(Page { items, next })
    }

    /// Deletes a file.
    #[oai(path = "/files/:name", method = "delete", operation_id = "delete")]
    async fn delete(&self, name: Path<String>) -> DeleteResponse {
        match self.lock().remove(&name.0) {
            Some(_) => DeleteResponse::Deleted,
            None => DeleteResponse::NotFound(not_found(&name.0)),
        }
    }
}

impl FilesApi {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Stored>> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn default_limit() -> u32 {
    100
}

fn not_found(name: &str) -> Json<Error> {
    Json(Error {
        error: format!("no file named '{name}'"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
