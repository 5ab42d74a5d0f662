//! The month's usage totals on PostgreSQL (`usage_totals`, migrations/postgres/0010): built
//! from the imports' kept content for a billing zone, added to by each import in its own transaction, and
//! recomputed from the imports' kept content by `verify`. An import's own sums are staged with
//! `COPY` and added with one upsert; months are those billrun computes in the zone, so the
//! server's time zone database never decides a month.

use super::content;
use super::copy_binary::{Buffer, COPY_BUFFER};
use crate::domain::month::usage_allowed_from;
use crate::input::replay::{shares_for, MonthSums, SUMS_PER_SHARE};
use crate::store::common::{archived_error, totals_overflow, CountedImport, RefusedAccounts, REZONING};
use crate::store::sql::{
    ARCHIVED_COUNTED_SQL, COUNTED_IMPORTS_SQL, IMPORT_CONTENT_SQL, TOTALS_ZONE_SQL, TOTALS_ZONE_UPSERT_SQL,
};
use crate::store::UsageTotals;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use sqlx::Row;

/// The zone the stored totals are kept for; `None` if they are not built yet, or if the zone
/// recorded is one this build does not know.
pub async fn zone(conn: &mut PgConnection) -> sqlx::Result<Option<Tz>> {
    let name: Option<String> = sqlx::query_scalar(TOTALS_ZONE_SQL).fetch_optional(conn).await?;
    Ok(name.and_then(|n| n.parse().ok()))
}

/// Makes the stored totals those of `zone`, building them from the imports' kept content
/// (`input::replay`) if they are of another zone or not built yet. Returns whether they were
/// built from any import. The caller's transaction holds `usage_imports` in `SHARE ROW
/// EXCLUSIVE` mode, so no import adds rows meanwhile.
pub async fn ensure_zone(conn: &mut PgConnection, zone: Tz) -> anyhow::Result<bool> {
    if self::zone(conn).await? == Some(zone) {
        return Ok(false);
    }
    let archived: Option<(i64, String)> = sqlx::query_as(ARCHIVED_COUNTED_SQL).fetch_optional(&mut *conn).await?;
    if let Some((import_id, file_name)) = archived {
        return Err(archived_error(import_id, &file_name, REZONING));
    }
    let mut imports = Vec::new();
    for row in sqlx::query(COUNTED_IMPORTS_SQL).fetch_all(&mut *conn).await? {
        imports.push(CountedImport::new(
            row.try_get("import_id")?,
            row.try_get("content_chunks")?,
            row.try_get("content_format")?,
            row.try_get("assume_tz")?,
            row.try_get("skipped_lines")?,
        )?);
    }
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_totals")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM usage_totals").execute(&mut *conn).await?;
    // As many shares as the totals of the zone they were kept for take.
    let shares = shares_for(kept as u64, SUMS_PER_SHARE);
    for share in 0..shares {
        let mut sums = MonthSums::new(zone, None, share, shares);
        for import in &imports {
            sums = sum_import(conn, import, sums).await?;
        }
        let sorted = sums.into_sorted();
        let mut sorted = sorted.iter().peekable();
        while sorted.peek().is_some() {
            let columns = columns(sorted.by_ref().take(10_000));
            sqlx::query(
                "INSERT INTO usage_totals (month, account_id, api, calls)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])",
            )
            .bind(columns.0)
            .bind(columns.1)
            .bind(columns.2)
            .bind(columns.3)
            .execute(&mut *conn)
            .await?;
        }
    }
    sqlx::query(TOTALS_ZONE_UPSERT_SQL)
        .bind(zone.name())
        .execute(&mut *conn)
        .await?;
    Ok(!imports.is_empty())
}

/// Adds `import`'s rows to `sums` (see [`read_import`]).
async fn sum_import(conn: &mut PgConnection, import: &CountedImport, sums: MonthSums) -> anyhow::Result<MonthSums> {
    let read = content::read_import(conn, import, move |rows| {
        let mut sums = sums;
        sums.add_all(rows).map(|()| sums)
    });
    match read.await? {
        Ok(sums) => Ok(sums),
        Err(problem) if problem.contains("64 bits") => Err(totals_overflow()),
        Err(problem) => Err(import.unreadable(problem)),
    }
}

/// Takes the rows of import `import_id`, read back from its kept content, off the stored
/// totals, if any are kept: what a retraction does. A total the import alone made stays, at
/// zero, so that the next settle sees a bill line whose usage went. The sums go 10,000 to a
/// statement.
pub async fn take_back(conn: &mut PgConnection, import_id: i64) -> anyhow::Result<()> {
    let Some(zone) = zone(conn).await? else {
        return Ok(());
    };
    let row = sqlx::query(IMPORT_CONTENT_SQL)
        .bind(import_id)
        .fetch_one(&mut *conn)
        .await?;
    let import = CountedImport::new(
        row.try_get("import_id")?,
        row.try_get("content_chunks")?,
        row.try_get("content_format")?,
        row.try_get("assume_tz")?,
        row.try_get("skipped_lines")?,
    )?;
    let rows: i64 = row.try_get("rows")?;
    let shares = shares_for(rows.max(0) as u64, SUMS_PER_SHARE);
    for share in 0..shares {
        let sums = sum_import(conn, &import, MonthSums::new(zone, None, share, shares)).await?;
        let sorted = sums.into_sorted();
        let mut sorted = sorted.iter().peekable();
        while sorted.peek().is_some() {
            let (months, accounts, apis, calls) = columns(sorted.by_ref().take(10_000));
            sqlx::query(
                "UPDATE usage_totals t SET calls = t.calls - d.calls
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS d (month, account_id, api, calls)
                 WHERE t.month = d.month AND t.account_id = d.account_id AND t.api = d.api",
            )
            .bind(months)
            .bind(accounts)
            .bind(apis)
            .bind(calls)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Sums as the arrays of an `unnest`: months, accounts, APIs, calls.
fn columns<'a>(
    sums: impl Iterator<Item = (&'a str, &'a str, &'a str, i64)>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<i64>) {
    let mut out: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
    for (month, account, api, calls) in sums {
        out.0.push(month);
        out.1.push(account);
        out.2.push(api);
        out.3.push(calls);
    }
    out
}

/// A sum past 64 bits ("bigint out of range", SQLSTATE 22003) as [`totals_overflow`].
fn overflow_or(e: sqlx::Error) -> anyhow::Error {
    if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("22003") {
        totals_overflow()
    } else {
        e.into()
    }
}

/// Copies an import's totals, summed by billrun as it sent the rows, into a temporary table
/// `totals_in`, in key order. Cheaper than summing the rows again in SQL, which sorts them.
pub async fn stage(conn: &mut PgConnection, totals: UsageTotals) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE totals_in (month text NOT NULL, account_id text NOT NULL, api text NOT NULL,
             calls bigint NOT NULL) ON COMMIT DROP",
    )
    .execute(&mut *conn)
    .await?;
    let mut copy = conn
        .copy_in_raw("COPY totals_in (month, account_id, api, calls) FROM STDIN WITH (FORMAT binary)")
        .await?;
    let mut buf = Buffer::new(COPY_BUFFER);
    for (month, account, api, calls) in totals.into_sorted().iter() {
        buf.tuple(4);
        buf.text(month);
        buf.text(account);
        buf.text(api);
        buf.int8(calls);
        if buf.is_full() {
            copy.send(buf.take()).await?;
        }
    }
    copy.send(buf.finish()).await?;
    copy.finish().await?;
    Ok(())
}

/// The accounts the staged totals name that do not exist or (unless `accept_unopened`) are not
/// open yet in the total's month: one row per account and API to look at, not one per usage
/// row. An unopened account comes with its opening and the first instant it may have usage
/// from (`domain::month::usage_allowed_from`).
pub async fn staged_refused_accounts(
    conn: &mut PgConnection,
    zone: Tz,
    accept_unopened: bool,
) -> anyhow::Result<RefusedAccounts> {
    let found: Vec<(String, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT DISTINCT t.account_id, a.account_id IS NULL AS unknown, a.activated_at
         FROM totals_in t LEFT JOIN accounts a ON a.account_id = t.account_id
         WHERE a.account_id IS NULL OR (NOT $2 AND (a.activated_at IS NULL
            OR t.month < to_char(a.activated_at AT TIME ZONE $1, 'YYYY-MM')))",
    )
    .bind(zone.name())
    .bind(accept_unopened)
    .fetch_all(conn)
    .await?;
    let mut accounts = RefusedAccounts::default();
    for (account, unknown, opened) in found {
        if unknown {
            accounts.unknown.insert(account);
        } else {
            accounts
                .unopened
                .insert(account, (opened, usage_allowed_from(opened, zone)));
        }
    }
    Ok(accounts)
}

/// Adds the staged totals to the stored ones.
pub async fn add_staged(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO usage_totals (month, account_id, api, calls)
         SELECT month, account_id, api, calls FROM totals_in
         ON CONFLICT (month, account_id, api) DO UPDATE SET calls = usage_totals.calls + EXCLUDED.calls",
    )
    .execute(conn)
    .await
    .map_err(overflow_or)?;
    Ok(())
}
