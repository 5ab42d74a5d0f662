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
ALTER TABLE usage_imports ADD COLUMN retracts bigint, ADD COLUMN retracted_at timestamptz,
    ADD COLUMN retracted_by text, ADD COLUMN retraction_reason text, ADD COLUMN retracted_sha256 text,
    ADD COLUMN retracted_rows_digest text, ADD COLUMN replaced_by bigint;
CREATE UNIQUE INDEX usage_imports_retracts ON usage_imports (retracts) WHERE retracts IS NOT NULL;

-- Distributed by account on Citus, beside `usage` (see store::postgres::citus).
CREATE TABLE retracted_usage (
    account_id  text COLLATE "C" NOT NULL,
    ts          timestamptz NOT NULL,
    api         text COLLATE "C" NOT NULL,
    calls       bigint NOT NULL,
    import_id   bigint NOT NULL,
    source_line bigint NOT NULL,
    event_id    text
);
CREATE INDEX retracted_usage_import ON retracted_usage USING brin (import_id);

-- A retraction takes its calls off the month's totals; a total that only the retracted import
-- made stays, at zero, so that the next settle sees the bill line whose usage went and takes
-- it to zero.
ALTER TABLE usage_totals DROP CONSTRAINT usage_totals_calls_check;
ALTER TABLE usage_totals ADD CONSTRAINT usage_totals_calls_check CHECK (calls >= 0);
