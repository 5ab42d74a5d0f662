-- Raw usage is no longer kept as a row per meter line: each import's kept content
-- (usage_chunks, read back as 0019 records) is the record of what it counted, and the month's
-- totals are the working set. What stays is one row per metered event an account has
-- (`event_id`), so that an event is billed once across every import: where it came first
-- (import and line) and what it said, to tell a harmless re-send from a changed event.
-- `billrun migrate` rebuilds the content of earlier imports from their rows before this runs.
-- On Citus the table is distributed by account (see store::postgres::citus).
CREATE TABLE usage_events (
    account_id  text COLLATE "C" NOT NULL,
    event_id    text NOT NULL,
    import_id   bigint NOT NULL,
    source_line bigint NOT NULL,
    ts          timestamptz NOT NULL,
    api         text COLLATE "C" NOT NULL,
    calls       bigint NOT NULL,
    PRIMARY KEY (account_id, event_id)
);
CREATE INDEX usage_events_import ON usage_events (import_id);

INSERT INTO usage_events (account_id, event_id, import_id, source_line, ts, api, calls)
SELECT account_id, event_id, import_id, source_line, ts, api, calls FROM usage WHERE event_id IS NOT NULL;

DROP TABLE usage;
DROP TABLE retracted_usage;
