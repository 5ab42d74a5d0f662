//! The embedded backend: one SQLite file, the default database.
//!
//! SQLite allows one writer at a time, so every write runs in a `BEGIN IMMEDIATE` transaction,
//! which takes the write lock before reading what it will change (a second process waits up to
//! the busy timeout). The file runs in WAL mode
//! with `synchronous = FULL`: a committed bill survives a crash or power loss.
//!
//! Money is INTEGER fen or exact decimal TEXT, time INTEGER microseconds since the epoch (see
//! `migrations/sqlite/`).

mod conn;
mod content;
mod decode;
mod import;
mod retract;
mod rows;
mod settle;
#[cfg(test)]
mod settle_tests;
mod sql;
mod totals;
mod webhooks;

use crate::domain::arrears;
use crate::domain::credit::plan_credit;
use crate::domain::shard::Shard;
use crate::input::stored::StoredChunk;
use crate::store::common::{archive_refused, archive_state, credit_issued};
use crate::store::decode::{
    account_view, arrears_bill, billed_calls, command_runs, credit_bill, event_view, export_line, import_span,
    import_view, late_usage, line_amount, month_totals, pack_view, run_view, service_state, settled_month,
    status_counts, stored_chunk, stored_import, stored_line, stored_total, stored_version, used_credit, used_reference,
};
use crate::store::migrations::{through, ROWS_KEPT_THROUGH, SQLITE_MIGRATOR};
use crate::store::sql::verify::BookCheck;
use crate::store::sql::*;
use crate::store::*;
use anyhow::{anyhow, Context};
use futures_util::TryStreamExt;
use rows::{at, opt_at, us};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, SqliteConnection};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

/// The period a month was settled for, or else the period of one of its bills.
const BILLED_PERIOD_SQL: &str = "SELECT period_start, period_end, tz FROM settled_months WHERE month = ?1
     UNION ALL
     SELECT * FROM (SELECT period_start, period_end, NULL FROM bills WHERE month = ?1 LIMIT 1)
     LIMIT 1";

pub struct SqliteStore {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    /// The database file (`None`: in memory), which settle and the usage import open
    /// connections of their own to.
    file: Option<std::path::PathBuf>,
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://path` or `sqlite::memory:`), creating the file if
    /// it is missing and `create` is set.
    pub async fn connect(url: &str, create: bool) -> anyhow::Result<SqliteStore> {
        let shown = redact_url(url);
        if shown != url {
            return Err(crate::error::input_error(format!(
                "'{shown}' is not a usable SQLite database URL: a sqlite: URL names a file, and has no user or \
                 password (did you mean a postgres:// URL?)"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| crate::error::input_error(format!("'{shown}' is not a usable SQLite database URL: {e}")))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("journal_size_limit", conn::WAL_LIMIT_BYTES.to_string())
            .disable_statement_logging();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !create && !in_memory && !options.get_filename().exists() {
            return Err(crate::error::input_error(format!(
                "there is no SQLite database at {}: a command that writes (like `billrun migrate`) creates it",
                options.get_filename().display()
            )));
        }
        if create && !in_memory {
            let file = options.get_filename();
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if !dir.is_dir() {
                return Err(crate::error::input_error(format!(
                    "cannot create the SQLite database {}: the directory {} does not exist (create it first, or \
                     name a file in a directory that does)",
                    file.display(),
                    dir.display()
                )));
            }
        }
        // Two connections, so that a read streaming on one does not hold up a write on the
        // other (WAL lets a reader and a writer proceed together). Settle and the usage import
        // open connections of their own (`store::sqlite::settle`, `store::sqlite::import`).
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {shown}"))?;
        let file = (!in_memory).then(|| options.get_filename().to_path_buf());
        Ok(SqliteStore { pool, options, file })
    }
}

impl SqliteStore {
    /// The database file, which settle and the usage import open connections of their own to.
    fn file(&self) -> anyhow::Result<std::path::PathBuf> {
        self.file
            .clone()
            .ok_or_else(|| anyhow!("an in-memory SQLite database cannot be settled or take usage: use a database file"))
    }
}

/// Writes an account's service state after money came in, and records and queues its
/// restoration if it `restored` the service (rule 7).
async fn write_service(
    tx: &mut SqliteConnection,
    account_id: &str,
    state: &ServiceState,
    restored: bool,
    when: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(ACCOUNT_SERVICE_SQL)
        .bind(state.balance_fen)
        .bind(state.suspend_at.map(us))
        .bind(state.suspended as i64)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    if restored {
        let event: i64 = sqlx::query_scalar(RESTORED_EVENT_SQL)
            .bind(account_id)
            .bind(us(when))
            .bind(state.balance_fen)
            .fetch_one(&mut *tx)
            .await?;
        webhooks::queue_events(tx, &[event], when).await?;
    }
    Ok(())
}

/// Records the month's grant (`free_grants`): the free packs of every account opened before
/// the month ended follow from it (migrations/sqlite/0021). Returns how many packs it made due:
/// to every account, or only to the accounts in `only` (a JSON array of ids).
async fn grant(tx: &mut SqliteConnection, g: &FreeGrant, only: Option<&str>) -> anyhow::Result<(u64, FreeGrant)> {
    let month = g.month.to_string();
    let previous: Option<(i64, String)> = sqlx::query_as(GRANT_RECORD_SQL)
        .bind(&month)
        .fetch_optional(&mut *tx)
        .await?;
    let g = match &previous {
        Some((_, apis)) => g.keeping(apis)?,
        None => g.clone(),
    };
    if g.apis.is_empty() {
        return Ok((0, g));
    }
    let recorded: Option<i64> = sqlx::query_scalar(RECORD_GRANT_SQL)
        .bind(&month)
        .bind(us(g.start))
        .bind(us(g.end))
        .bind(g.apis_json()?)
        .fetch_optional(&mut *tx)
        .await
        .context("granting free packs")?;
    let Some(only) = only else {
        return Ok((g.newly_due(previous, recorded)?, g));
    };
    let opened: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM accounts WHERE activated_at < $1 AND account_id IN (SELECT value FROM json_each($2))",
    )
    .bind(us(g.end))
    .bind(only)
    .fetch_one(&mut *tx)
    .await?;
    Ok(((opened * g.apis.len() as i64) as u64, g))
}

/// Accounts checked and inserted per round of the accounts import.
const ACCOUNT_CHUNK: usize = 5_000;

/// Runs `head (?,…),(?,…)… tail` over `n` rows, many rows per statement; `bind` binds row `i`.
async fn many_rows<F>(
    tx: &mut SqliteConnection,
    head: &str,
    tail: &str,
    columns: usize,
    n: usize,
    bind: F,
) -> anyhow::Result<()>
where
    F: for<'q> Fn(SqliteQuery<'q>, usize) -> SqliteQuery<'q>,
{
    let per_statement = (30_000 / columns).min(500);
    let tuple = format!("({})", vec!["?"; columns].join(","));
    let mut start = 0;
    while start < n {
        let end = (start + per_statement).min(n);
        let sql = format!("{head}{}{tail}", vec![tuple.as_str(); end - start].join(","));
        let mut q = sqlx::query(&sql);
        for i in start..end {
            q = bind(q, i);
        }
        q.execute(&mut *tx).await.with_context(|| format!("running {head}…"))?;
        start = end;
    }
    Ok(())
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl Store for SqliteStore {
    /// SQLite needs no month lock: every page runs under `BEGIN IMMEDIATE`, which serializes
    /// writers, and a page re-checks which accounts are still unbilled inside its transaction.
    type MonthLock = ();

    async fn lock_month(&self, _month: Month, _shard: Shard) -> StoreResult<Option<()>> {
        Ok(Some(()))
    }

    async fn migrate(&self) -> StoreResult<()> {
        // Imports whose content does not read back yet (made before it was kept so) get it
        // rebuilt from their rows, before the migrations that drop the rows.
        through(&SQLITE_MIGRATOR, ROWS_KEPT_THROUGH)
            .run(&self.pool)
            .await
            .context("applying SQLite migrations")?;
        let waiting: Option<i64> = sqlx::query_scalar(UNREADABLE_IMPORTS_SQL)
            .fetch_optional(&self.pool)
            .await?;
        if waiting.is_some() {
            let file = self.file()?;
            tokio::task::spawn_blocking(move || content::rebuild_content(&file))
                .await
                .context("rebuilding kept usage content")??;
        }
        SQLITE_MIGRATOR
            .run(&self.pool)
            .await
            .context("applying SQLite migrations")?;
        Ok(())
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let applied = match sqlx::query_scalar(APPLIED_MIGRATIONS_SQL).fetch_all(&self.pool).await {
            Ok(v) => Some(v),
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => None,
            Err(e) => return Err(e.into()),
        };
        match crate::store::common::schema_problem(applied, &SQLITE_MIGRATOR) {
            Some(problem) => Err(crate::error::input_error(problem).into()),
            None => Ok(()),
        }
    }

    async fn close(&self) {
        // The write-ahead log is copied back and cut to nothing before the connections end:
        // SQLite only removes it when the last connection of any program closes, so a program
        // that merely has the file open (a backup tool, the sqlite3 shell) would otherwise keep
        // a log as large as the command's largest transaction on disk. A reader mid-transaction
        // makes the checkpoint stop short; what it could not copy is copied by the next command.
        if let Ok(mut conn) = self.pool.acquire().await {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await {
                tracing::warn!(error = %e, "could not fold the write-ahead log back into the database");
            }
        }
        self.pool.close().await;
    }

    async fn import_accounts(&self, rows: &[NewAccount], g: &FreeGrant, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut problems = Vec::new();
        // Many rows per statement: an id already in the database is reported by line (the
        // file's own duplicates were refused when it was read); the rest go in.
        for chunk in rows.chunks(ACCOUNT_CHUNK) {
            let ids = serde_json::to_string(&chunk.iter().map(|r| r.account_id.as_str()).collect::<Vec<_>>())?;
            let existing: HashSet<String> = sqlx::query_scalar(
                "SELECT account_id FROM accounts WHERE account_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            let mut fresh: Vec<&NewAccount> = Vec::with_capacity(chunk.len());
            for r in chunk {
                if existing.contains(&r.account_id) {
                    problems.push(RowError::new(
                        r.line,
                        "account_id",
                        format!("account '{}' already exists", r.account_id),
                    ));
                } else {
                    fresh.push(r);
                }
            }
            if !problems.is_empty() {
                continue; // nothing will be kept: only look for more problems
            }
            many_rows(
                &mut tx,
                "INSERT INTO accounts (account_id, name, activated_at, balance_fen) VALUES ",
                "",
                4,
                fresh.len(),
                |q, i| {
                    q.bind(fresh[i].account_id.clone())
                        .bind(fresh[i].name.clone())
                        .bind(fresh[i].activated_at.map(us))
                        .bind(fresh[i].balance_fen)
                },
            )
            .await?;
            let opening: Vec<&NewAccount> = fresh.into_iter().filter(|r| r.balance_fen != 0).collect();
            many_rows(
                &mut tx,
                "INSERT INTO ledger (account_id, kind, amount_fen, created_at) VALUES ",
                "",
                4,
                opening.len(),
                |q, i| {
                    q.bind(opening[i].account_id.clone())
                        .bind("opening")
                        .bind(opening[i].balance_fen)
                        .bind(us(now))
                },
            )
            .await?;
        }
        if !problems.is_empty() {
            return Err(StoreError::rejected(problems));
        }
        grant(&mut tx, g, None).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn activate(&self, account_id: &str, when: DateTime<Utc>, g: &FreeGrant) -> StoreResult<ActivateOutcome> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<Option<i64>> = sqlx::query_scalar("SELECT activated_at FROM accounts WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        match current {
            None => Err(StoreError::UnknownAccount(account_id.to_owned())),
            Some(Some(since)) => Ok(ActivateOutcome::AlreadyActive { since: at(since) }),
            Some(None) => {
                sqlx::query("UPDATE accounts SET activated_at = ? WHERE account_id = ?")
                    .bind(us(when))
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?;
                let (packs_granted, _) = grant(&mut tx, g, Some(&serde_json::to_string(&[account_id])?)).await?;
                tx.commit().await?;
                Ok(ActivateOutcome::Activated { packs_granted })
            }
        }
    }

    async fn count_accounts(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn accounts(&self, each: &mut dyn FnMut(AccountView) -> anyhow::Result<()>) -> StoreResult<()> {
        let sql = format!("{ACCOUNT_VIEW_SQL} ORDER BY account_id");
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(account_view(&row)?)?;
        }
        Ok(())
    }

    async fn recharge(
        &self,
        account_id: &str,
        amount_fen: i64,
        when: DateTime<Utc>,
        reference: Option<&str>,
    ) -> StoreResult<RechargeOutcome> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let Some(row) = sqlx::query("SELECT balance_fen, suspend_at, suspended FROM accounts WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(StoreError::UnknownAccount(account_id.to_owned()));
        };
        let state = service_state(&row)?;
        if let Some(reference) = reference {
            if let Some(r) = sqlx::query(USED_REFERENCE_SQL)
                .bind(reference)
                .fetch_optional(&mut *tx)
                .await?
            {
                return Ok(RechargeOutcome::ReferenceUsed(used_reference(&r)?));
            }
        }
        let Some(after) = arrears::recharge(state, amount_fen) else {
            return Ok(RechargeOutcome::Overflow {
                balance_fen: state.balance_fen,
            });
        };
        sqlx::query(RECHARGE_ENTRY_SQL)
            .bind(account_id)
            .bind(amount_fen)
            .bind(reference)
            .bind(us(when))
            .execute(&mut *tx)
            .await?;
        write_service(&mut tx, account_id, &after.state, after.restored, when).await?;
        tx.commit().await?;
        Ok(RechargeOutcome::Credited {
            balance_fen: after.state.balance_fen,
            restored: after.restored,
        })
    }

    async fn credit(&self, req: &CreditRequest, when: DateTime<Utc>) -> StoreResult<CreditOutcome> {
        let account_id = req.account_id.as_str();
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let Some(row) = sqlx::query("SELECT balance_fen, suspend_at, suspended FROM accounts WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(StoreError::UnknownAccount(account_id.to_owned()));
        };
        let state = service_state(&row)?;
        if let Some(r) = sqlx::query(USED_CREDIT_SQL)
            .bind(&req.reference)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Ok(CreditOutcome::ReferenceUsed(used_credit(&r)?));
        }
        let month = req.month.to_string();
        let Some(r) = sqlx::query(CREDIT_BILL_SQL)
            .bind(account_id)
            .bind(&month)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(CreditOutcome::NoBill);
        };
        let (replaced, mut current, rounding) = credit_bill(&r)?;
        for r in sqlx::query(CREDIT_LINES_SQL)
            .bind(account_id)
            .bind(&replaced)
            .fetch_all(&mut *tx)
            .await?
        {
            current.lines.push(stored_line(&r)?);
        }
        let plan = match plan_credit(&current, rounding, &req.amount, state) {
            Ok(plan) => plan,
            Err(refused) => return Ok(CreditOutcome::Refused(refused)),
        };
        let issued = credit_issued(req, &current, &plan, when);
        sqlx::query(CREDIT_REVISION_SQL)
            .bind(&issued.bill_id)
            .bind(plan.revision)
            .bind(plan.before.balance_fen)
            .bind(plan.after.balance_fen)
            .bind(us(when))
            .bind(-plan.amount_fen)
            .bind(plan.credited_fen)
            .bind(&req.reference)
            .bind(&req.reason)
            .bind(&req.by)
            .bind(account_id)
            .bind(&replaced)
            .execute(&mut *tx)
            .await?;
        for copy in [COPY_LINES_SQL, COPY_PACK_USE_SQL] {
            sqlx::query(copy)
                .bind(&issued.bill_id)
                .bind(account_id)
                .bind(&replaced)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(CREDIT_ENTRY_SQL)
            .bind(account_id)
            .bind(plan.amount_fen)
            .bind(&issued.bill_id)
            .bind(us(when))
            .execute(&mut *tx)
            .await?;
        write_service(&mut tx, account_id, &plan.after, plan.restored, when).await?;
        webhooks::queue_bills(&mut tx, &[issued.bill_id.as_str()], when).await?;
        tx.commit().await?;
        Ok(CreditOutcome::Credited(issued))
    }

    /// Through `rusqlite` on this thread: see `store::sqlite::import`.
    async fn import_usage(
        &self,
        file_name: &str,
        rows: &mut dyn UsageSource,
        now: DateTime<Utc>,
        zone: Tz,
        replaces: Option<&Retraction>,
    ) -> StoreResult<UsageImported> {
        import::import_usage(&self.file()?, file_name, rows, us(now), zone, replaces)
    }

    /// Through `rusqlite`, in one `BEGIN IMMEDIATE` transaction: see `store::sqlite::retract`.
    async fn retract_import(&self, retraction: &Retraction, now: DateTime<Utc>) -> StoreResult<RetractOutcome> {
        let mut conn = conn::open(&self.file()?, true)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcome = retract::retract(&tx, retraction, us(now))?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Through `rusqlite`, in one `BEGIN IMMEDIATE` transaction: see `store::sqlite::totals`.
    async fn ensure_usage_totals(&self, zone: Tz) -> StoreResult<bool> {
        let file = self.file()?;
        // Most of the time they are of this zone already: known without the write lock.
        if totals::zone(&conn::open(&file, false)?)? == Some(zone) {
            return Ok(false);
        }
        let mut conn = conn::open(&file, true)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let built = totals::ensure_zone(&tx, zone)?;
        tx.commit()?;
        Ok(built)
    }

    async fn settled_months(&self, month: Option<Month>) -> StoreResult<Vec<SettledMonth>> {
        let rows = sqlx::query(SETTLED_WATERMARKS_SQL)
            .bind(month.map(|m| m.to_string()))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(settled_month).collect::<anyhow::Result<_>>()?)
    }

    async fn billed_calls(&self, month: &str, each: &mut dyn FnMut(BilledCalls)) -> StoreResult<()> {
        let mut rows = sqlx::query(BILLED_CALLS_SQL).bind(month).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(billed_calls(&row)?);
        }
        Ok(())
    }

    async fn count_usage_totals(&self, month: Option<Month>) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(COUNT_TOTALS_SQL)
            .bind(month.map(|m| m.to_string()))
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn usage_totals(&self, month: Option<Month>, each: &mut dyn FnMut(StoredTotal)) -> StoreResult<()> {
        let mut rows = sqlx::query(TOTALS_SQL)
            .bind(month.map(|m| m.to_string()))
            .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(stored_total(&row)?);
        }
        Ok(())
    }

    async fn usage_totals_zone(&self) -> StoreResult<Option<Tz>> {
        Ok(totals::zone(&conn::open(&self.file()?, false)?)?)
    }

    async fn import_watermark(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(import_id), 0) FROM usage_imports")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn late_usage(&self) -> StoreResult<Vec<LateUsage>> {
        let rows = sqlx::query(LATE_USAGE_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(late_usage).collect::<anyhow::Result<_>>()?)
    }

    async fn billed_period(&self, month: Month) -> StoreResult<Option<BilledPeriod>> {
        let row = sqlx::query(BILLED_PERIOD_SQL)
            .bind(month.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(BilledPeriod {
                start: at(r.try_get("period_start")?),
                end: at(r.try_get("period_end")?),
                tz: r.try_get("tz")?,
            })
        })
        .transpose()
    }

    async fn currency(&self) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(CURRENCY_SQL).fetch_optional(&self.pool).await?)
    }

    async fn adopt_currency(&self, currency: &str) -> StoreResult<String> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(ADOPT_CURRENCY_SQL).bind(currency).execute(&mut *tx).await?;
        let recorded: String = sqlx::query_scalar(CURRENCY_SQL).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn catalog_versions(&self) -> StoreResult<Vec<StoredVersion>> {
        let rows = sqlx::query(CATALOG_VERSIONS_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(stored_version).collect::<anyhow::Result<_>>()?)
    }

    async fn add_catalog_versions(&self, versions: &[StoredVersion]) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for v in versions {
            sqlx::query(ADD_CATALOG_VERSION_SQL)
                .bind(&v.version)
                .bind(&v.effective_from)
                .bind(&v.currency)
                .bind(&v.definition)
                .bind(&v.source)
                .bind(us(v.imported_at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn billed_catalog_versions(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(BILLED_CATALOG_VERSIONS_SQL)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn import_packs(&self, rows: &[NewPack]) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let mut problems = Vec::new();
        for r in rows {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM accounts WHERE account_id = ?")
                .bind(&r.account_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                problems.push(RowError::new(
                    r.line,
                    "account_id",
                    format!("unknown account '{}'", r.account_id),
                ));
                continue;
            }
            let done = sqlx::query(
                "INSERT INTO packs (pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at)
                 VALUES (?, 'prepaid', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&r.pack_id)
            .bind(&r.account_id)
            .bind(&r.api)
            .bind(r.calls)
            .bind(r.calls)
            .bind(us(r.valid_from))
            .bind(us(r.valid_until))
            .bind(us(r.purchased_at))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                problems.push(RowError::new(
                    r.line,
                    "pack_id",
                    format!("pack '{}' already exists", r.pack_id),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(StoreError::rejected(problems));
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn packs(&self) -> StoreResult<Vec<PackView>> {
        let rows = sqlx::query(PACKS_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(pack_view).collect::<anyhow::Result<_>>()?)
    }

    async fn record_pack_alerts(&self, alerts: &[(String, PackAlert)], now: DateTime<Utc>) -> StoreResult<u64> {
        // The rows as one JSON array of arrays, read with json_each: one statement in all.
        let rows: Vec<serde_json::Value> = alerts
            .iter()
            .map(|(account, a)| serde_json::json!([account, a.pack_id, a.api, a.threshold.as_str(), a.calls, a.left]))
            .collect();
        let rows = serde_json::to_string(&rows).map_err(anyhow::Error::from)?;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let ids: Vec<i64> = sqlx::query_scalar(&pack_alerts_sql(
            "(SELECT j.value ->> 0 AS account, j.value ->> 1 AS pack_id, j.value ->> 2 AS api,
                     j.value ->> 3 AS threshold, j.value ->> 4 AS calls, j.value ->> 5 AS left_
              FROM json_each($2) j) AS u",
        ))
        .bind(us(now))
        .bind(rows)
        .fetch_all(&mut *tx)
        .await?;
        webhooks::queue_events(&mut tx, &ids, now).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn pack_alerts_checked(&self) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(PACK_ALERTS_CHECKED_SQL)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_pack_alerts_checked(&self, through: &str) -> StoreResult<()> {
        sqlx::query(PACK_ALERTS_CHECKED_UPSERT_SQL)
            .bind(through)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn holdings(&self, grant: &FreeGrant, accounts: &[String]) -> StoreResult<HashMap<String, Holding>> {
        const IDS: &str = "account_id IN (SELECT value FROM json_each($1))";
        let ids = serde_json::to_string(accounts).map_err(anyhow::Error::from)?;
        let month = grant.month.to_string();
        let mut tx = self.pool.begin().await?;
        let opened = sqlx::query(&format!("SELECT account_id, activated_at FROM accounts WHERE {IDS}"))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        let packs = sqlx::query(&holding_packs_sql(IDS))
            .bind(&ids)
            .bind(&month)
            .bind(us(grant.start))
            .bind(us(grant.end))
            .fetch_all(&mut *tx)
            .await?;
        let usage = sqlx::query(&holding_usage_sql(IDS))
            .bind(&ids)
            .bind(&month)
            .fetch_all(&mut *tx)
            .await?;
        let alerts = sqlx::query(&holding_alerts_sql(IDS))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        Ok(crate::store::decode::holdings(&opened, &packs, &usage, &alerts)?)
    }

    async fn grant_free_packs(&self, g: &FreeGrant, _now: DateTime<Utc>) -> StoreResult<(u64, FreeGrant)> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let granted = grant(&mut tx, g, None).await?;
        tx.commit().await?;
        Ok(granted)
    }

    async fn month_usage(&self, month: Month, zone: Tz, shard: Shard) -> StoreResult<UsageStream> {
        Ok(settle::month_usage(self.file()?, month, zone, shard)?)
    }

    /// On threads of their own, pipelined: see `store::sqlite::settle`.
    async fn settle_pages(
        &self,
        page: &SettlePage,
        usage: UsageStream,
        page_size: usize,
        done: &mut dyn FnMut(PageDone),
    ) -> StoreResult<()> {
        Ok(settle::settle_pages(self.file()?, page, usage, page_size, done).await?)
    }

    async fn mark_settled(&self, d: &Settled<'_>) -> StoreResult<MarkSettled> {
        let m = d.month.to_string();
        let mut conn = self.pool.acquire().await?;
        // The write lock keeps imports out until the record is committed.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let arrived: bool = sqlx::query_scalar(USAGE_ARRIVED_SQL)
            .bind(d.through_import)
            .bind(us(d.period.start))
            .bind(us(d.period.end))
            .fetch_one(&mut *tx)
            .await?;
        if arrived {
            return Ok(MarkSettled::UsageArrived);
        }
        sqlx::query(
            "INSERT INTO settled_shards (month, shard_count, shard_index, settled_at, through_import) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT DO UPDATE SET through_import = MAX(through_import, excluded.through_import)",
        )
        .bind(&m)
        .bind(d.shard.count())
        .bind(d.shard.index())
        .bind(us(d.now))
        .bind(d.through_import)
        .execute(&mut *tx)
        .await?;
        let (done, through): (i64, i64) = sqlx::query_as(SHARDS_DONE_SQL)
            .bind(&m)
            .bind(d.shard.count())
            .fetch_one(&mut *tx)
            .await?;
        let complete = done == i64::from(d.shard.count());
        if complete {
            sqlx::query(
                "INSERT INTO settled_months (month, period_start, period_end, catalog_version, settled_at, through_import, tz)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT DO UPDATE SET through_import = MAX(through_import, excluded.through_import),
                   tz = COALESCE(tz, excluded.tz)",
            )
            .bind(&m)
            .bind(us(d.period.start))
            .bind(us(d.period.end))
            .bind(d.version)
            .bind(us(d.now))
            .bind(through)
            .bind(&d.period.tz)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(MarkSettled::Done {
            month_complete: complete,
        })
    }

    async fn month_totals(&self, month: Month) -> StoreResult<MonthTotals> {
        let row = sqlx::query(MONTH_TOTALS_SQL)
            .bind(month.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(month_totals(&row)?)
    }

    async fn enforce(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let candidates = sqlx::query(&format!(
            "SELECT account_id, balance_fen, suspend_at, suspended FROM accounts WHERE {DUE_FOR_SUSPENSION}
             ORDER BY account_id"
        ))
        .bind(us(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut suspended = Vec::new();
        let mut events = Vec::new();
        for row in candidates {
            let state = service_state(&row)?;
            if !arrears::due_for_suspension(state, now) {
                continue;
            }
            let id: String = row.try_get("account_id")?;
            sqlx::query("UPDATE accounts SET suspended = 1 WHERE account_id = ? AND suspended = 0")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let event: i64 = sqlx::query_scalar(
                "INSERT INTO events (account_id, kind, at, suspend_at, balance_fen) VALUES (?, 'suspended', ?, ?, ?)
                 RETURNING event_id",
            )
            .bind(&id)
            .bind(us(now))
            .bind(state.suspend_at.map(us))
            .bind(state.balance_fen)
            .fetch_one(&mut *tx)
            .await?;
            events.push(event);
            suspended.push(id);
        }
        webhooks::queue_events(&mut tx, &events, now).await?;
        tx.commit().await?;
        Ok(suspended)
    }

    async fn export_lines(
        &self,
        month: Option<Month>,
        account: Option<&str>,
        each: &mut dyn FnMut(ExportLine) -> anyhow::Result<()>,
    ) -> StoreResult<()> {
        let mut rows = sqlx::query(EXPORT_LINES_SQL)
            .bind(month.map(|m| m.to_string()))
            .bind(account)
            .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            each(export_line(&r)?)?;
        }
        Ok(())
    }

    async fn line_amounts(
        &self,
        month: Option<Month>,
        each: &mut dyn FnMut(LineAmount) -> anyhow::Result<()>,
    ) -> StoreResult<()> {
        let mut rows = sqlx::query(LINE_AMOUNTS_SQL)
            .bind(month.map(|m| m.to_string()))
            .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            each(line_amount(&r)?)?;
        }
        Ok(())
    }

    async fn events(&self) -> StoreResult<Vec<EventView>> {
        let rows = sqlx::query(EVENTS_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(event_view).collect::<anyhow::Result<_>>()?)
    }

    async fn is_settled(&self, month: Month) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM settled_months WHERE month = ?")
            .bind(month.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn next_suspension(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let at_us: Option<i64> = sqlx::query_scalar(NEXT_SUSPENSION_SQL).fetch_one(&self.pool).await?;
        Ok(opt_at(at_us))
    }

    async fn run_started(&self, command: &str, month: Option<Month>, when: DateTime<Utc>) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(RUN_STARTED_SQL)
            .bind(command)
            .bind(month.map(|m| m.to_string()))
            .bind(us(when))
            .fetch_one(&self.pool)
            .await?)
    }

    /// On a connection of its own, after closing the pool's idle connections. A run stopped by
    /// a signal drops its job wherever it stands; if that was after sqlx had sent a `BEGIN
    /// IMMEDIATE` but before its answer, the pooled connection stays inside that transaction
    /// with nothing left to roll it back, and an update run on it would join it and never be
    /// committed (seen twice in CI: a stopped run left `running`). Closing a connection rolls
    /// its transaction back; the pool opens new ones when next asked.
    async fn run_ended(&self, run_id: i64, end: &RunEnd) -> StoreResult<()> {
        for _ in 0..self.pool.num_idle() {
            if let Some(idle) = self.pool.try_acquire() {
                let _ = idle.detach().close().await;
            }
        }
        let mut conn = SqliteConnection::connect_with(&self.options).await?;
        sqlx::query(
            "UPDATE runs SET ended_at = ?, outcome = ?, month = COALESCE(?, month), accounts_billed = ?, billed_fen = ?,
               suspended = ?, message = ? WHERE run_id = ?",
        )
        .bind(us(end.ended_at))
        .bind(end.outcome.as_str())
        .bind(&end.month)
        .bind(end.accounts_billed as i64)
        .bind(end.billed_fen)
        .bind(end.suspended as i64)
        .bind(&end.message)
        .bind(run_id)
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }

    async fn usage_imports(&self, limit: u32) -> StoreResult<Vec<ImportView>> {
        let rows = sqlx::query(USAGE_IMPORTS_SQL)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(import_view).collect::<anyhow::Result<_>>()?)
    }

    async fn stored_imports(&self) -> StoreResult<Vec<StoredImport>> {
        let rows = sqlx::query(STORED_IMPORTS_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(stored_import).collect::<anyhow::Result<_>>()?)
    }

    async fn stored_chunk(&self, import_id: i64, seq: i64) -> StoreResult<Option<StoredChunk>> {
        let row = sqlx::query(STORED_CHUNK_SQL)
            .bind(import_id)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(stored_chunk).transpose()?)
    }

    /// In one `BEGIN IMMEDIATE` transaction. The pages the chunks held are free for what is
    /// written next (the file does not shrink without `VACUUM`).
    async fn archive_import(
        &self,
        import_id: i64,
        archived: &Archived,
        recheck: &(dyn Fn(&ArchiveState) -> Result<(), String> + Send + Sync),
    ) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let imports = sqlx::query(STORED_IMPORTS_SQL).fetch_all(&mut *tx).await?;
        let settled = sqlx::query(SETTLED_WATERMARKS_SQL)
            .bind(Option::<String>::None)
            .fetch_all(&mut *tx)
            .await?;
        let late = sqlx::query(LATE_USAGE_SQL).fetch_all(&mut *tx).await?;
        let zone: Option<String> = sqlx::query_scalar(TOTALS_ZONE_SQL).fetch_optional(&mut *tx).await?;
        recheck(&archive_state(&imports, &settled, &late, zone)?).map_err(|why| archive_refused(import_id, why))?;
        let done = sqlx::query(ARCHIVE_IMPORT_SQL)
            .bind(us(archived.at))
            .bind(&archived.sha256)
            .bind(serde_json::to_string(&archived.calls)?)
            .bind(import_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            sqlx::query(DROP_CHUNKS_SQL).bind(import_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Through `rusqlite`, in one `BEGIN IMMEDIATE` transaction.
    async fn restore_import(
        &self,
        import_id: i64,
        next: &mut (dyn FnMut() -> anyhow::Result<Option<StoredChunk>> + Send),
    ) -> StoreResult<bool> {
        let mut conn = conn::open(&self.file()?, true)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done = tx.execute(RESTORE_IMPORT_SQL, [import_id])? == 1;
        if done {
            tx.execute(DROP_CHUNKS_SQL, [import_id])?;
            while let Some(chunk) = next()? {
                content::keep(&tx, import_id, vec![chunk])?;
            }
        }
        tx.commit()?;
        Ok(done)
    }

    async fn runs(&self, limit: u32) -> StoreResult<Vec<RunView>> {
        let rows = sqlx::query(RUNS_SQL)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(run_view).collect::<anyhow::Result<_>>()?)
    }

    async fn breaches(&self, check: BookCheck, month: Option<Month>) -> StoreResult<Vec<String>> {
        let sql = check.sql("?1");
        Ok(sqlx::query_scalar(&sql)
            .bind(month.map(|m| m.to_string()))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn account(&self, account_id: &str) -> StoreResult<AccountView> {
        let row = sqlx::query(&format!("{ACCOUNT_VIEW_SQL} WHERE account_id = ?"))
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::UnknownAccount(account_id.to_owned()))?;
        Ok(account_view(&row)?)
    }

    async fn health(&self, now: DateTime<Utc>) -> StoreResult<Health> {
        let runs = sqlx::query(LATEST_RUNS_SQL).fetch_all(&self.pool).await?;
        let counts = sqlx::query(STATUS_COUNTS_SQL)
            .bind(us(now))
            .fetch_one(&self.pool)
            .await?;
        let overdue: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM accounts WHERE {DUE_FOR_SUSPENSION}"))
            .bind(us(now))
            .fetch_one(&self.pool)
            .await?;
        let spans = sqlx::query(IMPORT_SPANS_SQL).fetch_all(&self.pool).await?;
        let settled: Vec<String> = sqlx::query_scalar(SETTLED_MONTHS_SQL).fetch_all(&self.pool).await?;
        Ok(Health {
            runs: runs.iter().map(command_runs).collect::<anyhow::Result<_>>()?,
            accounts: status_counts(&counts)?,
            overdue_suspensions: u64::try_from(overdue).unwrap_or(0),
            import_spans: spans.iter().map(import_span).collect::<anyhow::Result<_>>()?,
            settled_months: settled
                .iter()
                .map(|m| m.parse().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?,
            late_usage: self.late_usage().await?,
            webhooks: webhooks::health(&self.pool).await?,
        })
    }

    async fn arrears_bills(&self, month: Month) -> StoreResult<Vec<ArrearsBill>> {
        let rows = sqlx::query(ARREARS_BILLS_SQL)
            .bind(month.to_string())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(arrears_bill).collect::<anyhow::Result<_>>()?)
    }

    async fn register_endpoints(&self, endpoints: &[EndpointRecord], now: DateTime<Utc>) -> StoreResult<()> {
        webhooks::register(&self.pool, endpoints, now).await
    }

    async fn claim_deliveries(
        &self,
        endpoints: &[String],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        webhooks::claim(&self.pool, endpoints, now, lease_until, limit).await
    }

    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> StoreResult<()> {
        webhooks::record(&self.pool, attempts).await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliveryView>> {
        webhooks::list(&self.pool, filter).await
    }

    async fn replay(&self, endpoint: &str, which: &Replay, now: DateTime<Utc>) -> StoreResult<Option<u64>> {
        webhooks::replay(&self.pool, endpoint, which, now).await
    }

    async fn enable_endpoint(&self, endpoint: &str) -> StoreResult<bool> {
        webhooks::enable(&self.pool, endpoint).await
    }

    async fn remove_endpoint(&self, endpoint: &str) -> StoreResult<Option<u64>> {
        webhooks::remove(&self.pool, endpoint).await
    }

    async fn next_delivery(&self, endpoints: &[String]) -> StoreResult<Option<DateTime<Utc>>> {
        webhooks::next(&self.pool, endpoints).await
    }
}
