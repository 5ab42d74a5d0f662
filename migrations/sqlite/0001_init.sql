-- billrun schema, SQLite backend.
--
-- Money: balances, ledger entries and bill totals are INTEGER fen (0.01 CNY), so SQL sums are
-- exact; exact line amounts, unit prices and rounding adjustments (which may have more than two
-- decimals) are TEXT holding a plain decimal string. Never REAL.
-- Time: INTEGER microseconds since the Unix epoch (UTC). Months are 'YYYY-MM' text.

CREATE TABLE accounts (
    account_id   TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    activated_at INTEGER,                       -- NULL: service not opened
    balance_fen  INTEGER NOT NULL,              -- always the sum of the account's ledger entries
    suspend_at   INTEGER,                       -- set when a debit left the balance negative
    suspended    INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1))
) WITHOUT ROWID;

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE ledger (
    entry_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    kind       TEXT NOT NULL CHECK (kind IN ('opening', 'debit', 'recharge')),
    amount_fen INTEGER NOT NULL,                -- signed: a debit is negative
    bill_id    TEXT UNIQUE,                     -- a bill is debited at most once
    reference  TEXT UNIQUE,                     -- caller's idempotency key for a recharge
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_account ON ledger (account_id);

CREATE TABLE usage_imports (
    import_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,           -- the same file is never imported twice
    rows        INTEGER NOT NULL,
    calls       INTEGER NOT NULL,
    imported_at INTEGER NOT NULL
);

CREATE TABLE usage (
    account_id  TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    api         TEXT NOT NULL,
    calls       INTEGER NOT NULL CHECK (calls > 0),
    import_id   INTEGER NOT NULL REFERENCES usage_imports (import_id),
    source_line INTEGER NOT NULL
);
CREATE INDEX usage_account_ts ON usage (account_id, ts, api, calls);
CREATE INDEX usage_import ON usage (import_id);

CREATE TABLE packs (
    pack_id      TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('free', 'prepaid')),
    account_id   TEXT NOT NULL REFERENCES accounts (account_id),
    api          TEXT NOT NULL,
    calls        INTEGER NOT NULL CHECK (calls >= 0),
    remaining    INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= calls),
    valid_from   INTEGER NOT NULL,
    valid_until  INTEGER NOT NULL,
    purchased_at INTEGER NOT NULL,
    month        TEXT,                          -- free packs: the month they belong to
    UNIQUE (account_id, api, month)             -- one free pack per account, API and month
) WITHOUT ROWID;
CREATE INDEX packs_account ON packs (account_id, api);

CREATE TABLE bills (
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
    UNIQUE (account_id, month, revision)        -- one bill per account and month
) WITHOUT ROWID;
CREATE INDEX bills_month ON bills (month, account_id);

CREATE TABLE bill_lines (
    bill_id         TEXT NOT NULL REFERENCES bills (bill_id),
    api             TEXT NOT NULL,
    total_calls     INTEGER NOT NULL,
    free_calls      INTEGER NOT NULL,
    prepaid_calls   INTEGER NOT NULL,
    billable_calls  INTEGER NOT NULL,
    tier            INTEGER NOT NULL,
    tier_from       INTEGER NOT NULL,
    tier_to         INTEGER,                    -- NULL: open-ended last tier
    catalog_version TEXT NOT NULL,
    unit_price      TEXT NOT NULL,
    amount          TEXT NOT NULL,              -- exact, never rounded
    pricing         TEXT NOT NULL,
    tier_basis      TEXT NOT NULL,
    slices          TEXT NOT NULL,              -- graduated detail: 'tier:calls@price;...'
    PRIMARY KEY (bill_id, api)
) WITHOUT ROWID;

-- What each bill took from each pack: a pack's remaining = calls − sum of these.
CREATE TABLE pack_consumption (
    bill_id TEXT NOT NULL REFERENCES bills (bill_id),
    pack_id TEXT NOT NULL REFERENCES packs (pack_id),
    calls   INTEGER NOT NULL CHECK (calls > 0),
    PRIMARY KEY (bill_id, pack_id)
) WITHOUT ROWID;

-- Arrears notices, suspensions and restorations, each recorded once, for a notifier or the
-- API gateway to read.
CREATE TABLE events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    kind       TEXT NOT NULL CHECK (kind IN ('arrears_notice', 'suspended', 'restored')),
    at         INTEGER NOT NULL,
    bill_id    TEXT,
    suspend_at INTEGER,
    balance_fen INTEGER NOT NULL,
    UNIQUE (kind, bill_id)
);
CREATE INDEX events_account ON events (account_id);

-- Months whose settlement ran to the end.
CREATE TABLE settled_months (
    month           TEXT PRIMARY KEY NOT NULL,
    period_start    INTEGER NOT NULL,
    period_end      INTEGER NOT NULL,
    catalog_version TEXT NOT NULL,
    settled_at      INTEGER NOT NULL
) WITHOUT ROWID;
