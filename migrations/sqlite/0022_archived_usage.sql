-- An import's kept content moved out of the database by `billrun archive` (`jobs::archive`):
-- its chunks are in files (the content as a zstd stream, a manifest, the import's totals) and
-- no longer in `usage_chunks`. What stays says which files they are and what they counted:
-- when it was archived (µs), the SHA-256 of the content file (the stored chunks, one after
-- another), and the calls its rows gave each month of the billing zone, as JSON
-- ({"2026-10": 123}), which `verify` checks the month's totals against without the files.
-- `billrun restore-usage` puts the chunks back and clears these.
ALTER TABLE usage_imports ADD COLUMN archived_at INTEGER;
ALTER TABLE usage_imports ADD COLUMN archive_sha256 TEXT;
ALTER TABLE usage_imports ADD COLUMN archived_calls TEXT;
