-- The object datastore. A value that fits in one chunk lives in its object row; a larger
-- one lives in the chunks of an upload that the row points at. The trigger frees the old
-- upload in the same statement that replaces or deletes the row, so a put or a delete is
-- one atomic statement.

CREATE TABLE kd_uploads (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace TEXT NOT NULL,
    touched_ms BIGINT NOT NULL
);

CREATE TABLE kd_chunks (
    upload_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (upload_id, seq)
);

-- Chunks are already as large as they should be, and rarely compress: skip TOAST's
-- compression pass.
ALTER TABLE kd_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE kd_objects (
    namespace TEXT NOT NULL,
    key BYTEA NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    inline_data BYTEA,
    upload_id BIGINT,
    PRIMARY KEY (namespace, key)
);

ALTER TABLE kd_objects ALTER COLUMN inline_data SET STORAGE EXTERNAL;

CREATE INDEX kd_objects_upload ON kd_objects (upload_id) WHERE upload_id IS NOT NULL;

CREATE FUNCTION kd_release_upload() RETURNS trigger AS $$
BEGIN
    IF OLD.upload_id IS NOT NULL
       AND (TG_OP = 'DELETE' OR OLD.upload_id IS DISTINCT FROM NEW.upload_id) THEN
        DELETE FROM kd_chunks WHERE upload_id = OLD.upload_id;
        DELETE FROM kd_uploads WHERE id = OLD.upload_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER kd_objects_release AFTER UPDATE OR DELETE ON kd_objects
FOR EACH ROW EXECUTE FUNCTION kd_release_upload();
