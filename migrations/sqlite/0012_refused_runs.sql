-- A command refused before it did anything, for asking what cannot be done (exit 3: an
-- operator's `settle --month` of a month that has not ended, or in another billing zone) is
-- recorded as `refused`: not a failure of the job, it pages nobody (`billrun_last_run_failed`
-- looks past it).
-- SQLite cannot change a CHECK constraint in place: the table is copied into a new one.
CREATE TABLE runs_new (
    run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    command         TEXT NOT NULL,              -- run, settle, enforce, grant
    month           TEXT,                       -- the month it settled or granted, if any
    started_at      INTEGER NOT NULL,           -- --now at the start (microseconds since the epoch)
    ended_at        INTEGER,                    -- NULL while running, or if the process died
    outcome         TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'nothing-to-do', 'busy', 'stopped', 'failed', 'refused')),
    accounts_billed INTEGER NOT NULL DEFAULT 0,
    billed_fen      INTEGER NOT NULL DEFAULT 0,
    suspended       INTEGER NOT NULL DEFAULT 0,
    message         TEXT NOT NULL DEFAULT ''
);
INSERT INTO runs_new SELECT run_id, command, month, started_at, ended_at, outcome, accounts_billed, billed_fen,
    suspended, message FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_started ON runs (started_at);
