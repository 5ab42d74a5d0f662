-- Credit notes: an operator gives money back against a settled bill. A credit is a revision of
-- kind 'credit' with the same lines as the one before it; the credits a bill carries
-- (`credited_fen`, the sum of every credit issued against it) pass to each later revision and
-- come off what the account owes for the month. A credit revision names its reference (the
-- operator's idempotency key, unique across accounts), its reason and who issued it. Its
-- ledger entry is of kind 'credit'.
--
-- SQLite cannot change a CHECK constraint, so `bills` and `ledger` are built again, keeping
-- every row and id. Bill lines and pack use refer to `bills`: their references are checked at
-- commit, once the new `bills` has its name.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE bills_new (
    bill_id             TEXT PRIMARY KEY NOT NULL,
    account_id          TEXT NOT NULL REFERENCES accounts (account_id),
    month               TEXT NOT NULL,
    revision            INTEGER NOT NULL,
    period_start        INTEGER NOT NULL,
    period_end          INTEGER NOT NULL,
    catalog_version     TEXT NOT NULL,
    rounding            TEXT NOT NULL,
    exact_total         TEXT NOT NULL,
    total_fen           INTEGER NOT NULL,
    rounding_adjustment TEXT NOT NULL,
    balance_before_fen  INTEGER NOT NULL,
    balance_after_fen   INTEGER NOT NULL,
    settled_at          INTEGER NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'original' CHECK (kind IN ('original', 'adjustment', 'credit')),
    debited_fen         INTEGER NOT NULL DEFAULT 0,
    credited_fen        INTEGER NOT NULL DEFAULT 0 CHECK (credited_fen >= 0),
    credit_reference    TEXT UNIQUE,
    credit_reason       TEXT,
    credited_by         TEXT,
    UNIQUE (account_id, month, revision),       -- one bill per account and month
    CHECK ((kind = 'credit') = (credit_reference IS NOT NULL AND credit_reason IS NOT NULL))
) WITHOUT ROWID;
INSERT INTO bills_new (bill_id, account_id, month, revision, period_start, period_end, catalog_version, rounding,
                       exact_total, total_fen, rounding_adjustment, balance_before_fen, balance_after_fen,
                       settled_at, kind, debited_fen)
    SELECT bill_id, account_id, month, revision, period_start, period_end, catalog_version, rounding,
           exact_total, total_fen, rounding_adjustment, balance_before_fen, balance_after_fen,
           settled_at, kind, debited_fen FROM bills;
DROP TABLE bills;
ALTER TABLE bills_new RENAME TO bills;
CREATE INDEX bills_month ON bills (month, account_id);

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
