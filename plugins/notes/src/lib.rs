//! `notes`: short notes with a JSON API (create, list with paging, read, update, delete)
//! and a page to edit them. It shows a typed config table and a context constructor.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use kneedeep::prelude::*;
use serde::Deserialize;

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
    // FIXME(the datastore service does not exist yet): notes live in memory and are lost
    // on restart; they move onto the plugin's datastore with the services work.
    notes: Mutex<BTreeMap<String, Item>>,
}

impl FromContext for NotesApi {
    fn from_context(context: &PluginContext) -> Result<Self, BoxError> {
        let config = context
            .config::<NotesConfig>()
            .ok_or("notes config missing")?;
        Ok(NotesApi {
            max_note_bytes: config.max_note_bytes,
            notes: Mutex::new(BTreeMap::new()),
        })
    }
}

/// A note.
#[derive(Object, Clone)]
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
    next: Option<String>,
}

/// An error body.
#[derive(Object)]
struct Error {
    error: String,
}

#[derive(ApiResponse)]
enum CreateResponse {
    /// The note was created.
    #[oai(status = 201)]
    Created(Json<Item>),
    /// Title and body together are over `max_note_bytes`.
    #[oai(status = 413)]
    TooLarge(Json<Error>),
}

#[derive(ApiResponse)]
enum NoteResponse {
    /// The note.
    #[oai(status = 200)]
    Ok(Json<Item>),
    /// No note has this id.
    #[oai(status = 404)]
    NotFound(Json<Error>),
    /// Title and body together are over `max_note_bytes`.
    #[oai(status = 413)]
    TooLarge(Json<Error>),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// The note is gone.
    #[oai(status = 204)]
    Deleted,
    /// No note has this id.
    #[oai(status = 404)]
    NotFound(Json<Error>),
}

#[OpenApi]
impl NotesApi {
    /// Creates a note.
    #[oai(path = "/notes", method = "post", operation_id = "create")]
    async fn create(&self, input: Json<NoteInput>) -> CreateResponse {
        if let Some(error) = self.too_large(&input) {
            return CreateResponse::TooLarge(error);
        }
        let now = now();
        let mut notes = self.lock();
        let item = Item {
            id: new_id(notes.keys().next_back()),
            title: input.0.title,
            body: input.0.body,
            created: now.clone(),
            updated: now,
        };
        notes.insert(item.id.clone(), item.clone());
        CreateResponse::Created(Json(item))
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
        cursor: Query<Option<String>>,
    ) -> Json<Page> {
        let notes = self.lock();
        let after = cursor.0.unwrap_or_default();
        let mut items: Vec<Item> = notes
            .range::<String, _>((
                std::ops::Bound::Excluded(&after),
                std::ops::Bound::Unbounded,
            ))
            .take(limit.0 as usize + 1)
            .map(|(_, item)| item.clone())
            .collect();
        let next = (items.len() > limit.0 as usize).then(|| {
            items.truncate(limit.0 as usize);
            items.last().map(|item| item.id.clone()).unwrap_or_default()
        });
        Json(Page { items, next })
    }

    /// Reads one note.
    #[oai(path = "/notes/:id", method = "get", operation_id = "get")]
    async fn get(&self, id: Path<String>) -> NoteResponse {
        match self.lock().get(&id.0) {
            Some(item) => NoteResponse::Ok(Json(item.clone())),
            None => NoteResponse::NotFound(not_found(&id.0)),
        }
    }

    /// Replaces a note's title and body.
    #[oai(path = "/notes/:id", method = "put", operation_id = "update")]
    async fn update(&self, id: Path<String>, input: Json<NoteInput>) -> NoteResponse {
        if let Some(error) = self.too_large(&input) {
            return NoteResponse::TooLarge(error);
        }
        let mut notes = self.lock();
        let Some(item) = notes.get_mut(&id.0) else {
            return NoteResponse::NotFound(not_found(&id.0));
        };
        item.title = input.0.title;
        item.body = input.0.body;
        item.updated = now();
        NoteResponse::Ok(Json(item.clone()))
    }

    /// Deletes a note.
    #[oai(path = "/notes/:id", method = "delete", operation_id = "delete")]
    async fn delete(&self, id: Path<String>) -> DeleteResponse {
        match self.lock().remove(&id.0) {
            Some(_) => DeleteResponse::Deleted,
            None => DeleteResponse::NotFound(not_found(&id.0)),
        }
    }
}

impl NotesApi {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Item>> {
        self.notes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn too_large(&self, input: &NoteInput) -> Option<Json<Error>> {
        let size = input.title.len() + input.body.len();
        (size > self.max_note_bytes).then(|| {
            Json(Error {
                error: format!(
                    "note is {size} bytes, over the limit of {} (max_note_bytes)",
                    self.max_note_bytes
                ),
            })
        })
    }
}

fn default_limit() -> u32 {
    50
}

fn not_found(id: &str) -> Json<Error> {
    Json(Error {
        error: format!("no note with id '{id}'"),
    })
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A time-ordered id, 16 hex digits of nanoseconds since 1970, after the `newest` id.
fn new_id(newest: Option<&String>) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let after_newest = newest
        .and_then(|id| u64::from_str_radix(id, 16).ok())
        .map_or(0, |id| id + 1);
    format!("{:016x}", nanos.max(after_newest))
}
