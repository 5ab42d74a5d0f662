-- Credit notes: an operator gives money back against a settled bill. A credit is a revision of
-- kind 'credit' with the same lines as the one before it; the credits a bill carries
-- (`credited_fen`, the sum of every credit issued against it) pass to each later revision and
-- come off what the account owes for the month. A credit revision names its reference (the
-- operator's idempotency key), its reason and who issued it. Its ledger entry is of kind
-- 'credit'. The reference's key holds per account, as every key leads with the account (see
-- 0011); billrun keeps references unique across accounts itself, as it does for recharges.
ALTER TABLE bills DROP CONSTRAINT bills_kind_check;
ALTER TABLE bills ADD CONSTRAINT bills_kind_check CHECK (kind IN ('original', 'adjustment', 'credit'));
ALTER TABLE bills ADD COLUMN credited_fen bigint NOT NULL DEFAULT 0 CHECK (credited_fen >= 0),
    ADD COLUMN credit_reference text COLLATE "C", ADD COLUMN credit_reason text, ADD COLUMN credited_by text;
ALTER TABLE bills ADD CONSTRAINT bills_credit_reference_key UNIQUE (account_id, credit_reference);
ALTER TABLE bills ADD CONSTRAINT bills_credit_fields
    CHECK ((kind = 'credit') = (credit_reference IS NOT NULL AND credit_reason IS NOT NULL));
-- A reference is looked up alone, to name the account that used it.
CREATE INDEX bills_credit_reference ON bills (credit_reference) WHERE credit_reference IS NOT NULL;

ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('opening', 'debit', 'adjustment', 'recharge', 'credit'));
