-- The price catalog lives in the database, so that no command can price a month with prices
-- other than those it was meant to have. Each version is kept as billrun writes it (TOML,
-- every field written out) and never changes: new prices are a new version. The first command
-- that writes to a database without one stores the catalog it runs with (--catalog, or the
-- built-in one), once it has checked that every version the database's bills name is in it;
-- from then on every command prices from these rows, and a --catalog that disagrees with them
-- is refused. A small table: on Citus, a reference table (a copy on every node).
CREATE TABLE catalog_versions (
    version        text COLLATE "C" PRIMARY KEY,
    effective_from text COLLATE "C" NOT NULL UNIQUE,
    currency       text NOT NULL,
    definition     text NOT NULL,
    source         text NOT NULL,
    imported_at    timestamptz NOT NULL
);
