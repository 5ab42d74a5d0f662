//! SQLite's usage import through `rusqlite`: the whole file in one `BEGIN IMMEDIATE`
//! transaction. The file's content is kept as received, compressed in chunks
//! (`input::stored`), as it is read; its calls per account, API and month are added to the
//! month's totals at its end (`store::sqlite::totals`), in the same transaction. No row is
//! written per usage line: only a row per metered event (`usage_events`), so that an event is
//! billed once across every import.
//!
//! Why not sqlx here: its SQLite driver copies each statement's arguments and hands them to a
//! worker thread, and at tens of millions of events that hand-off is a large part of the import
//! (see `store::sqlite::settle` for the same reason in settle). The rows arrive already parsed
//! and checked (on a thread of their own, `jobs::usage`); if the file turns out to be bad, the
//! transaction is rolled back and nothing of it is kept. A row whose account already has its
//! `event_id` is skipped by the key of `usage_events` (`ON CONFLICT DO NOTHING`) and counted as
//! a duplicate if it says what the first said; with another API, instant or calls it is a
//! conflict, and the file is refused. A file made only of such duplicates adds nothing and
//! records no import.

use super::conn::open;
use super::content;
use super::retract;
use super::rows::{at, us};
use super::totals;
use crate::input::replay::{read_back_with, SkippedLines};
use crate::input::stored::Content;
use crate::input::usage::NewUsage;
use crate::store::common::replaced_before;
use crate::store::common::{
    repeated_rows, CountedImport, EarlierImport, FirstEvent, ImportTally, RefusedAccounts, RefusedLines,
};
use crate::store::repeats::Sketch;
use crate::store::sql::{
    ADD_SKETCH_SQL, EARLIER_SKETCHES_SQL, FINISH_IMPORT_SQL, NEW_IMPORT_SQL, REPLACED_BY_SQL, SAME_IMPORT_SQL,
    SETTLED_PERIODS_SQL,
};
use crate::store::{RetractOutcome, Retraction, StoreError, StoreResult, UsageImported, UsageSource};
use anyhow::anyhow;
use chrono_tz::Tz;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::path::Path;

/// Records the event row `r` names; returns 0 if its account had that event already.
fn insert_event(insert: &mut rusqlite::CachedStatement<'_>, r: &NewUsage, import_id: i64) -> rusqlite::Result<usize> {
    insert.execute(params![
        r.account_id,
        r.event_id,
        import_id,
        r.line as i64,
        r.ts.timestamp_micros(),
        r.api,
        r.calls
    ])
}

/// The sketches of the imports other than `import_id` whose rows span some of `[from, to]`
/// (µs).
fn earlier_sketches(tx: &rusqlite::Connection, import_id: i64, from: i64, to: i64) -> StoreResult<Vec<EarlierImport>> {
    let mut stmt = tx.prepare(EARLIER_SKETCHES_SQL)?;
    let found = stmt
        .query_map(params![import_id, from, to], |r| {
            Ok(EarlierImport {
                import_id: r.get(0)?,
                file_name: r.get(1)?,
                imported_at: at(r.get(2)?),
                sketch: Sketch {
                    full: r.get(3)?,
                    rows: r.get::<_, i64>(4)? as u64,
                    bits: r.get(5)?,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(found)
}

/// Where the event `r` repeats came first (its record in `usage_events`).
fn first_event(
    first_of: &mut rusqlite::CachedStatement<'_>,
    r: &NewUsage,
    import_id: i64,
) -> rusqlite::Result<FirstEvent> {
    first_of.query_row(params![r.account_id, r.event_id], |row| {
        let from: i64 = row.get(0)?;
        Ok(FirstEvent {
            import_id: (from != import_id).then_some(from),
            line: row.get::<_, i64>(1)? as u64,
            ts: at(row.get(2)?),
            api: row.get(3)?,
            calls: row.get(4)?,
        })
    })
}

/// Rows read between two looks for finished chunks of the file's content.
const CHUNK_LOOK: u64 = 4096;

/// Writes the chunks of the file's content finished so far.
fn keep_chunks(tx: &rusqlite::Connection, import_id: i64, rows: &mut dyn UsageSource) -> rusqlite::Result<()> {
    content::keep(tx, import_id, rows.take_chunks())
}

/// Adds a usage file's rows to the database file `file`, all or none (see `Store::import_usage`).
pub fn import_usage(
    file: &Path,
    file_name: &str,
    rows: &mut dyn UsageSource,
    now_us: i64,
    zone: Tz,
    replaces: Option<&Retraction>,
) -> StoreResult<UsageImported> {
    // Without foreign-key checks: the only reference an import writes is each row's
    // `import_id`, to the import this transaction created (`verify` checks it too); checking
    // it costs a lookup per row.
    let mut conn = open(file, false)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if totals::ensure_zone(&tx, zone)? {
        tracing::warn!(
            zone = zone.name(),
            "usage totals built from the imports' kept usage for this billing zone"
        );
    }
    // The import this file replaces is taken back first, in this transaction: its rows no
    // longer count, its events may come again, and its fingerprints refuse nothing.
    let replaced = match replaces.map(|r| retract::retract(&tx, r, now_us)).transpose()? {
        Some(RetractOutcome::AlreadyRetracted(before)) => return Err(replaced_before(&before)),
        Some(RetractOutcome::Retracted(replaced)) => Some(replaced),
        None => None,
    };
    // The fingerprints are known once the file is read; a placeholder holds the unique key
    // until then (imports run one at a time: this transaction holds the write lock).
    let import_id: i64 = tx.query_row(NEW_IMPORT_SQL, params![file_name, now_us], |r| r.get(0))?;

    let settled = tx
        .prepare_cached(SETTLED_PERIODS_SQL)?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, at(r.get(1)?), at(r.get(2)?))))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut tally = ImportTally::new(settled);
    // Rows skipped as duplicate events, to be taken back from the reader's sums.
    let mut skipped: Vec<NewUsage> = Vec::new();
    {
        // Only rows that name an event are written, one per event (so that an event is billed
        // once across every import); the file's kept content is the record of every row.
        let mut insert = tx.prepare_cached(
            "INSERT INTO usage_events (account_id, event_id, import_id, source_line, ts, api, calls)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (account_id, event_id) DO NOTHING",
        )?;
        let mut first_of = tx.prepare_cached(
            "SELECT import_id, source_line, ts, api, calls FROM usage_events WHERE account_id = ?1 AND event_id = ?2",
        )?;
        let mut read: u64 = 0;
        while let Some(row) = rows.next() {
            read += 1;
            if read % CHUNK_LOOK == 0 {
                keep_chunks(&tx, import_id, rows)?;
            }
            let r = match row {
                Ok(r) => r,
                Err(errs) => {
                    tally.problems(errs);
                    continue;
                }
            };
            // A row without an event, or with one its account did not have, counts (one that
            // takes the calls past what can be counted makes the file bad, and all of it is
            // rolled back); a repeated event is a duplicate or a conflict.
            if r.event_id.is_none() || insert_event(&mut insert, &r, import_id)? > 0 {
                tally.row(&r);
                continue;
            }
            let first = first_event(&mut first_of, &r, import_id)?;
            if first.same_as(&r) {
                tally.duplicate();
                skipped.push(r);
            } else {
                tally.event_conflict(&r, &first);
            }
        }
    }
    let mut totals = rows.totals();
    if tally.is_bad() {
        // The lines naming an account that does not exist are listed too, read back from the
        // content (the transaction, the totals added here with it, is rolled back).
        if let (Some(totals), Some(content)) = (totals.take(), rows.content()) {
            keep_chunks(&tx, import_id, rows)?;
            let refused = totals::add(&tx, totals, true)?;
            refused_lines(&tx, import_id, &content, &skipped, refused.accounts(false), &mut tally)?;
        }
    }
    if let Some(rejected) = tally.rejection() {
        return Err(rejected);
    }
    // A re-send of events imported before: nothing is recorded (the transaction is rolled back).
    if let Some(nothing_new) = tally.nothing_new(replaced.as_ref()) {
        return nothing_new;
    }
    let (Some(fingerprint), Some(mut totals), Some(content)) = (rows.fingerprint(), totals, rows.content()) else {
        return Err(anyhow!("the usage file was not read to its end").into());
    };
    keep_chunks(&tx, import_id, rows)?;
    content::record(
        &tx,
        import_id,
        &content,
        SkippedLines::of(skipped.iter().map(|r| r.line)).encode(),
    )?;
    let earlier = tx
        .query_row(
            SAME_IMPORT_SQL,
            params![fingerprint.sha256, fingerprint.rows, import_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)),
        )
        .optional()?;
    if let Some((import_id, file_name, imported_at)) = earlier {
        return Err(StoreError::AlreadyImported {
            import_id,
            file_name,
            imported_at: at(imported_at),
        });
    }
    totals.check_zone(zone)?;
    for r in &skipped {
        totals.take_back(r);
    }
    // A total of an account that does not exist, or not open yet in its month, is not added,
    // and the file is refused with the lines that name it.
    let refused = totals::add(&tx, totals, rows.accepts_unopened())?;
    if refused.any() {
        refused_lines(&tx, import_id, &content, &skipped, refused.accounts(true), &mut tally)?;
        if let Some(rejected) = tally.rejection() {
            return Err(rejected);
        }
    }
    let (first, last) = (tally.first.map(us), tally.last.map(us));
    // Rows without an event id that repeat rows of earlier imports: refused past a share.
    if let (Some(hashes), Some(from), Some(to)) = (rows.row_hashes(), first, last) {
        if hashes.rows() > 0 {
            if !rows.accepts_repeats() {
                let earlier = earlier_sketches(&tx, import_id, from, to)?;
                if let Some(problem) = repeated_rows(&hashes, &earlier) {
                    return Err(StoreError::Rejected {
                        problems: vec![problem],
                        total: 1,
                    });
                }
            }
            let sketch = hashes.sketch();
            tx.execute(
                ADD_SKETCH_SQL,
                params![import_id, sketch.full, sketch.rows as i64, sketch.bits],
            )?;
        }
    }
    tx.execute(
        FINISH_IMPORT_SQL,
        params![
            fingerprint.sha256,
            fingerprint.rows,
            tally.rows as i64,
            tally.calls,
            first,
            last,
            tally.duplicates as i64,
            import_id
        ],
    )?;
    if let Some(replaced) = &replaced {
        tx.execute(REPLACED_BY_SQL, params![import_id, replaced.import_id])?;
    }
    tx.commit()?;
    Ok(UsageImported {
        import_id: Some(import_id),
        rows: tally.rows,
        calls: tally.calls,
        late: tally.late(),
        duplicates: tally.duplicates,
        replaced,
    })
}

/// Lists, as problems of the file, the lines of import `import_id` that name `accounts`, read
/// back from its content as kept in this transaction (less the lines it skipped).
fn refused_lines(
    tx: &rusqlite::Connection,
    import_id: i64,
    content: &Content,
    skipped: &[NewUsage],
    accounts: RefusedAccounts,
    tally: &mut ImportTally,
) -> StoreResult<()> {
    let import = CountedImport {
        import_id,
        chunks: content.chunks,
        reading: content.reading,
        skipped: SkippedLines::of(skipped.iter().map(|r| r.line)),
    };
    let found = read_back_with(
        import.reading,
        import.skipped.clone(),
        |seq| content::read_chunk(tx, &import, seq),
        move |rows| Ok(RefusedLines::find(rows, accounts)),
    )?
    .map_err(|problem| import.unreadable(problem))?;
    found.report(tally);
    Ok(())
}
