-- Months whose free packs were granted to every account opened before the month ended, with
-- how many such accounts there were when it was done. Accounts are never removed and an
-- account's opening is set only once, so the accounts due a month's packs only ever gain
-- members: while there are as many as when the grant was recorded, they are the same accounts,
-- and the same grant (same month end, same packs) has nothing left to do. A settle then skips
-- the check of every account's packs. The accounts are counted before the grant's own
-- statement, so an account opened by another transaction meanwhile only makes the count
-- smaller than what was granted, never larger.
CREATE TABLE free_grants (
    month      text COLLATE "C" PRIMARY KEY,
    period_end timestamptz NOT NULL,
    apis       text NOT NULL,                   -- the packs granted: a JSON object, API → calls
    accounts   bigint NOT NULL
);
