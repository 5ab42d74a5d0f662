-- The raw usage of an import, kept as the meter sent it (after gzip decoding), compressed:
-- zstd frames of 4 MiB of content each (`input::stored`), in content order (`seq` 0, 1, 2…),
-- written in the import's own transaction. `content_sha256`, `content_bytes` and
-- `content_chunks` say what the whole content was, so that `verify` can tell the stored bytes
-- are the ones imported. Imports made before the bytes were kept have none of these (NULL).
ALTER TABLE usage_imports ADD COLUMN content_sha256 text, ADD COLUMN content_bytes bigint,
    ADD COLUMN content_chunks bigint;

-- Distributed by import on Citus: an import's chunks on one shard (see store::postgres::citus).
CREATE TABLE usage_chunks (
    import_id bigint NOT NULL,
    seq       bigint NOT NULL,
    raw_bytes bigint NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (import_id, seq)
);
ALTER TABLE usage_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
