-- The price catalog lives in the database, so that no command can price a month with prices
-- other than those it was meant to have. Each version is kept as billrun writes it (TOML,
-- every field written out) and never changes: new prices are a new version. The first command
-- that writes to a database without one stores the catalog it runs with (--catalog, or the
-- built-in one), once it has checked that every version the database's bills name is in it;
-- from then on every command prices from these rows, and a --catalog that disagrees with them
-- is refused.
CREATE TABLE catalog_versions (
    version        TEXT PRIMARY KEY NOT NULL,
    effective_from TEXT NOT NULL UNIQUE,       -- YYYY-MM
    currency       TEXT NOT NULL,
    definition     TEXT NOT NULL,              -- the version as a [[versions]] block
    source         TEXT NOT NULL,              -- the file it was imported from
    imported_at    INTEGER NOT NULL            -- microseconds since the epoch
) WITHOUT ROWID;
