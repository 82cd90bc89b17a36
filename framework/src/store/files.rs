//! The large values of the SQLite backend, kept as files in a folder beside the database
//! (`<database file>.blobs/`): one file per upload, named after the upload's id, staged
//! as `<id>.tmp` and renamed to `<id>` once it is whole and on disk.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::io::AsyncReadExt;

use super::{CHUNK_SIZE, ObjectMeta, StoreError};

/// The suffix of a file whose upload is still being written.
const STAGING_SUFFIX: &str = ".tmp";

/// The folder of value files beside one SQLite database.
#[derive(Clone, Debug)]
pub(crate) struct BlobFolder {
    path: PathBuf,
}

/// A large value being written to its staging file.
pub(crate) struct StagedFile {
    file: std::fs::File,
    staging: PathBuf,
    done: PathBuf,
    folder: PathBuf,
}

impl BlobFolder {
    /// The folder that belongs to the database file `database`.
    pub(crate) fn beside(database: &Path) -> BlobFolder {
        let mut name = OsString::from(database.as_os_str());
        name.push(".blobs");
        BlobFolder {
            path: PathBuf::from(name),
        }
    }

    pub(crate) fn create(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.path).map_err(|source| StoreError::Folder {
            folder: self.path.clone(),
            source,
        })
    }

    fn done_path(&self, upload_id: i64) -> PathBuf {
        self.path.join(upload_id.to_string())
    }

    fn staging_path(&self, upload_id: i64) -> PathBuf {
        self.path.join(format!("{upload_id}{STAGING_SUFFIX}"))
    }

    /// Creates the staging file of a new upload.
    pub(crate) async fn stage(&self, upload_id: i64) -> Result<StagedFile, StoreError> {
        let staging = self.staging_path(upload_id);
        let file = tokio::fs::File::create(&staging)
            .await
            .map_err(file_error("create", &staging))?;
        Ok(StagedFile {
            file: file.into_std().await,
            staging,
            done: self.done_path(upload_id),
            folder: self.path.clone(),
        })
    }

    /// Streams the value of `upload_id` in chunks of [`CHUNK_SIZE`]; `None` when its file
    /// is gone, because the object was replaced or deleted since its row was read.
    pub(crate) async fn open(
        &self,
        upload_id: i64,
        meta: ObjectMeta,
    ) -> Result<Option<(ObjectMeta, BoxStream<'static, Result<Bytes, StoreError>>)>, StoreError>
    {
        let path = self.done_path(upload_id);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(file_error("open", &path)(error)),
        };

        // One read from the disk per chunk.
        file.set_max_buf_size(CHUNK_SIZE);

        // The open file keeps its contents even if a put replaces the object now.
        let key = meta.key.clone();
        let size = meta.size;
        let body = stream::try_unfold((file, 0_u64), move |(mut file, read)| {
            let key = key.clone();
            async move {
                let mut chunk = BytesMut::with_capacity(CHUNK_SIZE);
                while chunk.len() < CHUNK_SIZE {
                    let count =
                        file.read_buf(&mut chunk)
                            .await
                            .map_err(|error| StoreError::Corrupt {
                                key: key.clone(),
                                reason: format!("its file cannot be read: {error}"),
                            })?;
                    if count == 0 {
                        break;
                    }
                }

                let read = read + chunk.len() as u64;
                if chunk.is_empty() && read == size {
                    return Ok(None);
                }
                if chunk.is_empty() || read > size {
                    return Err(StoreError::Corrupt {
                        key,
                        reason: format!("its file does not hold {size} bytes"),
                    });
                }
                Ok(Some((chunk.freeze(), (file, read))))
            }
        });
        Ok(Some((meta, body.boxed())))
    }

    /// Removes the files of an upload, staged or whole; one already gone is no error.
    pub(crate) async fn remove(&self, upload_id: i64) -> Result<(), StoreError> {
        for path in [self.staging_path(upload_id), self.done_path(upload_id)] {
            match tokio::fs::remove_file(&path).await {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(file_error("remove", &path)(error));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Each upload that has a file here, with the time its newest file was last written.
    /// Names that are not an upload's are left alone.
    pub(crate) async fn uploads(&self) -> Result<BTreeMap<i64, SystemTime>, StoreError> {
        let mut uploads = BTreeMap::new();
        let mut entries = tokio::fs::read_dir(&self.path)
            .await
            .map_err(file_error("list", &self.path))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(file_error("list", &self.path))?
        {
            let name = entry.file_name();
            let Some(upload_id) = name
                .to_str()
                .map(|name| name.strip_suffix(STAGING_SUFFIX).unwrap_or(name))
                .and_then(|id| id.parse::<i64>().ok())
            else {
                continue;
            };

            // A file removed since the listing has nothing left to collect.
            let modified = match entry.metadata().await.and_then(|meta| meta.modified()) {
                Ok(modified) => modified,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(file_error("inspect", &entry.path())(error)),
            };
            let newest = uploads.entry(upload_id).or_insert(modified);
            *newest = (*newest).max(modified);
        }
        Ok(uploads)
    }

    /// How many chunks the files hold, each file counted as the chunks its length fills.
    pub(crate) async fn chunk_count(&self) -> Result<i64, StoreError> {
        let mut chunks = 0;
        let mut entries = tokio::fs::read_dir(&self.path)
            .await
            .map_err(file_error("list", &self.path))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(file_error("list", &self.path))?
        {
            let length = match entry.metadata().await {
                Ok(meta) => meta.len(),
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(file_error("inspect", &entry.path())(error)),
            };
            chunks += length.div_ceil(CHUNK_SIZE as u64);
        }
        Ok(i64::try_from(chunks).unwrap_or(i64::MAX))
    }
}

impl StagedFile {
    /// Appends `chunk`; returns once it is written, so a crash after it finds it there.
    pub(crate) async fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let mut file = self
            .file
            .try_clone()
            .map_err(file_error("write", &self.staging))?;
        let written = tokio::task::spawn_blocking(move || file.write_all(&chunk))
            .await
            .map_err(io::Error::other)
            .and_then(|written| written);
        written.map_err(file_error("write", &self.staging))
    }

    /// Puts the whole value on disk under its final name: the file is synced, renamed,
    /// and the folder synced, so that the rename survives a crash too.
    pub(crate) async fn finish(self) -> Result<(), StoreError> {
        let StagedFile {
            file,
            staging,
            done,
            folder,
        } = self;
        let failed = file_error("sync", &staging);
        tokio::task::spawn_blocking(move || {
            file.sync_all().map_err(file_error("sync", &staging))?;
            drop(file);
            std::fs::rename(&staging, &done).map_err(file_error("rename", &staging))?;
            std::fs::File::open(&folder)
                .and_then(|folder| folder.sync_all())
                .map_err(file_error("sync", &folder))
        })
        .await
        .map_err(|error| failed(io::Error::other(error)))?
    }
}

/// Makes an I/O error on `path` a [`StoreError::File`].
fn file_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::File {
        action,
        path,
        source,
    }
}
