-- Kept in step with migrations/postgres/0005, which drops foreign keys (usage to
-- usage_imports, bill lines and pack use to their bill and pack), turns the usage indexes into
-- BRIN indexes and leaves free space in packs and accounts there. SQLite checks a foreign key
-- with one primary-key lookup in the same file, has neither BRIN nor fillfactor, and its month
-- aggregation reads the covering (account_id, ts) index in order: its schema stays as it is.
-- `billrun verify` checks the same relationships on both backends.
SELECT 1;
