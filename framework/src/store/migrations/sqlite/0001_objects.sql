-- The object datastore. A value that fits in one chunk lives in its object row; a larger
-- one lives in the chunks of an upload that the row points at. The triggers free the old
-- upload in the same statement that replaces or deletes the row, so a put or a delete is
-- one atomic statement.

CREATE TABLE kd_uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    touched_ms INTEGER NOT NULL
);

CREATE TABLE kd_chunks (
    upload_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (upload_id, seq)
);

CREATE TABLE kd_objects (
    namespace TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    inline_data BLOB,
    upload_id INTEGER,
    PRIMARY KEY (namespace, key)
);

CREATE INDEX kd_objects_upload ON kd_objects (upload_id) WHERE upload_id IS NOT NULL;

CREATE TRIGGER kd_objects_release_on_update AFTER UPDATE OF upload_id ON kd_objects
WHEN old.upload_id IS NOT NULL AND old.upload_id IS NOT new.upload_id
BEGIN
    DELETE FROM kd_chunks WHERE upload_id = old.upload_id;
    DELETE FROM kd_uploads WHERE id = old.upload_id;
END;

CREATE TRIGGER kd_objects_release_on_delete AFTER DELETE ON kd_objects
WHEN old.upload_id IS NOT NULL
BEGIN
    DELETE FROM kd_chunks WHERE upload_id = old.upload_id;
    DELETE FROM kd_uploads WHERE id = old.upload_id;
END;
