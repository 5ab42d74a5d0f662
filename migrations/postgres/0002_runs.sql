-- Every job run, for operators: what ran, for which month, when, with what outcome.
CREATE TABLE runs (
    run_id          bigserial PRIMARY KEY,
    command         text NOT NULL,              -- run, settle, enforce, grant
    month           text COLLATE "C",           -- the month it settled or granted, if any
    started_at      timestamptz NOT NULL,       -- --now at the start
    ended_at        timestamptz,                -- NULL while running, or if the process died
    outcome         text NOT NULL CHECK (outcome IN ('running', 'ok', 'nothing-to-do', 'busy', 'stopped', 'failed')),
    accounts_billed bigint NOT NULL DEFAULT 0,
    billed_fen      bigint NOT NULL DEFAULT 0,
    suspended       bigint NOT NULL DEFAULT 0,
    message         text NOT NULL DEFAULT ''
);
CREATE INDEX runs_started ON runs (started_at);
