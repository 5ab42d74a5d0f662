//! SQLite's usage import through `rusqlite`: the whole file in one `BEGIN IMMEDIATE`
//! transaction, every row inserted by one cached prepared statement on the caller's thread.
//!
//! Why not sqlx here: its SQLite driver copies each statement's arguments and hands them to a
//! worker thread, and at tens of millions of rows that hand-off is a large part of the import
//! (see `store::sqlite_settle` for the same reason in settle). The rows arrive already parsed
//! and checked (on a thread of their own, `jobs::usage`); if the file turns out to be bad, the
//! transaction is rolled back and nothing of it is kept.

use super::sqlite::at;
use super::sqlite_settle::open;
use super::{usage_rejection, SourceFile, UsageImported, UsageRejected, MAX_LISTED};
use crate::input::usage::NewUsage;
use crate::input::RowError;
use anyhow::anyhow;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::path::Path;

/// Adds a usage file's rows to the database file `file`, all or none (see `Store::import_usage`).
pub fn import_usage(
    file: &Path,
    source: &SourceFile,
    rows: &mut dyn Iterator<Item = Result<NewUsage, Vec<RowError>>>,
    now_us: i64,
) -> anyhow::Result<Result<UsageImported, UsageRejected>> {
    let mut conn = open(file, true)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let earlier = tx
        .query_row(
            "SELECT import_id, file_name, imported_at FROM usage_imports WHERE sha256 = ?1",
            [&source.sha256],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)),
        )
        .optional()?;
    if let Some((import_id, file_name, imported_at)) = earlier {
        return Ok(Err(UsageRejected::AlreadyImported {
            import_id,
            file_name,
            imported_at: at(imported_at),
        }));
    }
    let import_id: i64 = tx.query_row(
        "INSERT INTO usage_imports (file_name, sha256, rows, calls, imported_at) VALUES (?1, ?2, 0, 0, ?3)
         RETURNING import_id",
        params![source.name, source.sha256, now_us],
        |r| r.get(0),
    )?;

    let mut problems: Vec<RowError> = Vec::new();
    let mut bad_total: u64 = 0;
    let (mut count, mut calls) = (0u64, 0i64);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO usage (account_id, ts, api, calls, import_id, source_line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut exists = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = ?1)")?;
        // Whether the account of the row before exists: a usage file mostly lists an account's
        // rows together, so the accounts table is asked once per run of rows, not once a row.
        let mut last: Option<(String, bool)> = None;
        let mut problem = |bad_total: &mut u64, errs: Vec<RowError>| {
            *bad_total += 1;
            let room = MAX_LISTED.saturating_sub(problems.len());
            problems.extend(errs.into_iter().take(room));
        };
        for row in rows {
            let r = match row {
                Ok(r) => r,
                Err(errs) => {
                    problem(&mut bad_total, errs);
                    continue;
                }
            };
            let known = match &last {
                Some((id, known)) if *id == r.account_id => *known,
                _ => {
                    let known: bool = exists.query_row([&r.account_id], |row| row.get(0))?;
                    last = Some((r.account_id.clone(), known));
                    known
                }
            };
            if !known {
                let message = format!("unknown account '{}'", r.account_id);
                problem(&mut bad_total, vec![RowError::new(r.line, "account_id", message)]);
                continue;
            }
            count += 1;
            calls = calls
                .checked_add(r.calls)
                .ok_or_else(|| anyhow!("total calls overflow"))?;
            // Once the file is known to be bad, its rows are only checked: the transaction is
            // rolled back.
            if bad_total == 0 {
                insert.execute(params![
                    r.account_id,
                    r.ts.timestamp_micros(),
                    r.api,
                    r.calls,
                    import_id,
                    r.line as i64
                ])?;
            }
        }
    }
    if let Some(rejected) = usage_rejection(problems, bad_total, count) {
        return Ok(Err(rejected));
    }
    let late_rows: i64 = tx.query_row(
        "SELECT COUNT(*) FROM usage u JOIN bills b
           ON b.account_id = u.account_id AND u.ts >= b.period_start AND u.ts < b.period_end AND b.revision = 1
         WHERE u.import_id = ?1",
        [import_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE usage_imports SET rows = ?1, calls = ?2 WHERE import_id = ?3",
        params![count as i64, calls, import_id],
    )?;
    tx.commit()?;
    Ok(Ok(UsageImported {
        import_id,
        rows: count,
        calls,
        late_rows: late_rows as u64,
    }))
}
