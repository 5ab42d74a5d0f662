//! Taking a usage import back on PostgreSQL (and Citus), inside the caller's transaction, which
//! holds `usage_imports` against other imports: `billrun usage retract`, and `usage import
//! --replaces`, which retracts before it imports, in the import's own transaction. See
//! `Store::retract_import`.

use super::totals;
use crate::store::common::{archived_error, retraction_record, settled_months_within};
use crate::store::sql::{
    FREE_EVENTS_SQL, IMPORT_TO_RETRACT_SQL, MARK_RETRACTED_SQL, RETRACTION_RECORD_SQL, SETTLED_PERIODS_SQL,
};
use crate::store::{RetractOutcome, Retracted, Retraction, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

/// Retracts `r.import_id` at `now`, in `tx`'s transaction.
pub(crate) async fn retract(tx: &mut PgConnection, r: &Retraction, now: DateTime<Utc>) -> StoreResult<RetractOutcome> {
    let found = sqlx::query(IMPORT_TO_RETRACT_SQL)
        .bind(r.import_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(found) = found.filter(|f| f.try_get::<Option<i64>, _>("retracts").ok().flatten().is_none()) else {
        return Err(StoreError::UnknownImport(r.import_id));
    };
    let first: Option<DateTime<Utc>> = found.try_get("first_ts")?;
    let last: Option<DateTime<Utc>> = found.try_get("last_ts")?;
    let settled: Vec<(String, DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as(SETTLED_PERIODS_SQL).fetch_all(&mut *tx).await?;
    let months = match (first, last) {
        (Some(first), Some(last)) => settled_months_within(&settled, first, last),
        _ => Vec::new(),
    };
    let file_name: String = found.try_get("file_name")?;
    let rows: i64 = found.try_get("rows")?;
    let calls: i64 = found.try_get("calls")?;
    let retracted = |at: DateTime<Utc>, by: Option<String>, reason: String, record_id: i64| Retracted {
        import_id: r.import_id,
        file_name: file_name.clone(),
        rows: rows.max(0) as u64,
        calls,
        at,
        by,
        reason,
        record_id,
        settled_months: months.clone(),
    };
    if let Some(when) = found.try_get::<Option<DateTime<Utc>>, _>("retracted_at")? {
        return Ok(RetractOutcome::AlreadyRetracted(retracted(
            when,
            found.try_get("retracted_by")?,
            found
                .try_get::<Option<String>, _>("retraction_reason")?
                .unwrap_or_default(),
            found.try_get::<Option<i64>, _>("record_id")?.unwrap_or_default(),
        )));
    }
    if found.try_get::<bool, _>("archived")? {
        return Err(archived_error(r.import_id, &file_name, "retracting it").into());
    }
    totals::take_back(&mut *tx, r.import_id).await?;
    sqlx::query(FREE_EVENTS_SQL).bind(r.import_id).execute(&mut *tx).await?;
    let (name, fingerprint) = retraction_record(r.import_id);
    let record_id: i64 = sqlx::query_scalar(RETRACTION_RECORD_SQL)
        .bind(name)
        .bind(fingerprint)
        .bind(now)
        .bind(first)
        .bind(last)
        .bind(r.import_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(MARK_RETRACTED_SQL)
        .bind(now)
        .bind(&r.by)
        .bind(&r.reason)
        .bind(Option::<i64>::None)
        .bind(r.import_id)
        .execute(&mut *tx)
        .await?;
    Ok(RetractOutcome::Retracted(retracted(
        now,
        r.by.clone(),
        r.reason.clone(),
        record_id,
    )))
}
