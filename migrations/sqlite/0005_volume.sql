-- Kept in step with migrations/postgres/0005, which drops foreign keys (usage to
-- usage_imports, bill lines and pack use to their bill and pack), turns the usage indexes into
-- BRIN indexes and leaves free space in packs and accounts there. SQLite checks a foreign key
-- with one primary-key lookup in the same file and has neither BRIN nor fillfactor: its
-- foreign keys stay.
--
-- The month's aggregation (GROUP BY account_id, api) reads usage through this covering index in
-- its own order, so it streams with no temporary B-tree or sort: the settle's memory no longer
-- grows with the number of accounts. The old (account_id, ts, api, calls) index made SQLite
-- materialize and sort the whole month.
DROP INDEX usage_account_ts;
CREATE INDEX usage_account_api ON usage (account_id, api, ts, calls);
