//! The month's usage totals on SQLite (`usage_totals`, migrations/sqlite/0010): built from the
//! imports' kept content for a billing zone, added to by each import in its own transaction, and checked
//! and recomputed from the imports' kept content by `verify`. Through `rusqlite`, inside the caller's transaction.

use super::content;
use super::rows::{at, us};
use crate::domain::month::{usage_allowed_from, Month};
use crate::input::replay::{shares_for, sum_content, MonthSums, SUMS_PER_SHARE};
use crate::store::common::{archived_error, totals_overflow, CountedImport, RefusedAccounts, REZONING};
use crate::store::sql::{
    ARCHIVED_COUNTED_SQL, COUNTED_IMPORTS_SQL, IMPORT_CONTENT_SQL, TAKE_BACK_SQL, TOTALS_ZONE_SQL,
    TOTALS_ZONE_UPSERT_SQL,
};
use crate::store::UsageTotals;
use chrono_tz::Tz;
use rusqlite::{params, Connection, OptionalExtension};

/// The zone the stored totals are kept for; `None` if they are not built yet, or if the zone
/// recorded is one this build does not know (they are built again then, for the zone asked).
pub fn zone(conn: &Connection) -> anyhow::Result<Option<Tz>> {
    let name: Option<String> = conn.query_row(TOTALS_ZONE_SQL, [], |r| r.get(0)).optional()?;
    Ok(name.and_then(|n| n.parse().ok()))
}

/// Makes the stored totals those of `zone`, building them from the imports' kept content
/// (`input::replay`) if they are of another zone or not built yet. Returns whether they were
/// built from any import. The caller holds the write lock (`BEGIN IMMEDIATE`), so no import
/// adds rows meanwhile.
pub fn ensure_zone(conn: &Connection, zone: Tz) -> anyhow::Result<bool> {
    if self::zone(conn)? == Some(zone) {
        return Ok(false);
    }
    let archived: Option<(i64, String)> = conn
        .query_row(ARCHIVED_COUNTED_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((import_id, file_name)) = archived {
        return Err(archived_error(import_id, &file_name, REZONING));
    }
    let imports = counted_imports(conn)?;
    let kept: i64 = conn.query_row("SELECT COUNT(*) FROM usage_totals", [], |r| r.get(0))?;
    conn.execute("DELETE FROM usage_totals", [])?;
    // As many shares as the totals of the zone they were kept for take.
    let shares = shares_for(kept as u64, SUMS_PER_SHARE);
    let mut insert =
        conn.prepare_cached("INSERT INTO usage_totals (month, account_id, api, calls) VALUES (?1, ?2, ?3, ?4)")?;
    for share in 0..shares {
        let mut sums = MonthSums::new(zone, None, share, shares);
        for import in &imports {
            let chunk = |seq: i64| content::read_chunk(conn, import, seq);
            sums = match sum_content(sums, import.reading, import.skipped.clone(), chunk)? {
                Ok(sums) => sums,
                Err(problem) if problem.contains("64 bits") => return Err(totals_overflow()),
                Err(problem) => return Err(import.unreadable(problem)),
            };
        }
        for (month, account, api, calls) in sums.into_sorted().iter() {
            insert.execute(params![month, account, api, calls])?;
        }
    }
    conn.execute(TOTALS_ZONE_UPSERT_SQL, [zone.name()])?;
    Ok(!imports.is_empty())
}

/// The imports whose rows count, with how their content reads back.
fn counted_imports(conn: &Connection) -> anyhow::Result<Vec<CountedImport>> {
    let mut stmt = conn.prepare(COUNTED_IMPORTS_SQL)?;
    let found = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    found
        .into_iter()
        .map(|(id, chunks, format, tz, skipped)| CountedImport::new(id, chunks, format, tz, skipped))
        .collect()
}

/// What adding an import's totals found wrong with their accounts.
#[derive(Debug, Default)]
pub struct Refused {
    /// The accounts of totals that do not exist.
    pub unknown: Vec<String>,
    /// Accounts with usage before they may have any (`domain::month::usage_allowed_from`): each
    /// with its opening instant (µs; `None`: never opened) and the first instant it may have
    /// usage from.
    pub unopened: Vec<(String, Option<i64>, Option<i64>)>,
}

impl Refused {
    /// As the accounts whose lines are listed (`unopened` too, or not).
    pub fn accounts(&self, unopened: bool) -> RefusedAccounts {
        RefusedAccounts {
            unknown: self.unknown.iter().cloned().collect(),
            unopened: if unopened {
                self.unopened
                    .iter()
                    .map(|(id, opened, from)| (id.clone(), (opened.map(at), from.map(at))))
                    .collect()
            } else {
                Default::default()
            },
        }
    }

    pub fn any(&self) -> bool {
        !self.unknown.is_empty() || !self.unopened.is_empty()
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
            if refused.unknown.last().map(String::as_str) != Some(account) {
                refused.unknown.push(account.to_owned());
            }
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
    refused.unknown.sort();
    refused.unknown.dedup();
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

/// Takes the rows of import `import_id`, read back from its kept content, off the stored
/// totals, if any are kept: what a retraction does. A total the import alone made stays, at
/// zero, so that the next settle sees a bill line whose usage went.
pub fn take_back(conn: &Connection, import_id: i64) -> anyhow::Result<()> {
    let Some(zone) = zone(conn)? else {
        return Ok(());
    };
    let (import, rows) = conn.query_row(IMPORT_CONTENT_SQL, [import_id], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
            r.get::<_, i64>(5)?,
        ))
    })?;
    let import = CountedImport::new(import.0, import.1, import.2, import.3, import.4)?;
    let shares = shares_for(rows.max(0) as u64, SUMS_PER_SHARE);
    let mut update = conn.prepare_cached(TAKE_BACK_SQL)?;
    for share in 0..shares {
        let chunk = |seq: i64| content::read_chunk(conn, &import, seq);
        let sums = match sum_content(
            MonthSums::new(zone, None, share, shares),
            import.reading,
            import.skipped.clone(),
            chunk,
        )? {
            Ok(sums) => sums,
            Err(problem) => return Err(import.unreadable(problem)),
        };
        for (month, account, api, calls) in sums.into_sorted().iter() {
            update.execute(params![calls, month, account, api])?;
        }
    }
    Ok(())
}
