//! Statements both backends run as they are: written once here. A backend's own statements
//! live in its folder.
//!
//! Parameters are written `$1`, `$2`… in the order they first appear, since SQLite numbers a
//! `$N` parameter by where it first appears and PostgreSQL by N: that way both read them alike.

pub mod verify;
pub mod webhooks;

/// The columns an [`AccountView`] is read from, the same on every backend; callers add the
/// `WHERE` or `ORDER BY`.
pub(crate) const ACCOUNT_VIEW_SQL: &str =
    "SELECT account_id, name, activated_at, balance_fen, suspend_at, suspended FROM accounts";

/// Whether an import newer than $1 reaches into the period `[$2, $3)`; the same on every
/// backend.
pub(crate) const USAGE_ARRIVED_SQL: &str = "SELECT EXISTS (SELECT 1 FROM usage_imports
     WHERE import_id > $1 AND last_ts >= $2 AND first_ts < $3)";

/// Per settled month, the imports waiting to be billed into it (late usage: committed after
/// the settlement read the month, reaching into it): how many, their rows and calls (whole
/// imports, also their rows of other months), and when the oldest was imported.
pub(crate) const LATE_USAGE_SQL: &str = "SELECT sm.month, COUNT(*) AS imports, CAST(SUM(i.rows) AS BIGINT) AS rows,
        CAST(SUM(i.calls) AS BIGINT) AS calls, MIN(i.imported_at) AS oldest_imported_at
     FROM settled_months sm JOIN usage_imports i ON i.import_id > sm.through_import
          AND i.first_ts < sm.period_end AND i.last_ts >= sm.period_start
     GROUP BY sm.month ORDER BY sm.month";

/// The sketches of the imports other than $1 whose rows span some of `[$2, $3]` and still count
/// (not retracted), oldest first.
pub(crate) const EARLIER_SKETCHES_SQL: &str = "SELECT i.import_id, i.file_name, i.imported_at, s.whole, s.rows, s.bits
     FROM usage_imports i JOIN usage_import_sketches s ON s.import_id = i.import_id
     WHERE i.import_id <> $1 AND i.last_ts >= $2 AND i.first_ts <= $3 AND i.retracted_at IS NULL
     ORDER BY i.import_id";

/// Stores import $1's sketch.
pub(crate) const ADD_SKETCH_SQL: &str =
    "INSERT INTO usage_import_sketches (import_id, whole, rows, bits) VALUES ($1, $2, $3, $4)";

/// The catalog versions stored, oldest first.
pub(crate) const CATALOG_VERSIONS_SQL: &str =
    "SELECT version, effective_from, currency, definition, source, imported_at FROM catalog_versions
     ORDER BY effective_from";

/// Stores a catalog version, unless one of that name is stored.
pub(crate) const ADD_CATALOG_VERSION_SQL: &str = "INSERT INTO catalog_versions
     (version, effective_from, currency, definition, source, imported_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (version) DO NOTHING";

/// The catalog versions bill lines name.
pub(crate) const BILLED_CATALOG_VERSIONS_SQL: &str =
    "SELECT DISTINCT catalog_version FROM bill_lines ORDER BY catalog_version";

/// The billing time zone the stored usage totals are kept in (none: not built yet).
pub(crate) const TOTALS_ZONE_SQL: &str = "SELECT value FROM settings WHERE name = 'usage_totals_zone'";

/// Records the zone the usage totals are now kept in.
pub(crate) const TOTALS_ZONE_UPSERT_SQL: &str = "INSERT INTO settings (name, value) VALUES ('usage_totals_zone', $1)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// How far pack alerts have been checked: `<month>:<newest import id>`.
pub(crate) const PACK_ALERTS_CHECKED_SQL: &str = "SELECT value FROM settings WHERE name = 'pack_alerts_checked'";

/// Records how far pack alerts have been checked ($1).
pub(crate) const PACK_ALERTS_CHECKED_UPSERT_SQL: &str =
    "INSERT INTO settings (name, value) VALUES ('pack_alerts_checked', $1)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Pack alerts recorded at $1, one per row of `rows` (the backend's spelling of a table `u` of
/// columns `account`, `pack_id`, `api`, `threshold`, `calls` and `left_`, from $2 on), each
/// with its account's balance then; nothing for a pack and threshold recorded before.
pub(crate) fn pack_alerts_sql(rows: &str) -> String {
    format!(
        "INSERT INTO events (account_id, kind, at, balance_fen, pack_id, api, threshold, pack_calls, pack_left)
         SELECT a.account_id, 'pack_alert', $1, a.balance_fen, u.pack_id, u.api, u.threshold, u.calls, u.left_
         FROM {rows} JOIN accounts a ON a.account_id = u.account
         WHERE true
         ON CONFLICT DO NOTHING RETURNING event_id"
    )
}

/// The database's currency.
pub(crate) const CURRENCY_SQL: &str = "SELECT value FROM settings WHERE name = 'currency'";

/// Records the database's currency, unless one is recorded.
pub(crate) const ADOPT_CURRENCY_SQL: &str =
    "INSERT INTO settings (name, value) VALUES ('currency', $1) ON CONFLICT DO NOTHING";

/// The recharge a reference names, with its account's balance now; the same on every backend.
pub(crate) const USED_REFERENCE_SQL: &str = "SELECT l.account_id, l.amount_fen, l.created_at, a.balance_fen
     FROM ledger l JOIN accounts a ON a.account_id = l.account_id WHERE l.reference = $1";

/// What month $1's grant was recorded as: (accounts, APIs).
pub(crate) const GRANT_RECORD_SQL: &str = "SELECT accounts, apis FROM free_grants WHERE month = $1";

/// Records that month $1's free packs ($4) go to every account opened before its end $3 (its
/// start $2), with how many such accounts there are; returns that count if the record changed,
/// nothing when it was already the record. The packs themselves follow from the record
/// (migrations/*/0021).
pub(crate) const RECORD_GRANT_SQL: &str = "INSERT INTO free_grants (month, period_start, period_end, apis, accounts)
             SELECT $1, $2, $3, $4, COUNT(*) FROM accounts WHERE activated_at IS NOT NULL AND activated_at < $3
             ON CONFLICT (month) DO UPDATE SET period_start = excluded.period_start,
               period_end = excluded.period_end, apis = excluded.apis, accounts = excluded.accounts
             WHERE free_grants.period_start IS DISTINCT FROM excluded.period_start
                OR free_grants.period_end <> excluded.period_end OR free_grants.apis <> excluded.apis
                OR free_grants.accounts <> excluded.accounts
             RETURNING accounts";

/// The migrations a database has applied, oldest first.
pub(crate) const APPLIED_MIGRATIONS_SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// Every pack, stored or following from a month's grant, as `packs list` shows them.
pub(crate) const PACKS_SQL: &str =
    "SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month
             FROM all_packs ORDER BY account_id, api, valid_from, pack_id";

/// The stored packs of accounts `$1` that may cover month `$2` (`[$3, $4)`): its free packs
/// stored before they followed from the grant, prepaid packs valid in it (the grant's own are
/// `FreeGrant::packs_due`). `accounts` is the backend's test of `account_id` against `$1`.
pub(crate) fn holding_packs_sql(accounts: &str) -> String {
    format!(
        "SELECT pack_id, kind, account_id, api, calls, remaining, valid_until, purchased_at FROM packs
         WHERE {accounts}
           AND ((kind = 'free' AND month = $2) OR (kind = 'prepaid' AND valid_until > $3 AND valid_from < $4))"
    )
}

/// The pack alerts recorded for accounts `$1`; `accounts` as for [`holding_packs_sql`].
pub(crate) fn holding_alerts_sql(accounts: &str) -> String {
    format!("SELECT account_id, pack_id, threshold FROM events WHERE {accounts} AND kind = 'pack_alert'")
}

/// The usage totals of accounts `$1` in month `$2` (not those a retraction took to zero);
/// `accounts` as for [`holding_packs_sql`].
pub(crate) fn holding_usage_sql(accounts: &str) -> String {
    format!(
        "SELECT account_id, api, calls FROM usage_totals WHERE {accounts} AND month = $2 AND calls > 0
         ORDER BY account_id, api"
    )
}

/// Every event, oldest first.
pub(crate) const EVENTS_SQL: &str =
    "SELECT event_id, account_id, kind, at, bill_id, suspend_at, balance_fen, pack_id, api, threshold, pack_calls,
        pack_left
     FROM events ORDER BY event_id";

/// The bill revisions of month $1 that left a balance negative, with the service stop they were under.
pub(crate) const ARREARS_BILLS_SQL: &str = "SELECT b.bill_id, b.account_id, b.revision, b.balance_after_fen,
                    COALESCE(
                      (SELECT e.suspend_at FROM events e
                        WHERE e.kind = 'arrears_notice' AND e.account_id = b.account_id AND e.bill_id = b.bill_id),
                      (SELECT e.suspend_at FROM events e
                        WHERE e.kind = 'arrears_notice' AND e.account_id = b.account_id AND e.suspend_at IS NOT NULL
                          AND e.at <= b.settled_at
                        ORDER BY e.at DESC, e.event_id DESC LIMIT 1)) AS suspend_at
             FROM bills b WHERE b.month = $1 AND b.balance_after_fen < 0
             ORDER BY b.account_id, b.revision";

/// An import begun: its id is taken at once, its fingerprints written once the rows are read.
pub(crate) const NEW_IMPORT_SQL: &str =
    "INSERT INTO usage_imports (file_name, sha256, rows, calls, imported_at) VALUES ($1, 'pending', 0, 0, $2)
             RETURNING import_id";

/// Every settled month and its bounds, to tell late rows as an import reads them.
pub(crate) const SETTLED_PERIODS_SQL: &str =
    "SELECT month, period_start, period_end FROM settled_months ORDER BY month";

/// An earlier import with the same bytes ($1) or the same rows ($2) as import $3.
pub(crate) const SAME_IMPORT_SQL: &str = "SELECT import_id, file_name, imported_at FROM usage_imports
             WHERE (sha256 = $1 OR rows_digest = $2) AND import_id <> $3 ORDER BY import_id LIMIT 1";

/// An import's fingerprints, rows, calls, time range and duplicates skipped, once every row
/// is read.
pub(crate) const FINISH_IMPORT_SQL: &str =
    "UPDATE usage_imports SET sha256 = $1, rows_digest = $2, rows = $3, calls = $4, first_ts = $5, last_ts = $6,
             duplicates = $7 WHERE import_id = $8";

/// Every bill line with its bill and account, in the order exports list them: of month $1 (or
/// every month) and of account $2 (or every account).
pub(crate) const EXPORT_LINES_SQL: &str = "SELECT b.month, b.bill_id, b.revision, b.kind, b.debited_fen, b.rounding,
        b.account_id, a.name, l.api, l.total_calls, l.free_calls, l.prepaid_calls, l.billable_calls, l.tier,
        l.tier_from, l.tier_to, l.unit_price, l.amount, l.pricing, l.tier_basis, l.catalog_version, b.exact_total,
        b.total_fen, b.rounding_adjustment, b.balance_before_fen, b.balance_after_fen, b.period_start,
        b.period_end, b.settled_at, b.credited_fen, b.credit_reference, b.credit_reason, b.credited_by
     FROM bills b JOIN bill_lines l ON l.account_id = b.account_id AND l.bill_id = b.bill_id
     JOIN accounts a ON a.account_id = b.account_id
     WHERE (CAST($1 AS TEXT) IS NULL OR b.month = $1) AND (CAST($2 AS TEXT) IS NULL OR b.account_id = $2)
     ORDER BY b.month, b.account_id, b.revision, l.api";

/// Each bill line's exact amount with its bill's arithmetic, of month $1 (NULL: every month),
/// the lines of a bill together.
pub(crate) const LINE_AMOUNTS_SQL: &str =
    "SELECT b.bill_id, b.rounding, b.exact_total, b.total_fen, b.rounding_adjustment,
        l.amount
     FROM bills b JOIN bill_lines l ON l.account_id = b.account_id AND l.bill_id = b.bill_id
     WHERE CAST($1 AS TEXT) IS NULL OR b.month = $1
     ORDER BY b.account_id, b.bill_id";

/// The latest $1 usage imports, newest first (a retracted one with the SHA-256 it had).
pub(crate) const USAGE_IMPORTS_SQL: &str = "SELECT import_id, file_name, COALESCE(retracted_sha256, sha256) AS sha256,
        rows, calls, duplicates, first_ts, last_ts, imported_at, retracts, retracted_at, retracted_by,
        retraction_reason, replaced_by
     FROM usage_imports ORDER BY import_id DESC LIMIT $1";

/// The latest $1 runs, newest first.
pub(crate) const RUNS_SQL: &str = "SELECT run_id, command, month, started_at, ended_at, outcome, accounts_billed,
        billed_fen, suspended, message
     FROM runs ORDER BY run_id DESC LIMIT $1";

/// Accounts due for suspension at $1, as a `WHERE` condition: the set-based form of
/// `domain::arrears::due_for_suspension` (not suspended yet, a `suspend_at` that has come, a
/// balance still negative).
pub(crate) const DUE_FOR_SUSPENSION: &str =
    "NOT suspended AND suspend_at IS NOT NULL AND suspend_at <= $1 AND balance_fen < 0";

/// The earliest `suspend_at` still to be enforced: of the accounts not suspended whose balance
/// is negative.
pub(crate) const NEXT_SUSPENSION_SQL: &str =
    "SELECT MIN(suspend_at) FROM accounts WHERE NOT suspended AND suspend_at IS NOT NULL AND balance_fen < 0";

/// A run begun: its command ($1), month ($2) and start ($3).
pub(crate) const RUN_STARTED_SQL: &str =
    "INSERT INTO runs (command, month, started_at, outcome) VALUES ($1, $2, $3, 'running') RETURNING run_id";

/// A recharge's ledger entry: account $1, amount $2, reference $3, at $4.
pub(crate) const RECHARGE_ENTRY_SQL: &str =
    "INSERT INTO ledger (account_id, kind, amount_fen, reference, created_at) VALUES ($1, 'recharge', $2, $3, $4)";

/// An account's balance and service after a recharge: balance $1, `suspend_at` $2,
/// suspended $3, of account $4.
pub(crate) const ACCOUNT_SERVICE_SQL: &str =
    "UPDATE accounts SET balance_fen = $1, suspend_at = $2, suspended = $3 WHERE account_id = $4";

/// A restoration: account $1's service back at $2, with balance $3; returns the event's id.
pub(crate) const RESTORED_EVENT_SQL: &str =
    "INSERT INTO events (account_id, kind, at, balance_fen) VALUES ($1, 'restored', $2, $3) RETURNING event_id";

/// Month $1 so far: its bills (originals), what its revisions moved, what its credit notes
/// gave back, its accounts sent an arrears notice, and when it was settled. Every revision at
/// once, with no lookup of the latest: revision 1 is each account's original, and what the
/// revisions moved adds up to what the latest revisions ask for (an adjustment moves the
/// difference from the revision before, a credit note minus its amount). `verify` checks both.
pub(crate) const MONTH_TOTALS_SQL: &str = "SELECT t.bills, t.total, t.credited, n.arrears, s.settled_at
     FROM (SELECT COUNT(*) FILTER (WHERE revision = 1) AS bills,
                  CAST(COALESCE(SUM(debited_fen), 0) AS BIGINT) AS total,
                  CAST(COALESCE(SUM(CASE WHEN kind = 'credit' THEN -debited_fen ELSE 0 END), 0) AS BIGINT) AS credited
           FROM bills WHERE month = $1) t
     CROSS JOIN (SELECT COUNT(DISTINCT e.account_id) AS arrears FROM events e
                 JOIN bills b ON b.account_id = e.account_id AND b.bill_id = e.bill_id
                 WHERE e.kind = 'arrears_notice' AND b.month = $1) n
     LEFT JOIN settled_months s ON s.month = $1";

/// How many shards of month $1 split $2 ways are done, and the oldest import they all saw.
pub(crate) const SHARDS_DONE_SQL: &str = "SELECT COUNT(*), CAST(COALESCE(MIN(through_import), 0) AS BIGINT)
     FROM settled_shards WHERE month = $1 AND shard_count = $2";

/// The latest run of each command that was not refused, with when that command last
/// succeeded. A refused run (an operator's typo) neither fails nor succeeds: the run before it
/// still says how the command stands. A command only ever refused has no row.
pub(crate) const LATEST_RUNS_SQL: &str = "SELECT r.command, r.started_at, r.ended_at, r.outcome,
        (SELECT MAX(s.ended_at) FROM runs s
          WHERE s.command = r.command AND s.outcome IN ('ok', 'nothing-to-do')) AS last_success
     FROM runs r WHERE r.run_id = (SELECT MAX(r2.run_id) FROM runs r2
                                   WHERE r2.command = r.command AND r2.outcome <> 'refused')
     ORDER BY r.command";

/// Accounts by status at $1: the set-based form of `store::AccountStatus::of`.
pub(crate) const STATUS_COUNTS_SQL: &str = "SELECT
        COUNT(*) FILTER (WHERE activated_at IS NULL OR activated_at > $1) AS inactive,
        COUNT(*) FILTER (WHERE activated_at <= $1 AND suspended) AS suspended,
        COUNT(*) FILTER (WHERE activated_at <= $1 AND NOT suspended AND suspend_at IS NOT NULL) AS arrears,
        COUNT(*) FILTER (WHERE activated_at <= $1 AND NOT suspended AND suspend_at IS NULL) AS active
     FROM accounts";

/// The first and last instant of each committed usage import.
pub(crate) const IMPORT_SPANS_SQL: &str = "SELECT first_ts, last_ts FROM usage_imports
     WHERE first_ts IS NOT NULL AND last_ts IS NOT NULL ORDER BY import_id";

/// Every settled month, oldest first.
pub(crate) const SETTLED_MONTHS_SQL: &str = "SELECT month FROM settled_months ORDER BY month";

/// The current revision of account $1's bill for month $2, as a credit needs it.
pub(crate) const CREDIT_BILL_SQL: &str = "SELECT bill_id, revision, total_fen, credited_fen, rounding FROM bills
     WHERE account_id = $1 AND month = $2 ORDER BY revision DESC LIMIT 1";

/// The lines of account $1's bill $2, as comparing or crediting them needs.
pub(crate) const CREDIT_LINES_SQL: &str =
    "SELECT api, total_calls, free_calls, prepaid_calls, billable_calls, unit_price, amount FROM bill_lines
     WHERE account_id = $1 AND bill_id = $2 ORDER BY api";

/// The credit a reference ($1) names, under any account, with that account's balance now.
pub(crate) const USED_CREDIT_SQL: &str = "SELECT b.account_id, b.month, b.bill_id, b.revision,
        -b.debited_fen AS amount_fen, b.credited_fen, b.total_fen, b.settled_at, a.balance_fen
     FROM bills b JOIN accounts a ON a.account_id = b.account_id WHERE b.credit_reference = $1";

/// A credit revision: bill $1, revision $2, balance before $3 and after $4, at $5, moving $6
/// (minus the amount), the bill's credits now $7, reference $8, reason $9, by $10; everything
/// else as account $11's bill $12, which it follows.
pub(crate) const CREDIT_REVISION_SQL: &str = "INSERT INTO bills (bill_id, account_id, month, revision, period_start,
        period_end, catalog_version, rounding, exact_total, total_fen, rounding_adjustment, balance_before_fen,
        balance_after_fen, settled_at, kind, debited_fen, credited_fen, credit_reference, credit_reason, credited_by)
     SELECT $1, account_id, month, $2, period_start, period_end, catalog_version, rounding, exact_total, total_fen,
        rounding_adjustment, $3, $4, $5, 'credit', $6, $7, $8, $9, $10
     FROM bills WHERE account_id = $11 AND bill_id = $12";

/// Bill $1 gets the lines of account $2's bill $3.
pub(crate) const COPY_LINES_SQL: &str = "INSERT INTO bill_lines (account_id, bill_id, api, total_calls, free_calls,
        prepaid_calls, billable_calls, tier, tier_from, tier_to, catalog_version, unit_price, amount, pricing,
        tier_basis, slices)
     SELECT account_id, $1, api, total_calls, free_calls, prepaid_calls, billable_calls, tier, tier_from, tier_to,
        catalog_version, unit_price, amount, pricing, tier_basis, slices
     FROM bill_lines WHERE account_id = $2 AND bill_id = $3";

/// Bill $1 takes over what account $2's bill $3 took from packs (so the packs do not change).
pub(crate) const COPY_PACK_USE_SQL: &str = "INSERT INTO pack_consumption (account_id, bill_id, pack_id, calls)
     SELECT account_id, $1, pack_id, calls FROM pack_consumption WHERE account_id = $2 AND bill_id = $3";

/// A credit's ledger entry: account $1, amount $2, bill $3, at $4.
pub(crate) const CREDIT_ENTRY_SQL: &str =
    "INSERT INTO ledger (account_id, kind, amount_fen, bill_id, created_at) VALUES ($1, 'credit', $2, $3, $4)";

/// Import $1 as a retraction needs it.
pub(crate) const IMPORT_TO_RETRACT_SQL: &str = "SELECT import_id, file_name, rows, calls, first_ts, last_ts, retracts,
        retracted_at, retracted_by, retraction_reason, archived_at IS NOT NULL AS archived,
        (SELECT r.import_id FROM usage_imports r WHERE r.retracts = i.import_id) AS record_id
     FROM usage_imports i WHERE import_id = $1";

/// Frees import $1's events, so that they may be sent again (a retraction; its kept content
/// stays, as the record of what it was).
pub(crate) const FREE_EVENTS_SQL: &str = "DELETE FROM usage_events WHERE import_id = $1";

/// Marks import $5 retracted at $1 by $2 for reason $3 (replaced by import $4, if any); its
/// fingerprints move aside, so that they no longer refuse a file with the same rows.
pub(crate) const MARK_RETRACTED_SQL: &str = "UPDATE usage_imports SET retracted_at = $1, retracted_by = $2,
        retraction_reason = $3, replaced_by = $4, retracted_sha256 = sha256, retracted_rows_digest = rows_digest,
        sha256 = 'retracted-' || import_id, rows_digest = NULL
     WHERE import_id = $5";

/// The record of a retraction, named $1 (its fingerprint $2), at $3, spanning the retracted
/// rows ($4 to $5), of import $6: an import of no rows, so that the settled months it reaches
/// into are settled again, as after late usage. See `common::retraction_record`.
pub(crate) const RETRACTION_RECORD_SQL: &str = "INSERT INTO usage_imports
        (file_name, sha256, rows, calls, imported_at, first_ts, last_ts, duplicates, retracts)
     VALUES ($1, $2, 0, 0, $3, $4, $5, 0, $6) RETURNING import_id";

/// Records that import $1 replaced import $2.
pub(crate) const REPLACED_BY_SQL: &str = "UPDATE usage_imports SET replaced_by = $1 WHERE import_id = $2";

/// Import $1's kept content and how it reads back, with its row count.
pub(crate) const IMPORT_CONTENT_SQL: &str =
    "SELECT import_id, content_chunks, content_format, assume_tz, skipped_lines, rows
     FROM usage_imports WHERE import_id = $1";

/// Takes $1 calls off account $3's total of API $4 in month $2 (a retraction).
pub(crate) const TAKE_BACK_SQL: &str =
    "UPDATE usage_totals SET calls = calls - $1 WHERE month = $2 AND account_id = $3 AND api = $4";

/// A chunk of an import's stored content (`input::stored`).
pub(crate) const KEEP_CHUNK_SQL: &str =
    "INSERT INTO usage_chunks (import_id, seq, raw_bytes, data) VALUES ($1, $2, $3, $4)";

/// What import $7's whole content was ($1 SHA-256, $2 bytes, $3 chunks), how it reads back
/// ($4 format, $5 `--assume-tz`) and the lines it skipped ($6).
pub(crate) const KEEP_CONTENT_SQL: &str = "UPDATE usage_imports SET content_sha256 = $1, content_bytes = $2,
        content_chunks = $3, content_format = $4, assume_tz = $5, skipped_lines = $6
     WHERE import_id = $7";

/// Every import of rows (not the record of a retraction), oldest first, with its kept content
/// and how it reads back.
pub(crate) const STORED_IMPORTS_SQL: &str =
    "SELECT import_id, file_name, sha256, rows, calls, content_sha256, content_bytes,
        content_chunks, content_format, assume_tz, skipped_lines, first_ts, last_ts, retracted_at,
        archived_at, archive_sha256, archived_calls,
        (SELECT r.import_id FROM usage_imports r WHERE r.retracts = i.import_id) AS record_id
     FROM usage_imports i WHERE retracts IS NULL ORDER BY import_id";

/// The imports whose rows count (not retracted, not the record of a retraction), oldest
/// first, with how their kept content reads back: what the month's totals are built from.
pub(crate) const COUNTED_IMPORTS_SQL: &str =
    "SELECT import_id, content_chunks, content_format, assume_tz, skipped_lines
     FROM usage_imports WHERE retracts IS NULL AND retracted_at IS NULL ORDER BY import_id";

/// The settled months (of month $1 only, if not NULL): each with its period, the newest import
/// its settlement read and the zone it was settled in.
pub(crate) const SETTLED_WATERMARKS_SQL: &str = "SELECT month, period_start, period_end, through_import, tz
     FROM settled_months WHERE $1 IS NULL OR month = $1 ORDER BY month";

/// The calls of each API on the current bills of month $1, per account.
pub(crate) const BILLED_CALLS_SQL: &str = "SELECT b.account_id, l.api, CAST(SUM(l.total_calls) AS BIGINT) AS calls
     FROM bills b JOIN bill_lines l ON l.account_id = b.account_id AND l.bill_id = b.bill_id
     WHERE b.month = $1 AND NOT EXISTS (SELECT 1 FROM bills b2 WHERE b2.account_id = b.account_id
           AND b2.month = b.month AND b2.revision > b.revision)
     GROUP BY b.account_id, l.api";

/// How many usage totals month $1 has (NULL: every month).
pub(crate) const COUNT_TOTALS_SQL: &str = "SELECT COUNT(*) FROM usage_totals WHERE $1 IS NULL OR month = $1";

/// The usage totals of month $1 (NULL: every month).
pub(crate) const TOTALS_SQL: &str =
    "SELECT month, account_id, api, calls FROM usage_totals WHERE $1 IS NULL OR month = $1";

/// The imports of rows whose content is not kept in a form that reads back (made before it
/// was), oldest first: `billrun migrate` rebuilds it from their rows.
pub(crate) const UNREADABLE_IMPORTS_SQL: &str =
    "SELECT import_id FROM usage_imports WHERE retracts IS NULL AND content_format IS NULL ORDER BY import_id";

/// Drops import $1's kept chunks (before they are written again).
pub(crate) const DROP_CHUNKS_SQL: &str = "DELETE FROM usage_chunks WHERE import_id = $1";

/// Records that import $4's kept content was archived at $1 (the content file's SHA-256 $2, the
/// calls of each month $3), unless it was already; its chunks are dropped with it.
pub(crate) const ARCHIVE_IMPORT_SQL: &str = "UPDATE usage_imports SET archived_at = $1, archive_sha256 = $2,
        archived_calls = $3 WHERE import_id = $4 AND archived_at IS NULL AND content_format IS NOT NULL";

/// Clears import $1's archive record, if it has one: its chunks are written back with it.
pub(crate) const RESTORE_IMPORT_SQL: &str = "UPDATE usage_imports SET archived_at = NULL, archive_sha256 = NULL,
        archived_calls = NULL WHERE import_id = $1 AND archived_at IS NOT NULL";

/// The first archived import whose rows count: rebuilding the month's totals needs its content.
pub(crate) const ARCHIVED_COUNTED_SQL: &str = "SELECT import_id, file_name FROM usage_imports
     WHERE archived_at IS NOT NULL AND retracts IS NULL AND retracted_at IS NULL ORDER BY import_id LIMIT 1";

/// Chunk $2 of import $1's stored content.
pub(crate) const STORED_CHUNK_SQL: &str =
    "SELECT seq, raw_bytes, data FROM usage_chunks WHERE import_id = $1 AND seq = $2";
