-- Large values move out of the database into files beside it, one per upload. The
-- triggers still drop the old upload's row in the statement that replaces or deletes an
-- object, but its file can only be removed by the process once that statement committed,
-- so the writing statement must learn which upload it replaced: every write of a row
-- stores the upload it pointed at before, and returns it.

ALTER TABLE kd_objects ADD COLUMN replaced_upload_id INTEGER;
