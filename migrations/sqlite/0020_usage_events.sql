-- Raw usage is no longer kept as a row per meter line: each import's kept content
-- (usage_chunks, read back as 0019 records) is the record of what it counted, and the month's
-- totals are the working set. What stays is one row per metered event an account has
-- (`event_id`), so that an event is billed once across every import: where it came first
-- (import and line) and what it said, to tell a harmless re-send from a changed event.
-- `billrun migrate` rebuilds the content of earlier imports from their rows before this runs.
CREATE TABLE usage_events (
    account_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    import_id   INTEGER NOT NULL REFERENCES usage_imports (import_id),
    source_line INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    api         TEXT NOT NULL,
    calls       INTEGER NOT NULL,
    PRIMARY KEY (account_id, event_id)
) WITHOUT ROWID;
CREATE INDEX usage_events_import ON usage_events (import_id);

INSERT INTO usage_events (account_id, event_id, import_id, source_line, ts, api, calls)
SELECT account_id, event_id, import_id, source_line, ts, api, calls FROM usage WHERE event_id IS NOT NULL;

DROP TABLE usage;
DROP TABLE retracted_usage;
