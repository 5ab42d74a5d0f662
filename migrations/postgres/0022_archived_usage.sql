-- An import's kept content moved out of the database by `billrun archive` (`jobs::archive`):
-- its chunks are in files (the content as a zstd stream, a manifest, the import's totals) and
-- no longer in `usage_chunks`. What stays says which files they are and what they counted:
-- when it was archived, the SHA-256 of the content file (the stored chunks, one after
-- another), and the calls its rows gave each month of the billing zone, as JSON
-- ({"2026-10": 123}), which `verify` checks the month's totals against without the files.
-- `billrun restore-usage` puts the chunks back and clears these.
ALTER TABLE usage_imports ADD COLUMN archived_at timestamptz, ADD COLUMN archive_sha256 text,
    ADD COLUMN archived_calls text;
-- On Citus, usage_imports is a reference table and usage_chunks is distributed by import:
-- removing an archived import's chunks is a delete of a few rows (4 MiB of content each) on
-- one shard, not of its rows one by one.
