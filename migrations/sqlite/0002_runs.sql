-- Every job run, for operators: what ran, for which month, when, with what outcome.
CREATE TABLE runs (
    run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    command         TEXT NOT NULL,              -- run, settle, enforce, grant
    month           TEXT,                       -- the month it settled or granted, if any
    started_at      INTEGER NOT NULL,           -- --now at the start (microseconds since the epoch)
    ended_at        INTEGER,                    -- NULL while running, or if the process died
    outcome         TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'nothing-to-do', 'busy', 'stopped', 'failed')),
    accounts_billed INTEGER NOT NULL DEFAULT 0,
    billed_fen      INTEGER NOT NULL DEFAULT 0,
    suspended       INTEGER NOT NULL DEFAULT 0,
    message         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_started ON runs (started_at);
