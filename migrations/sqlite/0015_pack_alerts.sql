-- Pack alerts: an account's free pack of an API 80% and 100% used, its last prepaid pack of an
-- API under 20% left and used up. Each is an event of kind 'pack_alert', recorded once per
-- pack and threshold (the unique key), and announced as a `pack.alert` webhook like the other
-- events. The pack's size and what was left of it when the alert was recorded are kept with it.
--
-- SQLite cannot change a CHECK constraint, so the table is built again: its ids and its
-- AUTOINCREMENT sequence are kept (webhook deliveries refer to events by id).
ALTER TABLE events RENAME TO events_old;
CREATE TABLE events (
    event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  TEXT NOT NULL REFERENCES accounts (account_id),
    kind        TEXT NOT NULL CHECK (kind IN ('arrears_notice', 'suspended', 'restored', 'pack_alert')),
    at          INTEGER NOT NULL,
    bill_id     TEXT,
    suspend_at  INTEGER,
    balance_fen INTEGER NOT NULL,
    pack_id     TEXT,
    api         TEXT,
    threshold   TEXT,
    pack_calls  INTEGER,
    pack_left   INTEGER,
    UNIQUE (kind, bill_id),
    UNIQUE (account_id, pack_id, threshold),
    CHECK ((kind = 'pack_alert') = (pack_id IS NOT NULL AND api IS NOT NULL AND threshold IS NOT NULL
                                    AND pack_calls IS NOT NULL AND pack_left IS NOT NULL))
);
INSERT INTO events (event_id, account_id, kind, at, bill_id, suspend_at, balance_fen)
    SELECT event_id, account_id, kind, at, bill_id, suspend_at, balance_fen FROM events_old;
UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'events_old')
    WHERE name = 'events' AND seq < (SELECT seq FROM sqlite_sequence WHERE name = 'events_old');
DROP TABLE events_old;
CREATE INDEX events_account ON events (account_id);
