-- A sketch of each import's rows without an event_id (store::repeats): a Bloom filter of their
-- hashes, of every row for a small import and of a fixed 1 in 16 for a large one, so that a
-- file that repeats, in a good share, rows of an earlier import is refused instead of billing
-- them twice. About 2 MB for a 30M-row month. Imports before this migration have none, and are
-- not compared.
CREATE TABLE usage_import_sketches (
    import_id INTEGER PRIMARY KEY REFERENCES usage_imports (import_id),
    whole     INTEGER NOT NULL CHECK (whole IN (0, 1)),  -- every row's hash (else the sampled ones')
    rows      INTEGER NOT NULL,                          -- rows without an event_id
    bits      BLOB NOT NULL
);
