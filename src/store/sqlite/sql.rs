//! Statements of the SQLite backend that more than one of its modules runs: the month's usage
//! as settle streams it, and the grant of a month's free packs. Statements both backends share
//! live in `store::sql`.

/// The month's usage per account and API, from the month's totals (kept up to date by each
/// import, migrations/sqlite/0010), with what the current revision of the account's bill
/// counted for that API (NULL: none); `forward_grouped` leaves out the accounts where all of
/// it matches. A total of no calls (its import retracted) is read only where the bill has a
/// line for it, which then goes to zero. Read in the order of the totals' key (month, account,
/// API), it streams.
///
/// It is read [`USAGE_STREAM_CHUNK`] rows at a time, each chunk its own short read transaction
/// starting after the last (account, API) of the one before. One query held open for the whole
/// settle would pin the write-ahead log: no checkpoint could get past its snapshot, and the
/// log would grow by every page the settle writes, each frame
/// appended to new space in the file. Chunks need no common snapshot: each page re-reads its
/// accounts' bills under the write lock, and usage imported meanwhile is billed by the next run
/// as an adjustment, like any late usage.
pub(crate) const MONTH_USAGE_SQL: &str = "
    SELECT t.account_id, t.api, t.calls,
           (SELECT l.total_calls FROM bill_lines l
            WHERE l.api = t.api
              AND l.bill_id = (SELECT b.bill_id FROM bills b WHERE b.account_id = t.account_id AND b.month = ?1
                               ORDER BY b.revision DESC LIMIT 1)) AS billed
    FROM usage_totals t WHERE t.month = ?1 AND (t.account_id, t.api) > (?2, ?3) AND (t.calls > 0 OR billed IS NOT NULL)
    ORDER BY t.account_id, t.api LIMIT ?4";

/// [`MONTH_USAGE_SQL`] for a month without any bill yet: nothing billed to look up. It takes the
/// same parameters.
pub(crate) const FIRST_MONTH_USAGE_SQL: &str = "
    SELECT t.account_id, t.api, t.calls, NULL AS billed
    FROM usage_totals t WHERE t.month = ?1 AND (t.account_id, t.api) > (?2, ?3) AND t.calls > 0
    ORDER BY t.account_id, t.api LIMIT ?4";

/// (account, API) rows per read of the month's usage.
pub(crate) const USAGE_STREAM_CHUNK: usize = 16_384;
