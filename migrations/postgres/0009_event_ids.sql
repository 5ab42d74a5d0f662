-- Usage rows may name the metered event they report (`event_id`). An account's event is
-- billed once: a row whose account already has its event id, from an earlier import or an
-- earlier line of the same one, is skipped and counted in the import's `duplicates`. Rows
-- without an event id are not in the index and behave as before. The key begins with
-- account_id, so it holds on a database distributed by account.
ALTER TABLE usage ADD COLUMN event_id text;
CREATE UNIQUE INDEX usage_event ON usage (account_id, event_id) WHERE event_id IS NOT NULL;
ALTER TABLE usage_imports ADD COLUMN duplicates bigint NOT NULL DEFAULT 0;
