-- Every key leads with the account, so that each one still holds when the tables are spread
-- over several servers by account_id (Citus: a distributed table's unique keys must include its
-- distribution column), and every row of an account can live on that account's server.
--
-- Bill ids ('<month>-<account>-r<revision>') and free pack ids ('free:<month>:<api>:<account>')
-- name their account, so a key of (account_id, id) is as strict as the id alone was; serial ids
-- (ledger entries, events, deliveries) are unique by their sequence. Prepaid pack ids and
-- recharge references are the seller's and the payment system's: their keys now hold per
-- account, and billrun keeps them unique across accounts itself (each import of packs and each
-- recharge with a reference looks for the id under every account while holding a lock on it;
-- see docs/scaling.md).
--
-- Bill lines and pack use get their bill's account. Nothing is removed: the columns are added
-- and filled from the bills, and the keys are replaced by keys on more columns.

ALTER TABLE bill_lines ADD COLUMN account_id text COLLATE "C" NOT NULL DEFAULT '';
UPDATE bill_lines l SET account_id = b.account_id FROM bills b WHERE b.bill_id = l.bill_id;
ALTER TABLE bill_lines ALTER COLUMN account_id DROP DEFAULT;
ALTER TABLE bill_lines DROP CONSTRAINT bill_lines_pkey, ADD CONSTRAINT bill_lines_pkey PRIMARY KEY (account_id, bill_id, api);

ALTER TABLE pack_consumption ADD COLUMN account_id text COLLATE "C" NOT NULL DEFAULT '';
UPDATE pack_consumption c SET account_id = b.account_id FROM bills b WHERE b.bill_id = c.bill_id;
ALTER TABLE pack_consumption ALTER COLUMN account_id DROP DEFAULT;
ALTER TABLE pack_consumption DROP CONSTRAINT pack_consumption_pkey,
    ADD CONSTRAINT pack_consumption_pkey PRIMARY KEY (account_id, bill_id, pack_id);

ALTER TABLE bills DROP CONSTRAINT bills_pkey, ADD CONSTRAINT bills_pkey PRIMARY KEY (account_id, bill_id);
-- A bill is looked up by its id alone (`billrun bill`, webhooks): an index, not a key.
CREATE INDEX bills_bill_id ON bills (bill_id);

ALTER TABLE packs DROP CONSTRAINT packs_pkey, ADD CONSTRAINT packs_pkey PRIMARY KEY (account_id, pack_id);
-- An imported pack's id is looked for under every account.
CREATE INDEX packs_pack_id ON packs (pack_id);

ALTER TABLE ledger DROP CONSTRAINT ledger_pkey, ADD CONSTRAINT ledger_pkey PRIMARY KEY (account_id, entry_id);
ALTER TABLE ledger DROP CONSTRAINT ledger_bill_id_key, ADD CONSTRAINT ledger_bill_id_key UNIQUE (account_id, bill_id);
ALTER TABLE ledger DROP CONSTRAINT ledger_reference_key,
    ADD CONSTRAINT ledger_reference_key UNIQUE (account_id, reference);
-- A reference is looked up alone, to name the account that used it.
CREATE INDEX ledger_reference ON ledger (reference) WHERE reference IS NOT NULL;
DROP INDEX ledger_account;                      -- the key leads with account_id

ALTER TABLE events DROP CONSTRAINT events_pkey, ADD CONSTRAINT events_pkey PRIMARY KEY (account_id, event_id);
ALTER TABLE events DROP CONSTRAINT events_kind_bill_id_key,
    ADD CONSTRAINT events_kind_bill_id_key UNIQUE (account_id, kind, bill_id);
DROP INDEX events_account;                      -- the key leads with account_id

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_pkey,
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (account_id, delivery_id);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_bill_id_key,
    ADD CONSTRAINT webhook_deliveries_endpoint_bill_id_key UNIQUE (account_id, endpoint, bill_id);
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_event_id_key,
    ADD CONSTRAINT webhook_deliveries_endpoint_event_id_key UNIQUE (account_id, endpoint, event_id);
CREATE INDEX webhook_deliveries_id ON webhook_deliveries (delivery_id);
