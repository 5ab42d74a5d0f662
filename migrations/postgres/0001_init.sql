-- billrun schema, PostgreSQL backend. Same tables, columns and keys as migrations/sqlite/, in
-- PostgreSQL's types.
--
-- Money: balances, ledger entries and bill totals are BIGINT fen (0.01 CNY); exact line
-- amounts, unit prices and rounding adjustments are NUMERIC. Never real/double precision.
-- Text keys use COLLATE "C" (byte order, as SQLite), so pages and exports sort the same on both
-- backends whatever the database's locale.
-- Time: timestamptz. Month bounds are computed by billrun in the billing time zone and bound
-- as instants, so the server's TimeZone setting never matters.

CREATE TABLE accounts (
    account_id   text COLLATE "C" PRIMARY KEY,
    name         text NOT NULL,
    activated_at timestamptz,                   -- NULL: service not opened
    balance_fen  bigint NOT NULL,               -- always the sum of the account's ledger entries
    suspend_at   timestamptz,                   -- set when a debit left the balance negative
    suspended    boolean NOT NULL DEFAULT false
);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE ledger (
    entry_id   bigserial PRIMARY KEY,
    account_id text COLLATE "C" NOT NULL REFERENCES accounts (account_id),
    kind       text NOT NULL CHECK (kind IN ('opening', 'debit', 'recharge')),
    amount_fen bigint NOT NULL,                 -- signed: a debit is negative
    bill_id    text COLLATE "C" UNIQUE,                     -- a bill is debited at most once
    reference  text UNIQUE,                     -- caller's idempotency key for a recharge
    created_at timestamptz NOT NULL
);
CREATE INDEX ledger_account ON ledger (account_id);

CREATE TABLE usage_imports (
    import_id   bigserial PRIMARY KEY,
    file_name   text NOT NULL,
    sha256      text NOT NULL UNIQUE,           -- the same file is never imported twice
    rows        bigint NOT NULL,
    calls       bigint NOT NULL,
    imported_at timestamptz NOT NULL
);

CREATE TABLE usage (
    account_id  text COLLATE "C" NOT NULL,
    ts          timestamptz NOT NULL,
    api         text COLLATE "C" NOT NULL,
    calls       bigint NOT NULL CHECK (calls > 0),
    import_id   bigint NOT NULL REFERENCES usage_imports (import_id),
    source_line bigint NOT NULL
);
CREATE INDEX usage_account_ts ON usage (account_id, ts) INCLUDE (api, calls);
CREATE INDEX usage_import ON usage (import_id);

CREATE TABLE packs (
    pack_id      text COLLATE "C" PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('free', 'prepaid')),
    account_id   text COLLATE "C" NOT NULL REFERENCES accounts (account_id),
    api          text COLLATE "C" NOT NULL,
    calls        bigint NOT NULL CHECK (calls >= 0),
    remaining    bigint NOT NULL CHECK (remaining >= 0 AND remaining <= calls),
    valid_from   timestamptz NOT NULL,
    valid_until  timestamptz NOT NULL,
    purchased_at timestamptz NOT NULL,
    month        text COLLATE "C",                          -- free packs: the month they belong to
    UNIQUE (account_id, api, month)             -- one free pack per account, API and month
);
CREATE INDEX packs_account ON packs (account_id, api);

CREATE TABLE bills (
    bill_id             text COLLATE "C" PRIMARY KEY,
    account_id          text COLLATE "C" NOT NULL REFERENCES accounts (account_id),
    month               text COLLATE "C" NOT NULL,
    revision            integer NOT NULL,
    period_start        timestamptz NOT NULL,
    period_end          timestamptz NOT NULL,
    catalog_version     text NOT NULL,
    rounding            text NOT NULL,
    exact_total         numeric NOT NULL,
    total_fen           bigint NOT NULL,
    rounding_adjustment numeric NOT NULL,
    balance_before_fen  bigint NOT NULL,
    balance_after_fen   bigint NOT NULL,
    settled_at          timestamptz NOT NULL,
    UNIQUE (account_id, month, revision)        -- one bill per account and month
);
CREATE INDEX bills_month ON bills (month, account_id);

CREATE TABLE bill_lines (
    bill_id         text COLLATE "C" NOT NULL REFERENCES bills (bill_id),
    api             text COLLATE "C" NOT NULL,
    total_calls     bigint NOT NULL,
    free_calls      bigint NOT NULL,
    prepaid_calls   bigint NOT NULL,
    billable_calls  bigint NOT NULL,
    tier            integer NOT NULL,
    tier_from       bigint NOT NULL,
    tier_to         bigint,                     -- NULL: open-ended last tier
    catalog_version text NOT NULL,
    unit_price      numeric NOT NULL,
    amount          numeric NOT NULL,           -- exact, never rounded
    pricing         text NOT NULL,
    tier_basis      text NOT NULL,
    slices          text NOT NULL,              -- graduated detail: 'tier:calls@price;...'
    PRIMARY KEY (bill_id, api)
);

-- What each bill took from each pack: a pack's remaining = calls − sum of these.
CREATE TABLE pack_consumption (
    bill_id text COLLATE "C" NOT NULL REFERENCES bills (bill_id),
    pack_id text COLLATE "C" NOT NULL REFERENCES packs (pack_id),
    calls   bigint NOT NULL CHECK (calls > 0),
    PRIMARY KEY (bill_id, pack_id)
);

-- Arrears notices, suspensions and restorations, each recorded once, for a notifier or the
-- API gateway to read.
CREATE TABLE events (
    event_id    bigserial PRIMARY KEY,
    account_id  text COLLATE "C" NOT NULL REFERENCES accounts (account_id),
    kind        text NOT NULL CHECK (kind IN ('arrears_notice', 'suspended', 'restored')),
    at          timestamptz NOT NULL,
    bill_id     text COLLATE "C",
    suspend_at  timestamptz,
    balance_fen bigint NOT NULL,
    UNIQUE (kind, bill_id)
);
CREATE INDEX events_account ON events (account_id);

-- Months whose settlement ran to the end.
CREATE TABLE settled_months (
    month           text COLLATE "C" PRIMARY KEY,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    catalog_version text NOT NULL,
    settled_at      timestamptz NOT NULL
);
