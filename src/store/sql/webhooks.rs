//! The webhook statements, written once. A list of ids is a parameter that each backend spells
//! its own way: SQLite as a JSON array read with `json_each`, PostgreSQL as an array; a
//! statement that takes one is a function of that spelling ([`List`]).

/// How a backend tests a column against a list parameter.
#[derive(Clone, Copy)]
pub(crate) enum List {
    /// `IN (SELECT value FROM json_each($N))`: the parameter is a JSON array.
    Json,
    /// `= ANY($N)`: the parameter is an array.
    Array,
}

impl List {
    /// The test against parameter `$n`.
    fn test(self, n: u8) -> String {
        match self {
            List::Json => format!("IN (SELECT value FROM json_each(${n}))"),
            List::Array => format!("= ANY(${n})"),
        }
    }
}

/// The event type announcing an event of kind `e.kind`.
const EVENT_TYPE_OF_KIND: &str = "CASE e.kind WHEN 'arrears_notice' THEN 'account.arrears'
     WHEN 'suspended' THEN 'account.suspended' WHEN 'restored' THEN 'account.restored'
     WHEN 'pack_alert' THEN 'pack.alert' END";

/// A delivery for every endpoint subscribed to `bill.issued`, recorded at $1, of each bill
/// whose id is in $2. The subscriptions are the outer loop: with none, nothing is read.
pub(crate) fn enqueue_bills(list: List) -> String {
    format!(
        "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, bill_id, created_at, next_attempt_at)
         SELECT s.endpoint, s.event_type, b.account_id, b.bill_id, $1, $1
         FROM webhook_subscriptions s CROSS JOIN bills b
         WHERE s.event_type = 'bill.issued' AND b.bill_id {}",
        list.test(2)
    )
}

/// A delivery for every endpoint subscribed to its type, recorded at $1, of each event whose
/// id is in $2.
pub(crate) fn enqueue_events(list: List) -> String {
    format!(
        "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, event_id, created_at, next_attempt_at)
         SELECT s.endpoint, s.event_type, e.account_id, e.event_id, $1, $1
         FROM webhook_subscriptions s CROSS JOIN events e
         WHERE s.event_type = {EVENT_TYPE_OF_KIND} AND e.event_id {}",
        list.test(2)
    )
}

/// A delivery for every endpoint subscribed to its type, recorded at $1, of the arrears
/// notices and restorations of the bills whose ids are in $2 (what a settle page records).
pub(crate) fn enqueue_events_of_bills(list: List) -> String {
    format!(
        "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, event_id, created_at, next_attempt_at)
         SELECT s.endpoint, s.event_type, e.account_id, e.event_id, $1, $1
         FROM webhook_subscriptions s CROSS JOIN events e
         WHERE s.event_type = {EVENT_TYPE_OF_KIND} AND e.kind IN ('arrears_notice', 'restored') AND e.bill_id {}",
        list.test(2)
    )
}

/// Deliveries whose ids are in $1, with what they announce, in the order they are due.
pub(crate) fn claimed(list: List) -> String {
    format!(
        "SELECT d.delivery_id, d.endpoint, d.event_type, d.account_id, d.created_at, d.attempts,
                b.bill_id, b.month, b.revision, b.kind AS bill_kind, b.total_fen, b.debited_fen, b.credited_fen,
                b.balance_after_fen, b.settled_at,
                e.event_id, e.kind AS event_kind, e.at AS event_at, e.bill_id AS event_bill_id, e.suspend_at,
                e.balance_fen, e.pack_id, e.api, e.threshold, e.pack_calls, e.pack_left
         FROM webhook_deliveries d
         LEFT JOIN bills b ON b.account_id = d.account_id AND b.bill_id = d.bill_id
         LEFT JOIN events e ON e.account_id = d.account_id AND e.event_id = d.event_id
         WHERE d.delivery_id {}
         ORDER BY d.next_attempt_at, d.delivery_id",
        list.test(1)
    )
}

/// The deliveries due at $1 of the enabled endpoints named in $2, not leased to a deliverer,
/// oldest due first, at most $3 (a backend adds how it locks them).
pub(crate) fn due(list: List) -> String {
    format!(
        "SELECT d.delivery_id FROM webhook_deliveries d
         JOIN webhook_endpoints w ON w.endpoint = d.endpoint
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1
           AND (d.lease_until IS NULL OR d.lease_until <= $1)
           AND w.disabled_at IS NULL AND d.endpoint {}
         ORDER BY d.next_attempt_at, d.delivery_id LIMIT $3",
        list.test(2)
    )
}

/// The earliest time a pending delivery of the enabled endpoints named in $1 can be claimed:
/// when it is due, or when its lease runs out if that is later.
pub(crate) fn next_due(list: List) -> String {
    format!(
        "SELECT MIN(CASE WHEN d.lease_until > d.next_attempt_at THEN d.lease_until ELSE d.next_attempt_at END)
         FROM webhook_deliveries d
         JOIN webhook_endpoints w ON w.endpoint = d.endpoint
         WHERE d.status = 'pending' AND w.disabled_at IS NULL AND d.endpoint {}",
        list.test(1)
    )
}

/// Records endpoint $1 at URL $2, first seen at $3.
pub(crate) const UPSERT_ENDPOINT_SQL: &str = "INSERT INTO webhook_endpoints (endpoint, url, first_seen_at)
     VALUES ($1, $2, $3) ON CONFLICT (endpoint) DO UPDATE SET url = excluded.url";

/// The event types endpoint $1 is subscribed to.
pub(crate) const SUBSCRIPTIONS_SQL: &str =
    "SELECT event_type FROM webhook_subscriptions WHERE endpoint = $1 ORDER BY event_type";

pub(crate) const UNSUBSCRIBE_SQL: &str = "DELETE FROM webhook_subscriptions WHERE endpoint = $1";

pub(crate) const SUBSCRIBE_SQL: &str = "INSERT INTO webhook_subscriptions (event_type, endpoint) VALUES ($1, $2)";

/// An attempt at $1 of delivery $7 (of account $8): HTTP status $2 (or none), error $3, new
/// status $4, next attempt $5, delivered at $6. Only while the delivery is pending: a deliverer
/// whose lease ran out and whose delivery another one finished records nothing.
pub(crate) const RECORD_ATTEMPT_SQL: &str = "UPDATE webhook_deliveries
     SET attempts = attempts + 1, last_attempt_at = $1, last_status = $2, last_error = $3, status = $4,
         next_attempt_at = $5, delivered_at = $6, lease_until = NULL
     WHERE account_id = $8 AND delivery_id = $7 AND status = 'pending'";

/// Disabled at $1 because of $2: endpoint $3.
pub(crate) const DISABLE_ENDPOINT_SQL: &str =
    "UPDATE webhook_endpoints SET disabled_at = $1, disabled_why = $2 WHERE endpoint = $3 AND disabled_at IS NULL";

pub(crate) const ENABLE_ENDPOINT_SQL: &str =
    "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_why = NULL WHERE endpoint = $1";

/// Endpoint $1's pending deliveries, dropped when it is removed (delivered and failed ones stay,
/// as history).
pub(crate) const DROP_PENDING_SQL: &str = "DELETE FROM webhook_deliveries WHERE endpoint = $1 AND status = 'pending'";

pub(crate) const REMOVE_ENDPOINT_SQL: &str = "DELETE FROM webhook_endpoints WHERE endpoint = $1";

pub(crate) const ENDPOINT_EXISTS_SQL: &str = "SELECT COUNT(*) FROM webhook_endpoints WHERE endpoint = $1";

/// Deliveries for `webhooks list`: of endpoint $1 (or all), with status $2 (or any), newest
/// first, at most $3.
pub(crate) const DELIVERIES_SQL: &str = "SELECT delivery_id, endpoint, event_type, account_id, bill_id, event_id,
        created_at, status, attempts, next_attempt_at, last_attempt_at, CAST(last_status AS BIGINT) AS last_status,
        last_error, delivered_at
     FROM webhook_deliveries
     WHERE ($1 IS NULL OR endpoint = $1) AND ($2 IS NULL OR status = $2)
     ORDER BY delivery_id DESC LIMIT $3";

/// Replay to endpoint $1, due at $2, of bill $3 (or of every bill settled from $4 on when $3 is
/// NULL), if the endpoint is subscribed to `bill.issued`: the deliveries it lacks.
pub(crate) const REPLAY_ADD_BILLS_SQL: &str =
    "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, bill_id, created_at, next_attempt_at)
     SELECT $1, 'bill.issued', b.account_id, b.bill_id, b.settled_at, $2 FROM bills b
     WHERE (b.bill_id = $3 OR ($3 IS NULL AND b.settled_at >= $4))
       AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.endpoint = $1 AND s.event_type = 'bill.issued')
     ON CONFLICT DO NOTHING";

/// Replay to endpoint $1, due at $2, of event $3 (or of every event from $4 on, when $3 is
/// NULL), of a type the endpoint is subscribed to: the deliveries it lacks.
pub(crate) fn replay_add_events() -> String {
    format!(
        "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, event_id, created_at, next_attempt_at)
         SELECT $1, {EVENT_TYPE_OF_KIND}, e.account_id, e.event_id, e.at, $2 FROM events e
         WHERE (e.event_id = $3 OR ($3 IS NULL AND e.at >= $4))
           AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.endpoint = $1
                       AND s.event_type = {EVENT_TYPE_OF_KIND})
         ON CONFLICT DO NOTHING"
    )
}

/// Replay, due again at $1 with a whole new schedule, of the deliveries endpoint $2 has of bill
/// $3, event $4, or (both NULL) everything recorded from $5 on.
pub(crate) const REPLAY_RESET_SQL: &str = "UPDATE webhook_deliveries
     SET status = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL, delivered_at = NULL
     WHERE endpoint = $2 AND (bill_id = $3 OR event_id = $4 OR ($3 IS NULL AND $4 IS NULL AND created_at >= $5))";

/// Per endpoint: whether it is disabled, its deliveries by status, and when its oldest pending
/// one was recorded.
pub(crate) const WEBHOOK_HEALTH_SQL: &str = "SELECT w.endpoint,
        (w.disabled_at IS NOT NULL) AS disabled,
        COALESCE(d.pending, 0) AS pending,
        COALESCE(d.failed, 0) AS failed,
        COALESCE(d.delivered, 0) AS delivered,
        d.oldest_pending
     FROM webhook_endpoints w
     LEFT JOIN (SELECT endpoint,
                       COUNT(*) FILTER (WHERE status = 'pending') AS pending,
                       COUNT(*) FILTER (WHERE status = 'failed') AS failed,
                       COUNT(*) FILTER (WHERE status = 'delivered') AS delivered,
                       MIN(created_at) FILTER (WHERE status = 'pending') AS oldest_pending
                FROM webhook_deliveries GROUP BY endpoint) d ON d.endpoint = w.endpoint
     ORDER BY w.endpoint";
