-- A million accounts: what the usage import and the settle spent their time on that
-- billrun does not need from the database, measured in docs/performance.md.
--
-- Usage import, on 3M rows:
-- - The foreign key from usage to usage_imports cost one trigger-run lookup per imported row,
--   about half the time of a COPY. A usage row is only ever written by the import that inserts
--   its usage_imports row in the same transaction.
-- - The B-tree on (account_id, ts) took every row at a random place. The month's aggregation
--   never used it (the planner prefers a parallel scan and a hash aggregate); what it needs is to
--   skip other months' rows, which a BRIN index on ts does for a few pages of upkeep, as rows
--   arrive roughly in time order, file after file.
-- - The B-tree on import_id: the rows of one import are contiguous, so a BRIN index finds them.
ALTER TABLE usage DROP CONSTRAINT usage_import_id_fkey;
DROP INDEX usage_account_ts;
DROP INDEX usage_import;
CREATE INDEX usage_ts ON usage USING brin (ts);
CREATE INDEX usage_import ON usage USING brin (import_id);

-- Settle, per page of accounts:
-- - Each bill line and each pack use checked its bill (and pack) by a trigger-run lookup per
--   row, a quarter of a page's time. They are written only by the page that writes their bill,
--   in its transaction, and nothing deletes bills or packs.
-- - A page updates every pack it uses and every account it bills. Free space in each table page
--   lets PostgreSQL update a row in place (a HOT update) without touching any index; and
--   packs_account duplicated the leading columns of the (account_id, api, month) key.
-- `billrun verify` checks each of these relationships on both backends.
ALTER TABLE bill_lines DROP CONSTRAINT bill_lines_bill_id_fkey;
ALTER TABLE pack_consumption DROP CONSTRAINT pack_consumption_bill_id_fkey;
ALTER TABLE pack_consumption DROP CONSTRAINT pack_consumption_pack_id_fkey;
DROP INDEX packs_account;
ALTER TABLE packs SET (fillfactor = 50);
ALTER TABLE accounts SET (fillfactor = 50);
