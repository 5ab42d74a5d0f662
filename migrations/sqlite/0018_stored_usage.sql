-- The raw usage of an import, kept as the meter sent it (after gzip decoding), compressed:
-- zstd frames of 4 MiB of content each (`input::stored`), in content order (`seq` 0, 1, 2…),
-- written in the import's own transaction. `content_sha256`, `content_bytes` and
-- `content_chunks` say what the whole content was, so that `verify` can tell the stored bytes
-- are the ones imported. Imports made before the bytes were kept have none of these (NULL).
ALTER TABLE usage_imports ADD COLUMN content_sha256 TEXT;
ALTER TABLE usage_imports ADD COLUMN content_bytes INTEGER;
ALTER TABLE usage_imports ADD COLUMN content_chunks INTEGER;

CREATE TABLE usage_chunks (
    import_id INTEGER NOT NULL REFERENCES usage_imports (import_id),
    seq       INTEGER NOT NULL,
    raw_bytes INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (import_id, seq)
);
