-- Webhooks: what billrun decided, delivered to the systems that act on it.
--
-- The endpoints come from the --webhooks file; billrun records each one it has been given (never
-- its secret) and the event types it wants. A delivery is created for every subscribed endpoint
-- in the same transaction as the bill or event it announces, so none is lost and none is
-- created twice; the deliverer then sends it until the receiver answers 2xx or the retry
-- schedule runs out.
CREATE TABLE webhook_endpoints (
    endpoint      TEXT PRIMARY KEY,
    url           TEXT NOT NULL,        -- for `webhooks list`; the secret is never stored
    first_seen_at INTEGER NOT NULL,
    disabled_at   INTEGER,              -- the receiver answered 410 Gone
    disabled_why  TEXT
) WITHOUT ROWID;

CREATE TABLE webhook_subscriptions (
    event_type TEXT NOT NULL,
    endpoint   TEXT NOT NULL REFERENCES webhook_endpoints (endpoint),
    PRIMARY KEY (event_type, endpoint)
) WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
    delivery_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    bill_id         TEXT,                 -- bill.issued: the bill revision
    event_id        INTEGER,              -- account.*: the event
    created_at      INTEGER NOT NULL,     -- when the bill or event was recorded
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,              -- claimed by a deliverer until then
    last_attempt_at INTEGER,
    last_status     INTEGER,              -- the receiver's HTTP status; NULL: no answer
    last_error      TEXT,
    delivered_at    INTEGER,
    CHECK ((bill_id IS NULL) <> (event_id IS NULL)),
    UNIQUE (endpoint, bill_id),
    UNIQUE (endpoint, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
