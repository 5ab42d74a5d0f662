-- How an import's kept content (usage_chunks) is read back as the rows it counted: the format
-- it was read as ('csv' or 'ndjson'), the zone a timestamp without an offset was read in
-- (`--assume-tz`; NULL: none), and the lines it skipped as events an account already had
-- (`input::replay::SkippedLines`; NULL: none). `verify` recomputes the month's totals from the
-- kept content this way. An import made before these were recorded has NULL content_format:
-- `billrun migrate` rebuilds its content from its rows.
ALTER TABLE usage_imports ADD COLUMN content_format text, ADD COLUMN assume_tz text,
    ADD COLUMN skipped_lines bytea;
