-- Webhooks: what billrun decided, delivered to the systems that act on it.
--
-- The endpoints come from the --webhooks file; billrun records each one it has been given (never
-- its secret) and the event types it wants. A delivery is created for every subscribed endpoint
-- in the same transaction as the bill or event it announces, so none is lost and none is
-- created twice; the deliverer then sends it until the receiver answers 2xx or the retry
-- schedule runs out. Deliverers claim rows with FOR UPDATE SKIP LOCKED and a lease.
CREATE TABLE webhook_endpoints (
    endpoint      text COLLATE "C" PRIMARY KEY,
    url           text NOT NULL,        -- for `webhooks list`; the secret is never stored
    first_seen_at timestamptz NOT NULL,
    disabled_at   timestamptz,          -- the receiver answered 410 Gone
    disabled_why  text
);

CREATE TABLE webhook_subscriptions (
    event_type text COLLATE "C" NOT NULL,
    endpoint   text COLLATE "C" NOT NULL REFERENCES webhook_endpoints (endpoint),
    PRIMARY KEY (event_type, endpoint)
);

CREATE TABLE webhook_deliveries (
    delivery_id     bigserial PRIMARY KEY,
    endpoint        text COLLATE "C" NOT NULL,
    event_type      text COLLATE "C" NOT NULL,
    account_id      text COLLATE "C" NOT NULL,
    bill_id         text COLLATE "C",     -- bill.issued: the bill revision
    event_id        bigint,               -- account.*: the event
    created_at      timestamptz NOT NULL, -- when the bill or event was recorded
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,          -- claimed by a deliverer until then
    last_attempt_at timestamptz,
    last_status     integer,              -- the receiver's HTTP status; NULL: no answer
    last_error      text,
    delivered_at    timestamptz,
    CHECK ((bill_id IS NULL) <> (event_id IS NULL)),
    UNIQUE (endpoint, bill_id),
    UNIQUE (endpoint, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
