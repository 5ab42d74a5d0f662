-- Retracting a usage import: an operator takes back a file that should not count (a meter that
-- counted twice, usage sent under the wrong account). The import stays, marked with when, by
-- whom and why; its rows move to `retracted_usage`, kept as they were, so that they count
-- nowhere (totals, bills, duplicate events) and its event ids may be sent again. Its
-- fingerprints move aside too (`retracted_sha256`, `retracted_rows_digest`), so that a
-- corrected file, or the same one again, may be imported. `replaced_by` names the import that
-- replaced it, when it was retracted by `usage import --replaces`.
--
-- The retraction itself is recorded as an import of no rows (`retracts` names the import it
-- takes back) spanning the retracted rows: an import newer than what a settled month read, as
-- late usage is, so that `billrun run` settles the month again and issues the adjustments.
ALTER TABLE usage_imports ADD COLUMN retracts INTEGER;
ALTER TABLE usage_imports ADD COLUMN retracted_at INTEGER;
ALTER TABLE usage_imports ADD COLUMN retracted_by TEXT;
ALTER TABLE usage_imports ADD COLUMN retraction_reason TEXT;
ALTER TABLE usage_imports ADD COLUMN retracted_sha256 TEXT;
ALTER TABLE usage_imports ADD COLUMN retracted_rows_digest TEXT;
ALTER TABLE usage_imports ADD COLUMN replaced_by INTEGER;
CREATE UNIQUE INDEX usage_imports_retracts ON usage_imports (retracts) WHERE retracts IS NOT NULL;

CREATE TABLE retracted_usage (
    account_id  TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    api         TEXT NOT NULL,
    calls       INTEGER NOT NULL,
    import_id   INTEGER NOT NULL REFERENCES usage_imports (import_id),
    source_line INTEGER NOT NULL,
    event_id    TEXT
);
CREATE INDEX retracted_usage_import ON retracted_usage (import_id);

-- A retraction takes its calls off the month's totals; a total that only the retracted import
-- made stays, at zero, so that the next settle sees the bill line whose usage went and takes
-- it to zero. SQLite cannot change a CHECK constraint: the totals, which nothing refers to,
-- are built again.
CREATE TABLE usage_totals_new (
    month      TEXT NOT NULL,
    account_id TEXT NOT NULL,
    api        TEXT NOT NULL,
    calls      INTEGER NOT NULL CHECK (typeof(calls) = 'integer' AND calls >= 0),
    PRIMARY KEY (month, account_id, api)
) WITHOUT ROWID;
INSERT INTO usage_totals_new (month, account_id, api, calls) SELECT month, account_id, api, calls FROM usage_totals;
DROP TABLE usage_totals;
ALTER TABLE usage_totals_new RENAME TO usage_totals;
