-- Credit notes: an operator gives money back against a settled bill. A credit is a revision of
-- kind 'credit' with the same lines as the one before it; the credits a bill carries
-- (`credited_fen`, the sum of every credit issued against it) pass to each later revision and
-- come off what the account owes for the month. A credit revision names its reference (the
-- operator's idempotency key, unique across accounts), its reason and who issued it. Its
-- ledger entry is of kind 'credit'.
--
-- SQLite cannot change a CHECK constraint. `bills.kind` is replaced by a column of the same
-- name whose CHECK allows 'credit' (added, filled, the old one dropped, the new one renamed):
-- the table is not dropped, which bill lines and pack use refer to. `ledger`, which nothing
-- refers to, is built again, keeping every entry and its id.
ALTER TABLE bills ADD COLUMN kind_new TEXT NOT NULL DEFAULT 'original'
    CHECK (kind_new IN ('original', 'adjustment', 'credit'));
UPDATE bills SET kind_new = kind;
ALTER TABLE bills DROP COLUMN kind;
ALTER TABLE bills RENAME COLUMN kind_new TO kind;
ALTER TABLE bills ADD COLUMN credited_fen INTEGER NOT NULL DEFAULT 0 CHECK (credited_fen >= 0);
ALTER TABLE bills ADD COLUMN credit_reference TEXT;
ALTER TABLE bills ADD COLUMN credit_reason TEXT
    CHECK ((kind = 'credit') = (credit_reference IS NOT NULL AND credit_reason IS NOT NULL));
ALTER TABLE bills ADD COLUMN credited_by TEXT;
CREATE UNIQUE INDEX bills_credit_reference ON bills (credit_reference) WHERE credit_reference IS NOT NULL;

CREATE TABLE ledger_new (
    entry_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    kind       TEXT NOT NULL CHECK (kind IN ('opening', 'debit', 'adjustment', 'recharge', 'credit')),
    amount_fen INTEGER NOT NULL,
    bill_id    TEXT UNIQUE,
    reference  TEXT UNIQUE,
    created_at INTEGER NOT NULL
);
INSERT INTO ledger_new (entry_id, account_id, kind, amount_fen, bill_id, reference, created_at)
    SELECT entry_id, account_id, kind, amount_fen, bill_id, reference, created_at FROM ledger;
UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'ledger')
    WHERE name = 'ledger_new' AND seq < (SELECT seq FROM sqlite_sequence WHERE name = 'ledger');
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_account ON ledger (account_id);
