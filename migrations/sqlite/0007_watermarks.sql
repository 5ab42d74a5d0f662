-- Imports are refused by what they hold, and settlements remember what they read.
--
-- rows_digest: a digest of an import's rows as billrun read them (input::usage::RowsDigest).
-- The same rows saved with other line endings, quoting or order have other bytes (sha256)
-- but the same digest, and are refused as already imported. Imports made before this
-- migration have none and are matched by their bytes.
ALTER TABLE usage_imports ADD COLUMN rows_digest TEXT;
CREATE UNIQUE INDEX usage_imports_rows_digest ON usage_imports (rows_digest);
-- The first and last instant of an import's rows: which months it reaches into.
ALTER TABLE usage_imports ADD COLUMN first_ts INTEGER;
ALTER TABLE usage_imports ADD COLUMN last_ts INTEGER;
UPDATE usage_imports SET
    first_ts = (SELECT MIN(u.ts) FROM usage u WHERE u.import_id = usage_imports.import_id),
    last_ts = (SELECT MAX(u.ts) FROM usage u WHERE u.import_id = usage_imports.import_id);

-- through_import: every import up to this one had committed before the settlement read the
-- month's usage, so every row of it is on a bill. An import after it that reaches into the
-- month is late usage, which `billrun run` bills. Months settled before this migration are
-- taken as settled through every import there was (`verify` checks them).
ALTER TABLE settled_months ADD COLUMN through_import INTEGER NOT NULL DEFAULT 0;
ALTER TABLE settled_shards ADD COLUMN through_import INTEGER NOT NULL DEFAULT 0;
UPDATE settled_months SET through_import = (SELECT COALESCE(MAX(import_id), 0) FROM usage_imports);
UPDATE settled_shards SET through_import = (SELECT COALESCE(MAX(import_id), 0) FROM usage_imports);
-- The billing time zone the month was settled in (NULL: settled before it was recorded; the
-- period bounds still tell).
ALTER TABLE settled_months ADD COLUMN tz TEXT;

-- Settings of the database as a whole: the currency its balances are kept in. Databases that
-- already hold accounts were kept in CNY, the only currency billrun used before.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO settings (name, value) SELECT 'currency', 'CNY' WHERE EXISTS (SELECT 1 FROM accounts);
