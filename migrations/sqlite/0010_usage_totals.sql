-- The month's calls per account and API, kept up to date by every usage import in the
-- transaction that adds its rows, so that a settle reads one row per account and API instead
-- of every usage row of the month. The raw rows stay, append-only, as the audit trail;
-- `billrun verify` recomputes the totals from them.
--
-- Months are those of one billing time zone, recorded in settings as 'usage_totals_zone'.
-- Until it is set (a database from before this migration, or a new one), the first import or
-- settle builds the totals from the raw rows; an import or settle in another zone builds them
-- again for its own.
--
-- The index usage_account_api served only the month's aggregation, which now reads the
-- totals; without it an import appends rows, whatever their order, instead of inserting each
-- into a B-tree at a random place. usage_import served only `verify`, which reads every row
-- anyway.
CREATE TABLE usage_totals (
    month      TEXT NOT NULL,
    account_id TEXT NOT NULL,
    api        TEXT NOT NULL,
    calls      INTEGER NOT NULL CHECK (typeof(calls) = 'integer' AND calls > 0),
    PRIMARY KEY (month, account_id, api)
) WITHOUT ROWID;
DROP INDEX usage_account_api;
DROP INDEX usage_import;
