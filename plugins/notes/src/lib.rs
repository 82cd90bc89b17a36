//! `notes`: short notes with a JSON API (create, list with paging, read, update, delete)
//! and a page to edit them. It shows a typed config table, a constructor that keeps the
//! context, the datastore (each note is one object `notes/<id>` holding its JSON), and a
//! metric and a log event of its own, which the framework labels with the plugin's name.

use std::time::SystemTime;

use kneedeep::metrics::Counter;
use kneedeep::prelude::*;
use serde::{Deserialize, Serialize};

/// Short notes: add, list, edit and delete them.
#[derive(Plugin)]
#[plugin(name = "notes", api = NotesApi, ui = "ui", config = NotesConfig)]
pub struct Notes;

/// `[plugins.notes]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct NotesConfig {
    /// The largest title plus body a note may have, in bytes. Default 65536.
    pub max_note_bytes: usize,
}

impl Default for NotesConfig {
    fn default() -> Self {
        NotesConfig {
            max_note_bytes: 65536,
        }
    }
}

/// The API of `notes`.
pub struct NotesApi {
    max_note_bytes: usize,
    store: PluginStore,
    /// `notes_created_total{plugin="notes"}`.
    created: Counter,
}

impl FromContext for NotesApi {
    fn from_context(context: &PluginContext) -> Result<Self, BoxError> {
        let config = context
            .config::<NotesConfig>()
            .ok_or("notes config missing")?;
        Ok(NotesApi {
            max_note_bytes: config.max_note_bytes,
            store: context.store().clone(),
            created: context.metrics().counter("notes_created_total"),
        })
    }
}

/// A note.
#[derive(Object, Clone, Serialize, Deserialize)]
struct Item {
    /// Sortable identifier, assigned on creation.
    id: String,
    title: String,
    body: String,
    /// When it was created, RFC 3339.
    created: String,
    /// When it was last changed, RFC 3339.
    updated: String,
}

/// What a client sends to create or replace a note.
#[derive(Object)]
struct NoteInput {
    #[oai(validator(min_length = 1))]
    title: String,
    #[oai(default)]
    body: String,
}

/// One page of notes, oldest first.
#[derive(Object)]
struct Page {
    items: Vec<Item>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next: Option<String>,
}

#[derive(ApiResponse)]
enum Created {
    /// The note was created.
    #[oai(status = 201)]
    Created(Json<Item>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The note is gone.
    #[oai(status = 204)]
    Deleted,
}

/// Every note's key starts with this.
const PREFIX: &str = "notes/";

#[OpenApi]
impl NotesApi {
    /// Creates a note.
    #[oai(path = "/notes", method = "post", operation_id = "create")]
    async fn create(&self, input: Json<NoteInput>) -> Result<Created, ApiError> {
        self.check_size(&input)?;
        let now = now();
        let mut item = Item {
            id: new_id(0),
            title: input.0.title,
            body: input.0.body,
            created: now.clone(),
            updated: now,
        };

        // Ids are time-ordered; two notes created in the same nanosecond take the next one.
        for attempt in 1..=16 {
            match self
                .store
                .put(&key(&item.id), to_json(&item)?, json_object().if_absent())
                .await
            {
                Ok(_) => {
                    self.created.increment(1);
                    kneedeep::tracing::info!(id = %item.id, "note created");
                    return Ok(Created::Created(Json(item)));
                }
                Err(StoreError::PreconditionFailed { .. }) => item.id = new_id(attempt),
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::conflict(
            "could not find a free note id; try again",
        ))
    }

    /// Lists notes, oldest first, `limit` at a time.
    #[oai(path = "/notes", method = "get", operation_id = "list")]
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
        let after = cursor.0.as_deref().map(key);
        let page = self.store.list(PREFIX, after.as_deref(), limit.0).await?;

        let mut items = Vec::with_capacity(page.objects.len());
        for meta in &page.objects {
            // A note deleted between the listing and this read is simply left out.
            if let Some((item, _)) = self.read(&meta.key).await? {
                items.push(item);
            }
        }
        let next = page
            .next
            .map(|key| key.trim_start_matches(PREFIX).to_owned());
        Ok(Json(Page { items, next }))
    }

    /// Reads one note.
    #[oai(path = "/notes/:id", method = "get", operation_id = "get")]
    async fn get(&self, id: Path<String>) -> Result<Json<Item>, ApiError> {
        match self.read(&key(&id.0)).await? {
            Some((item, _)) => Ok(Json(item)),
            None => Err(not_found(&id.0)),
        }
    }

    /// Replaces a note's title and body.
    #[oai(path = "/notes/:id", method = "put", operation_id = "update")]
    async fn update(
        &self,
        id: Path<String>,
        input: Json<NoteInput>,
    ) -> Result<Json<Item>, ApiError> {
        self.check_size(&input)?;
        let Some((mut item, etag)) = self.read(&key(&id.0)).await? else {
            return Err(not_found(&id.0));
        };
        item.title = input.0.title;
        item.body = input.0.body;
        item.updated = now();

        // Compare and swap: an edit made meanwhile by someone else is never lost silently.
        match self
            .store
            .put(&key(&id.0), to_json(&item)?, json_object().if_match(etag))
            .await
        {
            Ok(_) => Ok(Json(item)),
            Err(StoreError::PreconditionFailed { .. }) => Err(ApiError::conflict(format!(
                "note '{}' changed meanwhile; reload it and retry",
                id.0
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a note.
    #[oai(path = "/notes/:id", method = "delete", operation_id = "delete")]
    async fn delete(&self, id: Path<String>) -> Result<Deleted, ApiError> {
        match self.store.delete(&key(&id.0)).await? {
            true => Ok(Deleted::Deleted),
            false => Err(not_found(&id.0)),
        }
    }
}

impl NotesApi {
    /// The note under `key` and its etag, or `None`.
    async fn read(&self, key: &str) -> Result<Option<(Item, String)>, ApiError> {
        let Some(object) = self.store.get(key).await? else {
            return Ok(None);
        };
        let etag = object.meta.etag.clone();
        let bytes = object.bytes().await?;
        let item = serde_json::from_slice(&bytes).map_err(|error| ApiError::internal(&error))?;
        Ok(Some((item, etag)))
    }

    fn check_size(&self, input: &NoteInput) -> Result<(), ApiError> {
        let size = input.title.len() + input.body.len();
        if size <= self.max_note_bytes {
            return Ok(());
        }
        Err(ApiError::payload_too_large(format!(
            "note is {size} bytes, over the limit of {} (max_note_bytes)",
            self.max_note_bytes
        )))
    }
}

fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn json_object() -> PutOptions {
    PutOptions::new().content_type("application/json")
}

fn to_json(item: &Item) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(item).map_err(|error| ApiError::internal(&error))
}

fn default_limit() -> u32 {
    50
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no note with id '{id}'"))
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A time-ordered id: 16 hex digits of nanoseconds since 1970, plus `offset`.
fn new_id(offset: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    format!("{:016x}", nanos + offset)
}
