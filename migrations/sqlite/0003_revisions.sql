-- Corrections: a settled bill is never edited. Late usage leads to a new revision of the bill
-- (kind 'adjustment'), which debits or credits only the difference, through a ledger entry of
-- kind 'adjustment'.

ALTER TABLE bills ADD COLUMN kind TEXT NOT NULL DEFAULT 'original' CHECK (kind IN ('original', 'adjustment'));
-- What this revision moved: the whole total for an original, the difference for an adjustment
-- (negative: a credit).
ALTER TABLE bills ADD COLUMN debited_fen INTEGER NOT NULL DEFAULT 0;
UPDATE bills SET debited_fen = total_fen;

-- SQLite cannot change a CHECK constraint in place: the ledger is rebuilt with 'adjustment'
-- allowed, keeping every entry and its id.
CREATE TABLE ledger_new (
    entry_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    kind       TEXT NOT NULL CHECK (kind IN ('opening', 'debit', 'adjustment', 'recharge')),
    amount_fen INTEGER NOT NULL,
    bill_id    TEXT UNIQUE,
    reference  TEXT UNIQUE,
    created_at INTEGER NOT NULL
);
INSERT INTO ledger_new (entry_id, account_id, kind, amount_fen, bill_id, reference, created_at)
    SELECT entry_id, account_id, kind, amount_fen, bill_id, reference, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_account ON ledger (account_id);
