//! Taking a usage import back on SQLite, through `rusqlite` inside the caller's `BEGIN
//! IMMEDIATE` transaction: `billrun usage retract`, and `usage import --replaces`, which
//! retracts before it imports, in the import's own transaction. See `Store::retract_import`.

use super::rows::at;
use super::totals;
use crate::store::common::{archived_error, retraction_record, settled_months_within};
use crate::store::sql::{
    FREE_EVENTS_SQL, IMPORT_TO_RETRACT_SQL, MARK_RETRACTED_SQL, RETRACTION_RECORD_SQL, SETTLED_PERIODS_SQL,
};
use crate::store::{RetractOutcome, Retracted, Retraction, StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};

/// An import as a retraction reads it.
struct Found {
    file_name: String,
    rows: i64,
    calls: i64,
    first: Option<i64>,
    last: Option<i64>,
    retracts: Option<i64>,
    retracted_at: Option<i64>,
    retracted_by: Option<String>,
    reason: Option<String>,
    record_id: Option<i64>,
    archived: bool,
}

/// Retracts `r.import_id` at `now` (µs), in `tx`'s transaction.
pub(crate) fn retract(tx: &Connection, r: &Retraction, now: i64) -> StoreResult<RetractOutcome> {
    let found = tx
        .query_row(IMPORT_TO_RETRACT_SQL, [r.import_id], |row| {
            Ok(Found {
                file_name: row.get("file_name")?,
                rows: row.get("rows")?,
                calls: row.get("calls")?,
                first: row.get("first_ts")?,
                last: row.get("last_ts")?,
                retracts: row.get("retracts")?,
                retracted_at: row.get("retracted_at")?,
                retracted_by: row.get("retracted_by")?,
                reason: row.get("retraction_reason")?,
                record_id: row.get("record_id")?,
                archived: row.get("archived")?,
            })
        })
        .optional()?;
    let Some(found) = found.filter(|f| f.retracts.is_none()) else {
        return Err(StoreError::UnknownImport(r.import_id));
    };
    let settled: Vec<(String, _, _)> = tx
        .prepare_cached(SETTLED_PERIODS_SQL)?
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, at(row.get(1)?), at(row.get(2)?)))
        })?
        .collect::<Result<_, _>>()?;
    let months = match (found.first, found.last) {
        (Some(first), Some(last)) => settled_months_within(&settled, at(first), at(last)),
        _ => Vec::new(),
    };
    let retracted = |at_us: i64, by: Option<String>, reason: String, record_id: i64| Retracted {
        import_id: r.import_id,
        file_name: found.file_name.clone(),
        rows: found.rows.max(0) as u64,
        calls: found.calls,
        at: at(at_us),
        by,
        reason,
        record_id,
        settled_months: months.clone(),
    };
    if let Some(when) = found.retracted_at {
        return Ok(RetractOutcome::AlreadyRetracted(retracted(
            when,
            found.retracted_by.clone(),
            found.reason.clone().unwrap_or_default(),
            found.record_id.unwrap_or_default(),
        )));
    }
    if found.archived {
        return Err(archived_error(r.import_id, &found.file_name, "retracting it").into());
    }
    totals::take_back(tx, r.import_id)?;
    tx.execute(FREE_EVENTS_SQL, [r.import_id])?;
    let (name, fingerprint) = retraction_record(r.import_id);
    let record_id: i64 = tx.query_row(
        RETRACTION_RECORD_SQL,
        params![name, fingerprint, now, found.first, found.last, r.import_id],
        |row| row.get(0),
    )?;
    tx.execute(
        MARK_RETRACTED_SQL,
        params![now, r.by, r.reason, Option::<i64>::None, r.import_id],
    )?;
    Ok(RetractOutcome::Retracted(retracted(
        now,
        r.by.clone(),
        r.reason.clone(),
        record_id,
    )))
}
