-- Months whose free packs were granted to every account opened before the month ended, with
-- how many such accounts there were when it was done. Accounts are never removed and an
-- account's opening is set only once, so the accounts due a month's packs only ever gain
-- members: while there are as many as when the grant was recorded, they are the same accounts,
-- and the same grant (same month end, same packs) has nothing left to do. A settle then skips
-- the check of every account's packs (1.3 s at a million accounts).
CREATE TABLE free_grants (
    month      TEXT PRIMARY KEY NOT NULL,
    period_end INTEGER NOT NULL,                -- the month's end the accounts were counted at
    apis       TEXT NOT NULL,                   -- the packs granted: a JSON object, API → calls
    accounts   INTEGER NOT NULL                 -- accounts opened before period_end, counted
                                                -- before the grant in the same transaction
) WITHOUT ROWID;
