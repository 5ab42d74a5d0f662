-- Bill lines and pack use name their bill's account, as on PostgreSQL, where every key leads
-- with the account so that it holds on a database distributed by account (see
-- migrations/postgres/0011). SQLite keeps its keys on the ids alone, which are as strict: bill
-- and pack ids name their account. A line whose bill is missing gets '' (`verify` reports it).
ALTER TABLE bill_lines ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
UPDATE bill_lines SET account_id = COALESCE((SELECT b.account_id FROM bills b WHERE b.bill_id = bill_lines.bill_id), '');
ALTER TABLE pack_consumption ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
UPDATE pack_consumption SET account_id =
    COALESCE((SELECT b.account_id FROM bills b WHERE b.bill_id = pack_consumption.bill_id), '');
