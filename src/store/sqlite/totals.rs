//! The month's usage totals on SQLite (`usage_totals`, migrations/sqlite/0010): built from the
//! raw rows for a billing zone, added to by each import in its own transaction, and checked
//! and recomputed from the imports' kept content by `verify`. Through `rusqlite`, inside the caller's transaction.

use super::rows::{at, us};
use crate::domain::month::{usage_allowed_from, Month, MonthSpan};
use crate::store::common::totals_overflow;
use crate::store::sql::{TAKE_BACK_SQL, TOTALS_ZONE_SQL, TOTALS_ZONE_UPSERT_SQL, USAGE_SPAN_SQL};
use crate::store::UsageTotals;
use chrono_tz::Tz;
use rusqlite::{params, Connection, OptionalExtension};

/// The zone the stored totals are kept for; `None` if they are not built yet, or if the zone
/// recorded is one this build does not know (they are built again then, for the zone asked).
pub fn zone(conn: &Connection) -> anyhow::Result<Option<Tz>> {
    let name: Option<String> = conn.query_row(TOTALS_ZONE_SQL, [], |r| r.get(0)).optional()?;
    Ok(name.and_then(|n| n.parse().ok()))
}

/// Makes the stored totals those of `zone`, building them from the raw rows if they are of
/// another zone or not built yet. Returns whether they were built from any rows. The caller holds the write
/// lock (`BEGIN IMMEDIATE`), so no import adds rows meanwhile.
pub fn ensure_zone(conn: &Connection, zone: Tz) -> anyhow::Result<bool> {
    if self::zone(conn)? == Some(zone) {
        return Ok(false);
    }
    // A month's rows are sorted to be grouped; on disk, not in memory, at tens of millions.
    conn.pragma_update(None, "temp_store", "FILE")?;
    conn.execute("DELETE FROM usage_totals", [])?;
    let spans = months_with_usage(conn, zone)?;
    let built = !spans.is_empty();
    if built {
        with_months(conn, &spans, |conn| {
            // The usage rows on the outside, the few months inside: one pass over the rows.
            conn.execute(
                "INSERT INTO usage_totals (month, account_id, api, calls)
                 SELECT m.month, u.account_id, u.api, SUM(u.calls) FROM usage u CROSS JOIN temp.usage_months m
                 WHERE u.ts >= m.period_start AND u.ts < m.period_end
                 GROUP BY m.month, u.account_id, u.api",
                [],
            )
            .map_err(overflow_or)?;
            Ok(())
        })?;
    }
    conn.execute(TOTALS_ZONE_UPSERT_SQL, [zone.name()])?;
    Ok(built)
}

/// What adding an import's totals found wrong with their accounts.
#[derive(Debug, Default)]
pub struct Refused {
    /// Some total's account does not exist.
    pub unknown: bool,
    /// Accounts with usage before they may have any (`domain::month::usage_allowed_from`): each
    /// with its opening instant (µs; `None`: never opened) and the first instant it may have
    /// usage from.
    pub unopened: Vec<(String, Option<i64>, Option<i64>)>,
}

impl Refused {
    pub fn any(&self) -> bool {
        self.unknown || !self.unopened.is_empty()
    }
}

/// Adds an import's totals to the stored ones. A total of an account that does not exist, or
/// (unless `accept_unopened`) of a month before the account may have usage, is left out and
/// reported: the caller refuses the file then.
pub fn add(conn: &Connection, totals: UsageTotals, accept_unopened: bool) -> anyhow::Result<Refused> {
    let zone = totals.zone();
    let mut opened = conn.prepare_cached("SELECT activated_at FROM accounts WHERE account_id = ?1")?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO usage_totals (month, account_id, api, calls) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (month, account_id, api) DO UPDATE SET calls = calls + excluded.calls",
    )?;
    let mut refused = Refused::default();
    // The totals come sorted by month and account: one look-up per account and month.
    let mut last: Option<(String, Option<Option<i64>>)> = None;
    for (month, account, api, calls) in totals.into_sorted().iter() {
        if last.as_ref().map_or(true, |(a, _)| a != account) {
            let found = opened.query_row([account], |r| r.get::<_, Option<i64>>(0)).optional()?;
            last = Some((account.to_owned(), found));
        }
        let Some((_, found)) = &last else { unreachable!() };
        let Some(activated_at) = *found else {
            refused.unknown = true;
            continue;
        };
        if !accept_unopened {
            let from = usage_allowed_from(activated_at.map(at), zone);
            let month: Month = month.parse().map_err(anyhow::Error::msg)?;
            if from.map_or(true, |from| month.start(zone) < from) {
                refused.unopened.push((account.to_owned(), activated_at, from.map(us)));
                continue;
            }
        }
        upsert
            .execute(params![month, account, api, calls])
            .map_err(overflow_or)?;
    }
    refused.unopened.sort();
    refused.unopened.dedup();
    Ok(refused)
}

/// A sum past 64 bits as [`totals_overflow`]: SQLite's `SUM` fails with "integer overflow";
/// an addition that overflows turns into a floating-point number, which the totals' check
/// constraint refuses.
fn overflow_or(e: rusqlite::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("integer overflow") || text.contains("CHECK constraint failed") {
        totals_overflow()
    } else {
        e.into()
    }
}

/// Every month in `zone` from the first usage row imported to the last.
fn months_with_usage(conn: &Connection, zone: Tz) -> anyhow::Result<Vec<MonthSpan>> {
    let span: (Option<i64>, Option<i64>) = conn.query_row(USAGE_SPAN_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match span {
        (Some(first), Some(last)) => Month::spanning(at(first), at(last), zone),
        _ => Vec::new(),
    })
}

/// Runs `f` with `temp.usage_months` holding `spans` as (month, period_start, period_end).
fn with_months<T>(
    conn: &Connection,
    spans: &[MonthSpan],
    f: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS usage_months (month TEXT PRIMARY KEY, period_start INTEGER, period_end INTEGER)",
        [],
    )?;
    conn.execute("DELETE FROM temp.usage_months", [])?;
    {
        let mut insert = conn.prepare_cached("INSERT INTO temp.usage_months VALUES (?1, ?2, ?3)")?;
        for s in spans {
            insert.execute(params![s.month.to_string(), us(s.start), us(s.end)])?;
        }
    }
    let out = f(conn);
    conn.execute("DELETE FROM temp.usage_months", [])?;
    out
}

/// Takes the rows of import `import_id`, which fall within `[first, last]` (µs), off the stored
/// totals, if any are kept: what a retraction does before it moves the rows away. A total the
/// import alone made stays, at zero, so that the next settle sees a bill line whose usage went.
/// Month by month (an import spans one or two): an update of the totals the rows reach.
pub fn take_back(conn: &Connection, import_id: i64, first: i64, last: i64) -> anyhow::Result<()> {
    let Some(zone) = zone(conn)? else {
        return Ok(());
    };
    let mut update = conn.prepare_cached(TAKE_BACK_SQL)?;
    for span in Month::spanning(at(first), at(last), zone) {
        update.execute(params![import_id, us(span.start), us(span.end), span.month.to_string()])?;
    }
    Ok(())
}
