//! The production backend: PostgreSQL (and what Citus, CockroachDB or YugabyteDB speak).
//!
//! Built for volume. Usage arrives with `COPY`. A month's usage is totalled in the database by
//! one `GROUP BY` query streamed to the pricing code.
//! Bills, lines, ledger entries, pack updates and events are written a page at a time with
//! `UNNEST` arrays, one transaction per page of accounts, never one row per round trip.
//!
//! Concurrency. Two runs on the same month are kept apart by a session advisory lock, to
//! avoid wasted work. Within a page the accounts are locked `FOR UPDATE` in id order, and the
//! page re-checks which of them are still unbilled. The unique keys on bills and ledger
//! entries stay the real guarantee. Month bounds are bound as instants computed in the billing
//! time zone, so the server's `TimeZone` never matters.

mod advisory;
mod citus;
mod content;
mod copy_binary;
mod decode;
mod retract;
mod totals;
mod webhooks;

use crate::domain::arrears::{self, ServiceState};
use crate::domain::credit::plan_credit;
use crate::domain::packs::PackKind;
use crate::domain::shard::Shard;
use crate::input::replay::SkippedLines;
use crate::input::stored::StoredChunk;
use crate::input::usage::NewUsage;
use crate::store::common::*;
use crate::store::decode::{
    account_view, arrears_bill, billed_calls, command_runs, credit_bill, event_view, export_line, import_span,
    import_view, late_usage, line_amount, month_totals, pack_view, run_view, service_state, settled_month,
    status_counts, stored_chunk, stored_import, stored_line, stored_total, stored_version, used_credit, used_reference,
};
use crate::store::migrations::POSTGRES_MIGRATOR;
use crate::store::page::{self, CurrentBill, PageWrites, StoredLine};
use crate::store::sql::verify::BookCheck;
use crate::store::sql::*;
use crate::store::*;
use advisory::{lock_key, take_turn, LOCK_IMPORTS_SQL};
use anyhow::{anyhow, Context};
use chrono_tz::Tz;
use content::keep_chunks;
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, Row};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

/// The month's usage per account and API, from the month's totals (kept up to date by each
/// import, migrations/postgres/0010), for the accounts whose usage differs from what the
/// current revision of their bill counted (or that have no bill yet). A total of no calls (its
/// import retracted) is read only where the bill has a line for it, which then goes to zero.
const MONTH_USAGE_SQL: &str = "
    WITH u AS (
        SELECT account_id, api, calls FROM usage_totals WHERE month = $1),
    current AS (
        SELECT DISTINCT ON (b.account_id) b.account_id, b.bill_id FROM bills b
        WHERE b.month = $1 ORDER BY b.account_id, b.revision DESC),
    current_lines AS (
        SELECT c.account_id, l.api, l.total_calls FROM current c
        JOIN bill_lines l ON l.account_id = c.account_id AND l.bill_id = c.bill_id),
    changed AS (
        SELECT DISTINCT u.account_id FROM u
        LEFT JOIN current_lines c ON c.account_id = u.account_id AND c.api = u.api
        WHERE (c.total_calls IS NULL AND u.calls > 0) OR c.total_calls <> u.calls)
    SELECT u.account_id, u.api, u.calls, NULL::bigint AS billed FROM u JOIN changed USING (account_id)
    LEFT JOIN current_lines c ON c.account_id = u.account_id AND c.api = u.api
    WHERE u.calls > 0 OR c.total_calls IS NOT NULL
    ORDER BY u.account_id, u.api";

/// How long connecting to the server may take before billrun gives up (exit 5, retry later).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The staging table of an import whose rows may name events: dropped at commit.
const STAGE_USAGE_SQL: &str = "CREATE TEMP TABLE usage_in (
    account_id text NOT NULL, ts timestamptz NOT NULL, api text NOT NULL, calls bigint NOT NULL,
    source_line bigint NOT NULL, event_id text) ON COMMIT DROP";

/// The lines of the staging table whose account has their event already, in `usage_events` or
/// on an earlier line of the file, with their payload and where and with what payload the event
/// came first (`first_import` NULL: on an earlier line of the file). A join, not a correlated
/// subquery: Citus runs it by sending the staging table's rows to the shards of `usage_events`.
const DUPLICATE_EVENTS_SQL: &str = "SELECT x.source_line, x.account_id, x.event_id, x.ts, x.api, x.calls,
        u.import_id AS first_import, COALESCE(u.source_line, x.first_line) AS first_line,
        COALESCE(u.ts, x.first_ts) AS first_ts, COALESCE(u.api, x.first_api) AS first_api,
        COALESCE(u.calls, x.first_calls) AS first_calls
    FROM (SELECT source_line, account_id, event_id, ts, api, calls,
                 row_number() OVER w AS nth, first_value(source_line) OVER w AS first_line,
                 first_value(ts) OVER w AS first_ts, first_value(api) OVER w AS first_api,
                 first_value(calls) OVER w AS first_calls
          FROM usage_in WHERE event_id IS NOT NULL
          WINDOW w AS (PARTITION BY account_id, event_id ORDER BY source_line)) x
    LEFT JOIN usage_events u ON u.account_id = x.account_id AND u.event_id = x.event_id
    WHERE x.nth > 1 OR u.account_id IS NOT NULL";

/// Takes lines $1 out of the staging table; gives the time and calls of each.
const DROP_STAGED_LINES_SQL: &str =
    "DELETE FROM usage_in WHERE source_line = ANY($1) RETURNING account_id, api, ts, calls";

/// Records the events of the staged rows as import $1's.
const UNSTAGE_USAGE_SQL: &str =
    "INSERT INTO usage_events (account_id, event_id, import_id, source_line, ts, api, calls)
    SELECT account_id, event_id, $1, source_line, ts, api, calls FROM usage_in WHERE event_id IS NOT NULL";

/// Rows per bulk insert of accounts or packs.
const BULK_ROWS: usize = 10_000;

/// The certificate and key files a URL names (`sslrootcert`, `sslcert`, `sslkey`) can be read:
/// one that cannot is a configuration to fix (exit 3), said with its name, where the driver
/// would report a bare I/O error when connecting, which reads as a database to retry.
fn check_tls_files(url: &str) -> anyhow::Result<()> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // the driver says what is wrong with the URL
    };
    for (key, path) in parsed.query_pairs() {
        if !["sslrootcert", "sslcert", "sslkey"].contains(&key.as_ref()) || path.is_empty() {
            continue;
        }
        if let Err(e) = std::fs::File::open(path.as_ref()) {
            return Err(crate::error::input_error(format!(
                "the database URL's {key} names {path}, which cannot be read: {e}"
            )));
        }
    }
    Ok(())
}

/// Rows read between two looks for finished chunks of the file's content.
const CHUNK_LOOK: u64 = 4096;

/// Copies the file's good rows into the staging table `usage_in`, tallying them. `COPY` takes
/// the connection until it ends: each time chunks of the file's content are ready (one per 4 MiB
/// read), the COPY ends, the chunks are written, and a new COPY takes the rows after.
async fn stage_rows(
    tx: &mut PgConnection,
    import_id: i64,
    rows: &mut dyn UsageSource,
    tally: &mut ImportTally,
) -> StoreResult<()> {
    let sql = "COPY usage_in (account_id, ts, api, calls, source_line, event_id) FROM STDIN WITH (FORMAT binary)";
    let mut chunks = Vec::new();
    loop {
        let mut copy = tx.copy_in_raw(sql).await.context("starting COPY of usage")?;
        let mut buf = copy_binary::Buffer::new(copy_binary::COPY_BUFFER);
        let mut ended = true;
        while let Some(row) = rows.next() {
            match row {
                Ok(r) if tally.row(&r) => {
                    buf.tuple(6);
                    buf.text(&r.account_id);
                    buf.timestamptz(r.ts);
                    buf.text(&r.api);
                    buf.int8(r.calls);
                    buf.int8(r.line as i64);
                    buf.text_or_null(r.event_id.as_deref());
                    if buf.is_full() {
                        copy.send(buf.take()).await.context("sending usage rows")?;
                        chunks = rows.take_chunks();
                        if !chunks.is_empty() {
                            ended = false;
                            break;
                        }
                    }
                }
                Ok(_) => {}
                Err(errs) => tally.problems(errs),
            }
        }
        copy.send(buf.finish()).await.context("sending usage rows")?;
        copy.finish().await.context("finishing COPY of usage")?;
        keep_chunks(&mut *tx, import_id, std::mem::take(&mut chunks)).await?;
        if ended {
            return Ok(());
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// The database has the `citus` extension: its tables are distributed (see [`citus`]).
    citus: bool,
}

/// A session holding `pg_try_advisory_lock` for a month; closing it releases the lock, even if
/// the process is killed.
pub struct PgMonthLock {
    _session: PgConnection,
}

/// Pages of a settle in their transactions at once. Two: while one page's statements run on
/// the server, the next page is read and priced, and the server's second core has work (see
/// docs/performance.md). Pages hold disjoint accounts, so they never wait on each
/// other's locks.
const PAGES_IN_FLIGHT: usize = 2;

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`).
    pub async fn connect(url: &str) -> anyhow::Result<PgStore> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| crate::error::input_error(format!("'{shown}' is not a usable PostgreSQL URL")))?
            .application_name("billrun")
            .disable_statement_logging();
        check_tls_files(url)?;
        // One connection first: a refused connection, a wrong password or a missing database
        // is then reported as itself, at once, where the pool would retry for its whole
        // acquire timeout and report only that it timed out.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| {
                anyhow::Error::new(sqlx::Error::PoolTimedOut).context(format!(
                    "cannot connect to PostgreSQL at {shown}: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        let mut probe = probe;
        let citus = citus::installed(&mut probe).await?;
        let _ = sqlx::Connection::close(probe).await;
        // One connection streams the month's usage while another writes pages.
        let pool = PgPoolOptions::new()
            // The month's usage stream, two pages in flight, and one to spare.
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            // billrun's statements touch a page of rows each; compiling them (when a stale
            // estimate makes one look costly) took longer than running them. Set per session
            // after connecting, not as a startup option, which a pooler may refuse; a server
            // without the setting just keeps its default.
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if let Err(e) = sqlx::query("SET jit = off").execute(&mut *conn).await {
                        tracing::debug!(error = %e, "could not turn JIT off for this session");
                    }
                    if citus {
                        for sql in citus::SESSION_SQL {
                            sqlx::query(sql).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        Ok(PgStore { pool, options, citus })
    }

    /// The transaction one of `verify`'s checks runs in: read-only, since checking the books
    /// never changes them, and without JIT compilation also where the check runs on Citus'
    /// workers. Each session of billrun's has JIT off already, but a worker's session is
    /// Citus', which takes only a transaction's `SET LOCAL`s along ([`citus::SESSION_SQL`]).
    /// A check's estimated cost there, high over a month's rows, set off compiling it in each
    /// shard's task: 2.5 s of a check that then ran in 0.1 s (10,000 accounts).
    async fn check_transaction(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
        sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        Ok(tx)
    }

    /// Refreshes the planner's statistics after a bulk import, so that the next settle's plans
    /// fit the data; autovacuum would get there, but maybe only after that settle has started.
    /// The import has committed by then: a failure here is only logged.
    async fn analyze(&self, tables: &str) {
        if let Err(e) = sqlx::query(&format!("ANALYZE {tables}")).execute(&self.pool).await {
            tracing::warn!(tables, error = %e, "could not refresh the planner's statistics after the import");
        }
    }
}

/// Migrations whose comments were reworded after they shipped, with the SHA-384 of the text they
/// shipped with: (version, old checksum in hex). Their SQL is unchanged.
const REWORDED_MIGRATIONS: &[(i64, &str)] = &[(
    5,
    "b4800ffea016bab3b2285e7716a890c4b76731f0fef491d52a110cd25ca0957d0d63a25f3de983391f89564f93341448",
)];

/// A database that applied a reworded migration recorded the old text's checksum, which sqlx
/// would take for an edited migration and refuse. Its record is moved to the new text's
/// checksum, and only where it holds exactly the old one: any other difference is still
/// refused.
async fn adopt_reworded_migrations(pool: &PgPool) -> anyhow::Result<()> {
    let recorded: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !recorded {
        return Ok(());
    }
    for &(version, old) in REWORDED_MIGRATIONS {
        let Some(new) = POSTGRES_MIGRATOR.iter().find(|m| m.version == version) else {
            continue;
        };
        let old = (0..old.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&old[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .context("a reworded migration's old checksum")?;
        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND checksum = $3")
            .bind(new.checksum.as_ref())
            .bind(version)
            .bind(old)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Which of `ids` a query of one column, `… WHERE column = ANY($1)`, finds.
async fn present(tx: &mut PgConnection, sql: &str, ids: &[&str]) -> sqlx::Result<HashSet<String>> {
    Ok(sqlx::query_scalar(sql)
        .bind(ids)
        .fetch_all(tx)
        .await?
        .into_iter()
        .collect())
}

/// A stable 64-bit advisory lock key for settling `shard` of `month`.
fn month_key(month: Month, shard: Shard) -> i64 {
    lock_key(&format!("billrun:settle:{month}:{shard}"))
}

/// Records the month's grant (`free_grants`): the free packs of every account opened before
/// the month ended follow from it (migrations/postgres/0021). Returns how many packs it made
/// due: to every account, or only to the accounts in `only`.
async fn grant(tx: &mut PgConnection, g: &FreeGrant, only: Option<&[&str]>) -> anyhow::Result<(u64, FreeGrant)> {
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
        .bind(g.start)
        .bind(g.end)
        .bind(g.apis_json()?)
        .fetch_optional(&mut *tx)
        .await
        .context("granting free packs")?;
    let Some(only) = only else {
        return Ok((g.newly_due(previous, recorded)?, g));
    };
    let opened: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE activated_at < $1 AND account_id = ANY($2)")
            .bind(g.end)
            .bind(only)
            .fetch_one(&mut *tx)
            .await?;
    Ok(((opened * g.apis.len() as i64) as u64, g))
}

impl PgStore {
    /// Bills, debits and flags a page of accounts in one transaction (see
    /// [`Store::settle_pages`]).
    async fn settle_accounts(
        &self,
        page: &SettlePage,
        accounts: &[AccountUsage],
    ) -> anyhow::Result<(PageOutcome, Vec<BillPreview>)> {
        let month = page.month.to_string();
        let ids: Vec<&str> = accounts.iter().map(|a| a.account_id.as_str()).collect();
        let mut tx = self.pool.begin().await?;

        // Lock the page's accounts (in id order, so runs cannot deadlock) before reading their
        // bills: what a concurrent run wrote since the stream read the usage is seen here.
        let mut states: HashMap<String, ServiceState> = HashMap::new();
        let mut opened: HashMap<String, Option<DateTime<Utc>>> = HashMap::new();
        if self.citus {
            sqlx::query(citus::LOCK_ACCOUNTS_SQL)
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .context("locking a page of accounts")?;
        }
        let lock = if self.citus { "" } else { "FOR UPDATE" };
        for r in sqlx::query(&format!(
            "SELECT account_id, balance_fen, suspend_at, suspended, activated_at FROM accounts
             WHERE account_id = ANY($1) ORDER BY account_id {lock}"
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        {
            let account: String = r.try_get("account_id")?;
            opened.insert(account.clone(), r.try_get("activated_at")?);
            states.insert(account, service_state(&r)?);
        }

        let mut current: HashMap<String, CurrentBill> = HashMap::new();
        let mut by_bill: HashMap<String, String> = HashMap::new();
        for r in sqlx::query(
            "SELECT DISTINCT ON (account_id) account_id, bill_id, revision, total_fen, credited_fen FROM bills
             WHERE month = $1 AND account_id = ANY($2) ORDER BY account_id, revision DESC",
        )
        .bind(&month)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .context("loading current bills")?
        {
            let account: String = r.try_get("account_id")?;
            by_bill.insert(r.try_get("bill_id")?, account.clone());
            current.insert(
                account,
                CurrentBill {
                    revision: r.try_get("revision")?,
                    total_fen: r.try_get("total_fen")?,
                    credited_fen: r.try_get("credited_fen")?,
                    ..CurrentBill::default()
                },
            );
        }
        if !by_bill.is_empty() {
            let bill_ids: Vec<&String> = by_bill.keys().collect();
            for r in sqlx::query(
                "SELECT bill_id, api, total_calls, free_calls, prepaid_calls, billable_calls, unit_price, amount
                 FROM bill_lines WHERE account_id = ANY($1) AND bill_id = ANY($2) ORDER BY bill_id, api",
            )
            .bind(&ids)
            .bind(&bill_ids)
            .fetch_all(&mut *tx)
            .await?
            {
                let bill = current
                    .get_mut(&by_bill[&r.try_get::<String, _>("bill_id")?])
                    .expect("loaded bill");
                bill.lines.push(StoredLine {
                    api: r.try_get("api")?,
                    total_calls: r.try_get("total_calls")?,
                    free_calls: r.try_get("free_calls")?,
                    prepaid_calls: r.try_get("prepaid_calls")?,
                    billable_calls: r.try_get("billable_calls")?,
                    unit_price: r.try_get("unit_price")?,
                    amount: r.try_get("amount")?,
                });
            }
            for r in sqlx::query(
                "SELECT bill_id, pack_id, calls FROM pack_consumption WHERE account_id = ANY($1) AND bill_id = ANY($2)",
            )
            .bind(&ids)
            .bind(&bill_ids)
            .fetch_all(&mut *tx)
            .await?
            {
                let bill = current
                    .get_mut(&by_bill[&r.try_get::<String, _>("bill_id")?])
                    .expect("loaded bill");
                bill.consumed.push((r.try_get("pack_id")?, r.try_get("calls")?));
            }
        }

        let packs = page_packs(&mut tx, self.citus, page, &ids).await?;
        let (w, out) = page::build(page, accounts, &current, &states, &opened, packs)?;
        if out.bills > 0 {
            write_page(&mut tx, page, &month, &w).await?;
        }
        if page.dry_run {
            tx.rollback().await?;
            return Ok((out, page::previews(&w)));
        }
        tx.commit().await.context("committing a page of bills")?;
        Ok((out, Vec::new()))
    }
}

impl Store for PgStore {
    type MonthLock = PgMonthLock;

    async fn migrate(&self) -> StoreResult<()> {
        adopt_reworded_migrations(&self.pool).await?;
        POSTGRES_MIGRATOR
            .run(&self.pool)
            .await
            .context("applying PostgreSQL migrations")?;
        if self.citus {
            citus::distribute(&self.pool).await?;
        }
        content::rebuild_content(&self.pool).await?;
        Ok(())
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let applied = match sqlx::query_scalar(APPLIED_MIGRATIONS_SQL).fetch_all(&self.pool).await {
            Ok(v) => Some(v),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => None,
            Err(e) => return Err(e.into()),
        };
        match crate::store::common::schema_problem(applied, &POSTGRES_MIGRATOR) {
            Some(problem) => Err(crate::error::input_error(problem).into()),
            None => Ok(()),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn lock_month(&self, month: Month, shard: Shard) -> StoreResult<Option<PgMonthLock>> {
        let mut session = self.options.connect().await.context("opening the lock session")?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(month_key(month, shard))
            .fetch_one(&mut session)
            .await?;
        Ok(got.then_some(PgMonthLock { _session: session }))
    }

    async fn import_accounts(&self, rows: &[NewAccount], g: &FreeGrant, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let mut problems = Vec::new();
        for chunk in rows.chunks(BULK_ROWS) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.account_id.as_str()).collect();
            let names: Vec<&str> = chunk.iter().map(|r| r.name.as_str()).collect();
            let activated: Vec<Option<DateTime<Utc>>> = chunk.iter().map(|r| r.activated_at).collect();
            let balances: Vec<i64> = chunk.iter().map(|r| r.balance_fen).collect();
            let inserted: HashSet<String> = sqlx::query_scalar(
                "INSERT INTO accounts (account_id, name, activated_at, balance_fen)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::bigint[])
                 ON CONFLICT DO NOTHING RETURNING account_id",
            )
            .bind(&ids)
            .bind(&names)
            .bind(&activated)
            .bind(&balances)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            for r in chunk.iter().filter(|r| !inserted.contains(&r.account_id)) {
                problems.push(RowError::new(
                    r.line,
                    "account_id",
                    format!("account '{}' already exists", r.account_id),
                ));
            }
            sqlx::query(
                "INSERT INTO ledger (account_id, kind, amount_fen, created_at)
                 SELECT id, 'opening', fen, $3 FROM UNNEST($1::text[], $2::bigint[]) AS u(id, fen) WHERE fen <> 0",
            )
            .bind(&ids)
            .bind(&balances)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if !problems.is_empty() {
            return Err(StoreError::rejected(problems));
        }
        grant(&mut tx, g, None).await?;
        tx.commit().await?;
        self.analyze("accounts, packs, ledger").await;
        Ok(rows.len() as u64)
    }

    async fn activate(&self, account_id: &str, when: DateTime<Utc>, g: &FreeGrant) -> StoreResult<ActivateOutcome> {
        let mut tx = self.pool.begin().await?;
        let current: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT activated_at FROM accounts WHERE account_id = $1 FOR UPDATE")
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            None => Err(StoreError::UnknownAccount(account_id.to_owned())),
            Some(Some(since)) => Ok(ActivateOutcome::AlreadyActive { since }),
            Some(None) => {
                sqlx::query("UPDATE accounts SET activated_at = $1 WHERE account_id = $2")
                    .bind(when)
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?;
                let (packs_granted, _) = grant(&mut tx, g, Some(&[account_id])).await?;
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
        let mut tx = self.pool.begin().await?;
        let state = locked_service_state(&mut tx, account_id).await?;
        // The reference first, as on every backend: a payment retried is "already applied"
        // whatever its amount would do now. References are unique across accounts, which the
        // key (per account, so that it holds on a database distributed by account) does not
        // say: recharges with the same reference take turns, and each looks for it under every
        // account, in a snapshot taken after the turn came. An entry inserted here for a credit
        // that then overflows is rolled back with the transaction.
        // The key (account_id, reference) stays the database's own guarantee.
        if let Some(reference) = reference {
            take_turn(&mut tx, &format!("billrun:recharge:{reference}")).await?;
            if let Some(r) = sqlx::query(USED_REFERENCE_SQL)
                .bind(reference)
                .fetch_optional(&mut *tx)
                .await?
            {
                return Ok(RechargeOutcome::ReferenceUsed(used_reference(&r)?));
            }
        }
        sqlx::query(RECHARGE_ENTRY_SQL)
            .bind(account_id)
            .bind(amount_fen)
            .bind(reference)
            .bind(when)
            .execute(&mut *tx)
            .await?;
        let Some(after) = arrears::recharge(state, amount_fen) else {
            return Ok(RechargeOutcome::Overflow {
                balance_fen: state.balance_fen,
            });
        };
        write_service(&mut tx, account_id, &after.state, after.restored, when).await?;
        tx.commit().await?;
        Ok(RechargeOutcome::Credited {
            balance_fen: after.state.balance_fen,
            restored: after.restored,
        })
    }

    async fn credit(&self, req: &CreditRequest, when: DateTime<Utc>) -> StoreResult<CreditOutcome> {
        let account_id = req.account_id.as_str();
        let mut tx = self.pool.begin().await?;
        let state = locked_service_state(&mut tx, account_id).await?;
        // References are unique across accounts, which the key (per account, so that it holds
        // on a database distributed by account) does not say: credits with the same reference
        // take turns, and each looks for it under every account, as recharges do.
        take_turn(&mut tx, &format!("billrun:credit:{}", req.reference)).await?;
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
            .bind(when)
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
            .bind(when)
            .execute(&mut *tx)
            .await?;
        write_service(&mut tx, account_id, &plan.after, plan.restored, when).await?;
        webhooks::queue_page(
            &mut tx,
            std::slice::from_ref(&issued.bill_id),
            &[account_id.to_owned()],
            &[],
            when,
        )
        .await?;
        tx.commit().await?;
        Ok(CreditOutcome::Credited(issued))
    }

    async fn import_usage(
        &self,
        file_name: &str,
        rows: &mut dyn UsageSource,
        now: DateTime<Utc>,
        zone: Tz,
        replaces: Option<&Retraction>,
    ) -> StoreResult<UsageImported> {
        let mut tx = self.pool.begin().await?;
        // Imports run one at a time: two copies of one file started at once cannot both pass
        // the duplicate check below, and import ids are committed in the order they are
        // handed out, which settlements' watermarks rely on.
        sqlx::query(LOCK_IMPORTS_SQL).execute(&mut *tx).await?;
        if totals::ensure_zone(&mut tx, zone).await? {
            tracing::warn!(
                zone = zone.name(),
                "usage totals built from the imports' kept usage for this billing zone"
            );
        }
        // The import this file replaces is taken back first, in this transaction: its rows no
        // longer count, its events may come again, and its fingerprints refuse nothing.
        let replaced = match replaces {
            Some(r) => match retract::retract(&mut tx, r, now).await? {
                RetractOutcome::AlreadyRetracted(before) => return Err(replaced_before(&before)),
                RetractOutcome::Retracted(replaced) => Some(replaced),
            },
            None => None,
        };
        // The fingerprints are known once the file is read; a placeholder holds the unique key
        // until then.
        let import_id: i64 = sqlx::query_scalar(NEW_IMPORT_SQL)
            .bind(file_name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let settled: Vec<(String, DateTime<Utc>, DateTime<Utc>)> =
            sqlx::query_as(SETTLED_PERIODS_SQL).fetch_all(&mut *tx).await?;
        let mut tally = ImportTally::new(settled);
        // No row is written per usage line: the file's content is kept as it is read, and its
        // sums are added to the month's totals. A file whose rows may name events is copied
        // into a staging table, where the events its accounts already have are found; its
        // events are then recorded, one row each, so that an event is billed once.
        let staged = rows.may_have_event_ids();
        if staged {
            sqlx::query(STAGE_USAGE_SQL).execute(&mut *tx).await?;
            stage_rows(&mut tx, import_id, rows, &mut tally).await?;
        } else {
            let mut read: u64 = 0;
            while let Some(row) = rows.next() {
                match row {
                    Ok(r) => {
                        tally.row(&r);
                    }
                    Err(errs) => tally.problems(errs),
                }
                read += 1;
                if read % CHUNK_LOOK == 0 {
                    let chunks = rows.take_chunks();
                    keep_chunks(&mut tx, import_id, chunks).await?;
                }
            }
        }
        // The month's totals are added from the reader's sums, less the rows skipped as events
        // an account had already (found among the staged rows).
        let mut sums = rows.totals();
        // The lines skipped as events an account had already, recorded with the import.
        let duplicates = if staged && !tally.is_bad() {
            skip_duplicate_events(&mut tx, &mut tally, sums.as_mut()).await?
        } else {
            Vec::new()
        };
        let skipped = SkippedLines::of(duplicates.iter().map(|&l| l as u64));
        if let Some(sums) = &sums {
            sums.check_zone(zone)?;
        }
        let summed = sums.is_some();
        // With the file's sums staged, they say which accounts are refused (one row per account
        // and API): an account that does not exist, or (unless the import accepts them) one not
        // open yet in the month of its usage. Only then are the lines naming one looked for,
        // reading the file's kept content back.
        if let Some(sums) = sums {
            totals::stage(&mut tx, sums).await?;
            let accounts = totals::staged_refused_accounts(&mut tx, zone, rows.accepts_unopened()).await?;
            if !accounts.unknown.is_empty() || !accounts.unopened.is_empty() {
                keep_chunks(&mut tx, import_id, rows.take_chunks()).await?;
                if let Some(content) = rows.content() {
                    let import = CountedImport {
                        import_id,
                        chunks: content.chunks,
                        reading: content.reading,
                        skipped: skipped.clone(),
                    };
                    let found =
                        content::read_import(&mut tx, &import, move |rows| Ok(RefusedLines::find(rows, accounts)))
                            .await?
                            .map_err(|problem| import.unreadable(problem))?;
                    found.report(&mut tally);
                }
            }
        }
        if staged && !tally.is_bad() {
            sqlx::query(UNSTAGE_USAGE_SQL).bind(import_id).execute(&mut *tx).await?;
        }
        if let Some(rejected) = tally.rejection() {
            return Err(rejected);
        }
        // A re-send of events imported before: nothing is recorded (the transaction is rolled
        // back).
        if let Some(nothing_new) = tally.nothing_new(replaced.as_ref()) {
            return nothing_new;
        }
        let (Some(fingerprint), Some(content)) = (rows.fingerprint(), rows.content()) else {
            return Err(anyhow!("the usage file was not read to its end").into());
        };
        keep_chunks(&mut tx, import_id, rows.take_chunks()).await?;
        content::record(&mut tx, import_id, &content, skipped.encode()).await?;
        if let Some(row) = sqlx::query(SAME_IMPORT_SQL)
            .bind(&fingerprint.sha256)
            .bind(&fingerprint.rows)
            .bind(import_id)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Err(StoreError::AlreadyImported {
                import_id: row.try_get("import_id")?,
                file_name: row.try_get("file_name")?,
                imported_at: row.try_get("imported_at")?,
            });
        }
        // Rows without an event id that repeat rows of earlier imports: refused past a share.
        if let (Some(hashes), Some(from), Some(to)) = (rows.row_hashes(), tally.first, tally.last) {
            if hashes.rows() > 0 {
                if !rows.accepts_repeats() {
                    let mut earlier = Vec::new();
                    for r in sqlx::query(EARLIER_SKETCHES_SQL)
                        .bind(import_id)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&mut *tx)
                        .await?
                    {
                        earlier.push(EarlierImport {
                            import_id: r.try_get("import_id")?,
                            file_name: r.try_get("file_name")?,
                            imported_at: r.try_get("imported_at")?,
                            sketch: crate::store::repeats::Sketch {
                                full: r.try_get("whole")?,
                                rows: r.try_get::<i64, _>("rows")? as u64,
                                bits: r.try_get("bits")?,
                            },
                        });
                    }
                    if let Some(problem) = repeated_rows(&hashes, &earlier) {
                        return Err(StoreError::Rejected {
                            problems: vec![problem],
                            total: 1,
                        });
                    }
                }
                let sketch = hashes.sketch();
                sqlx::query(ADD_SKETCH_SQL)
                    .bind(import_id)
                    .bind(sketch.full)
                    .bind(sketch.rows as i64)
                    .bind(sketch.bits)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if summed {
            totals::add_staged(&mut tx).await?;
        }
        sqlx::query(FINISH_IMPORT_SQL)
            .bind(&fingerprint.sha256)
            .bind(&fingerprint.rows)
            .bind(tally.rows as i64)
            .bind(tally.calls)
            .bind(tally.first)
            .bind(tally.last)
            .bind(tally.duplicates as i64)
            .bind(import_id)
            .execute(&mut *tx)
            .await?;
        if let Some(replaced) = &replaced {
            sqlx::query(REPLACED_BY_SQL)
                .bind(import_id)
                .bind(replaced.import_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.analyze("usage_events").await;
        self.analyze("usage_totals").await;
        Ok(UsageImported {
            import_id: Some(import_id),
            rows: tally.rows,
            calls: tally.calls,
            late: tally.late(),
            duplicates: tally.duplicates,
            replaced,
        })
    }

    async fn retract_import(&self, retraction: &Retraction, now: DateTime<Utc>) -> StoreResult<RetractOutcome> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_IMPORTS_SQL).execute(&mut *tx).await?;
        let outcome = retract::retract(&mut tx, retraction, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn ensure_usage_totals(&self, zone: Tz) -> StoreResult<bool> {
        // Most of the time they are of this zone already: known without the lock.
        if totals::zone(&mut *self.pool.acquire().await?).await? == Some(zone) {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_IMPORTS_SQL).execute(&mut *tx).await?;
        let built = totals::ensure_zone(&mut tx, zone).await?;
        tx.commit().await?;
        if built {
            self.analyze("usage_totals").await;
        }
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
        Ok(totals::zone(&mut *self.pool.acquire().await?).await?)
    }

    async fn import_watermark(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(import_id), 0)::bigint FROM usage_imports")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn late_usage(&self) -> StoreResult<Vec<LateUsage>> {
        let rows = sqlx::query(LATE_USAGE_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(late_usage).collect::<anyhow::Result<_>>()?)
    }

    async fn billed_period(&self, month: Month) -> StoreResult<Option<BilledPeriod>> {
        let row = sqlx::query(
            "SELECT period_start, period_end, tz FROM settled_months WHERE month = $1
             UNION ALL
             SELECT * FROM (SELECT period_start, period_end, NULL::text FROM bills WHERE month = $1 LIMIT 1) b
             LIMIT 1",
        )
        .bind(month.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(BilledPeriod {
                start: r.try_get("period_start")?,
                end: r.try_get("period_end")?,
                tz: r.try_get("tz")?,
            })
        })
        .transpose()
    }

    async fn currency(&self) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(CURRENCY_SQL).fetch_optional(&self.pool).await?)
    }

    async fn adopt_currency(&self, currency: &str) -> StoreResult<String> {
        sqlx::query(ADOPT_CURRENCY_SQL)
            .bind(currency)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(CURRENCY_SQL).fetch_one(&self.pool).await?)
    }

    async fn catalog_versions(&self) -> StoreResult<Vec<StoredVersion>> {
        let rows = sqlx::query(CATALOG_VERSIONS_SQL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(stored_version).collect::<anyhow::Result<_>>()?)
    }

    async fn add_catalog_versions(&self, versions: &[StoredVersion]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for v in versions {
            sqlx::query(ADD_CATALOG_VERSION_SQL)
                .bind(&v.version)
                .bind(&v.effective_from)
                .bind(&v.currency)
                .bind(&v.definition)
                .bind(&v.source)
                .bind(v.imported_at)
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
        let mut tx = self.pool.begin().await?;
        // Pack ids are unique across accounts, which the key (per account, so that it holds on
        // a database distributed by account) does not say: imports take turns, and each looks
        // for its ids under every account.
        take_turn(&mut tx, "billrun:import-packs").await?;
        let mut problems = Vec::new();
        for chunk in rows.chunks(BULK_ROWS) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.pack_id.as_str()).collect();
            let taken = present(&mut tx, "SELECT pack_id FROM packs WHERE pack_id = ANY($1)", &ids).await?;
            let (chunk, exists): (Vec<&NewPack>, Vec<&NewPack>) =
                chunk.iter().partition(|r| !taken.contains(&r.pack_id));
            for r in exists {
                problems.push(RowError::new(
                    r.line,
                    "pack_id",
                    format!("pack '{}' already exists", r.pack_id),
                ));
            }
            let owners: Vec<&str> = chunk.iter().map(|r| r.account_id.as_str()).collect();
            let known = present(
                &mut tx,
                "SELECT account_id FROM accounts WHERE account_id = ANY($1)",
                &owners,
            )
            .await?;
            let (good, unknown): (Vec<&NewPack>, Vec<&NewPack>) =
                chunk.into_iter().partition(|r| known.contains(&r.account_id));
            for r in unknown {
                problems.push(RowError::new(
                    r.line,
                    "account_id",
                    format!("unknown account '{}'", r.account_id),
                ));
            }
            let inserted: HashSet<String> = sqlx::query_scalar(
                "INSERT INTO packs (pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at)
                 SELECT id, 'prepaid', acct, api, calls, calls, vf, vu, pa
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[],
                             $7::timestamptz[]) AS u(id, acct, api, calls, vf, vu, pa)
                 ON CONFLICT DO NOTHING RETURNING pack_id",
            )
            .bind(good.iter().map(|r| r.pack_id.as_str()).collect::<Vec<_>>())
            .bind(good.iter().map(|r| r.account_id.as_str()).collect::<Vec<_>>())
            .bind(good.iter().map(|r| r.api.as_str()).collect::<Vec<_>>())
            .bind(good.iter().map(|r| r.calls).collect::<Vec<_>>())
            .bind(good.iter().map(|r| r.valid_from).collect::<Vec<_>>())
            .bind(good.iter().map(|r| r.valid_until).collect::<Vec<_>>())
            .bind(good.iter().map(|r| r.purchased_at).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            for r in good.iter().filter(|r| !inserted.contains(&r.pack_id)) {
                problems.push(RowError::new(
                    r.line,
                    "pack_id",
                    format!("pack '{}' already exists", r.pack_id),
                ));
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line);
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
        // The rows as one array per column, UNNESTed: one statement in all.
        let accounts: Vec<&str> = alerts.iter().map(|(account, _)| account.as_str()).collect();
        let packs: Vec<&str> = alerts.iter().map(|(_, a)| a.pack_id.as_str()).collect();
        let apis: Vec<&str> = alerts.iter().map(|(_, a)| a.api.as_str()).collect();
        let thresholds: Vec<&str> = alerts.iter().map(|(_, a)| a.threshold.as_str()).collect();
        let calls: Vec<i64> = alerts.iter().map(|(_, a)| a.calls).collect();
        let left: Vec<i64> = alerts.iter().map(|(_, a)| a.left).collect();
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(&pack_alerts_sql(
            "UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
                 AS u(account, pack_id, api, threshold, calls, left_)",
        ))
        .bind(now)
        .bind(&accounts)
        .bind(&packs)
        .bind(&apis)
        .bind(&thresholds)
        .bind(&calls)
        .bind(&left)
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
        const IDS: &str = "account_id = ANY($1)";
        let month = grant.month.to_string();
        let mut tx = self.pool.begin().await?;
        let opened = sqlx::query(&format!("SELECT account_id, activated_at FROM accounts WHERE {IDS}"))
            .bind(accounts)
            .fetch_all(&mut *tx)
            .await?;
        let packs = sqlx::query(&holding_packs_sql(IDS))
            .bind(accounts)
            .bind(&month)
            .bind(grant.start)
            .bind(grant.end)
            .fetch_all(&mut *tx)
            .await?;
        let usage = sqlx::query(&holding_usage_sql(IDS))
            .bind(accounts)
            .bind(&month)
            .fetch_all(&mut *tx)
            .await?;
        let alerts = sqlx::query(&holding_alerts_sql(IDS))
            .bind(accounts)
            .fetch_all(&mut *tx)
            .await?;
        Ok(crate::store::decode::holdings(&opened, &packs, &usage, &alerts)?)
    }

    async fn grant_free_packs(&self, g: &FreeGrant, _now: DateTime<Utc>) -> StoreResult<(u64, FreeGrant)> {
        let mut tx = self.pool.begin().await?;
        let granted = grant(&mut tx, g, None).await?;
        tx.commit().await?;
        Ok(granted)
    }

    async fn month_usage(&self, month: Month, zone: Tz, shard: Shard) -> StoreResult<UsageStream> {
        let mut conn = self.pool.acquire().await?;
        let (out, stream) = super::usage_channel();
        let month = month.to_string();
        tokio::spawn(async move {
            use sqlx::Connection;
            let failed = |e: sqlx::Error| anyhow::Error::new(e).context("reading the month's usage");
            let mut tx = match conn.begin().await {
                Ok(tx) => tx,
                Err(e) => return out.finish(Some(failed(e))).await,
            };
            // One snapshot for the zone the totals are kept for and the totals themselves.
            let set = sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await;
            if let Err(e) = set {
                return out.finish(Some(failed(e))).await;
            }
            match totals::zone(&mut tx).await {
                Ok(kept) if kept == Some(zone) => {}
                Ok(_) => return out.finish(Some(totals_moved(zone))).await,
                Err(e) => return out.finish(Some(failed(e))).await,
            }
            let rows = sqlx::query_as::<_, (String, String, i64, Option<i64>)>(MONTH_USAGE_SQL)
                .bind(&month)
                .fetch(&mut *tx);
            forward_grouped(rows, &month, shard, out).await;
        });
        Ok(stream)
    }

    /// Up to [`PAGES_IN_FLIGHT`] pages in their transactions at once, on separate connections,
    /// while the stream goes on filling the next; results come back in page order.
    async fn settle_pages(
        &self,
        page: &SettlePage,
        usage: UsageStream,
        page_size: usize,
        done: &mut dyn FnMut(PageDone),
    ) -> StoreResult<()> {
        use futures_util::stream::StreamExt;
        let pages = usage
            .chunks(page_size)
            .map(|items| async move {
                let accounts = items.into_iter().collect::<anyhow::Result<Vec<AccountUsage>>>()?;
                let (outcome, previews) = self.settle_accounts(page, &accounts).await?;
                anyhow::Ok(PageDone {
                    last: accounts.last().map(|a| a.account_id.clone()),
                    outcome,
                    previews,
                })
            })
            .buffered(PAGES_IN_FLIGHT);
        futures_util::pin_mut!(pages);
        while let Some(page) = pages.next().await {
            done(page?);
        }
        Ok(())
    }

    async fn mark_settled(&self, d: &Settled<'_>) -> StoreResult<MarkSettled> {
        let m = d.month.to_string();
        let mut tx = self.pool.begin().await?;
        // SHARE waits for an import under way (it holds SHARE ROW EXCLUSIVE) and keeps new ones
        // out until this record is committed, so the check below sees every import that
        // could reach into the month.
        sqlx::query("LOCK TABLE usage_imports IN SHARE MODE")
            .execute(&mut *tx)
            .await?;
        let arrived: bool = sqlx::query_scalar(USAGE_ARRIVED_SQL)
            .bind(d.through_import)
            .bind(d.period.start)
            .bind(d.period.end)
            .fetch_one(&mut *tx)
            .await?;
        if arrived {
            return Ok(MarkSettled::UsageArrived);
        }
        // Shards finishing at once must not each see the others' rows missing.
        sqlx::query("LOCK TABLE settled_shards IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO settled_shards (month, shard_count, shard_index, settled_at, through_import)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (month, shard_count, shard_index)
             DO UPDATE SET through_import = GREATEST(settled_shards.through_import, excluded.through_import)",
        )
        .bind(&m)
        .bind(d.shard.count() as i32)
        .bind(d.shard.index() as i32)
        .bind(d.now)
        .bind(d.through_import)
        .execute(&mut *tx)
        .await?;
        let (done, through): (i64, i64) = sqlx::query_as(SHARDS_DONE_SQL)
            .bind(&m)
            .bind(d.shard.count() as i32)
            .fetch_one(&mut *tx)
            .await?;
        let complete = done == i64::from(d.shard.count());
        if complete {
            sqlx::query(
                "INSERT INTO settled_months (month, period_start, period_end, catalog_version, settled_at, through_import, tz)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (month) DO UPDATE
                 SET through_import = GREATEST(settled_months.through_import, excluded.through_import),
                     tz = COALESCE(settled_months.tz, excluded.tz)",
            )
            .bind(&m)
            .bind(d.period.start)
            .bind(d.period.end)
            .bind(d.version)
            .bind(d.now)
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
        let mut tx = self.pool.begin().await?;
        // The set-based form of `arrears::due_for_suspension`.
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "WITH due AS (
                UPDATE accounts SET suspended = true WHERE {DUE_FOR_SUSPENSION}
                RETURNING account_id, balance_fen, suspend_at)
             INSERT INTO events (account_id, kind, at, suspend_at, balance_fen)
             SELECT account_id, 'suspended', $1, suspend_at, balance_fen FROM due ORDER BY account_id
             RETURNING account_id, event_id"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let (mut ids, events): (Vec<String>, Vec<i64>) = rows.into_iter().unzip();
        webhooks::queue_events(&mut tx, &events, now).await?;
        tx.commit().await?;
        ids.sort();
        Ok(ids)
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
        let found: Option<i64> = sqlx::query_scalar("SELECT 1::bigint FROM settled_months WHERE month = $1")
            .bind(month.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn next_suspension(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(NEXT_SUSPENSION_SQL).fetch_one(&self.pool).await?)
    }

    async fn run_started(&self, command: &str, month: Option<Month>, when: DateTime<Utc>) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(RUN_STARTED_SQL)
            .bind(command)
            .bind(month.map(|m| m.to_string()))
            .bind(when)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn run_ended(&self, run_id: i64, end: &RunEnd) -> StoreResult<()> {
        sqlx::query(
            "UPDATE runs SET ended_at = $1, outcome = $2, month = COALESCE($3, month), accounts_billed = $4, billed_fen = $5,
               suspended = $6, message = $7 WHERE run_id = $8",
        )
        .bind(end.ended_at)
        .bind(end.outcome.as_str())
        .bind(&end.month)
        .bind(end.accounts_billed as i64)
        .bind(end.billed_fen)
        .bind(end.suspended as i64)
        .bind(&end.message)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
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

    /// Holding `usage_imports` against imports, retractions and totals being rebuilt. An
    /// import's chunks are a few rows (4 MiB of content each), on one shard on Citus.
    async fn archive_import(
        &self,
        import_id: i64,
        archived: &Archived,
        recheck: &(dyn Fn(&ArchiveState) -> Result<(), String> + Send + Sync),
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_IMPORTS_SQL).execute(&mut *tx).await?;
        let imports = sqlx::query(STORED_IMPORTS_SQL).fetch_all(&mut *tx).await?;
        let settled = sqlx::query(SETTLED_WATERMARKS_SQL)
            .bind(Option::<String>::None)
            .fetch_all(&mut *tx)
            .await?;
        let late = sqlx::query(LATE_USAGE_SQL).fetch_all(&mut *tx).await?;
        let zone: Option<String> = sqlx::query_scalar(TOTALS_ZONE_SQL).fetch_optional(&mut *tx).await?;
        recheck(&archive_state(&imports, &settled, &late, zone)?).map_err(|why| archive_refused(import_id, why))?;
        let done = sqlx::query(ARCHIVE_IMPORT_SQL)
            .bind(archived.at)
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

    /// Holding `usage_imports` as `archive_import` does.
    async fn restore_import(
        &self,
        import_id: i64,
        next: &mut (dyn FnMut() -> anyhow::Result<Option<StoredChunk>> + Send),
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_IMPORTS_SQL).execute(&mut *tx).await?;
        let done = sqlx::query(RESTORE_IMPORT_SQL)
            .bind(import_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            sqlx::query(DROP_CHUNKS_SQL).bind(import_id).execute(&mut *tx).await?;
            while let Some(chunk) = next()? {
                keep_chunks(&mut tx, import_id, vec![chunk]).await?;
            }
        }
        tx.commit().await?;
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
        let sql = check.sql("$1::text");
        let mut tx = self.check_transaction().await?;
        let found = sqlx::query_scalar(&sql)
            .bind(month.map(|m| m.to_string()))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn account(&self, account_id: &str) -> StoreResult<AccountView> {
        let row = sqlx::query(&format!("{ACCOUNT_VIEW_SQL} WHERE account_id = $1"))
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::UnknownAccount(account_id.to_owned()))?;
        Ok(account_view(&row)?)
    }

    async fn health(&self, now: DateTime<Utc>) -> StoreResult<Health> {
        let runs = sqlx::query(LATEST_RUNS_SQL).fetch_all(&self.pool).await?;
        let counts = sqlx::query(STATUS_COUNTS_SQL).bind(now).fetch_one(&self.pool).await?;
        let overdue: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM accounts WHERE {DUE_FOR_SUSPENSION}"))
            .bind(now)
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
        webhooks::claim(&self.pool, self.citus, endpoints, now, lease_until, limit).await
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

/// Every pack of the page's accounts that may cover the month, used up or not (a revision being
/// replaced hands its calls back before the new one is computed). Only a page changes a pack,
/// and only while it holds the pack's account locked, so the account locks cover the packs.
async fn page_packs(
    tx: &mut PgConnection,
    citus: bool,
    page: &SettlePage,
    ids: &[&str],
) -> anyhow::Result<HashMap<String, Vec<PackBalance>>> {
    let mut packs: HashMap<String, Vec<PackBalance>> = HashMap::new();
    // Driven by the page's ids, one index probe each: `OFFSET 0` keeps the planner from
    // turning this into a hash join over every pack when its statistics are stale. Citus cannot
    // push that subquery down to the shards; there each shard's part of the page is one
    // probe of the key.
    let usable =
        "((p.kind = 'free' AND p.month = $2) OR (p.kind = 'prepaid' AND p.valid_from < $4 AND p.valid_until > $3))";
    let packs_of = if citus {
        format!("packs p WHERE p.account_id = ANY($1) AND {usable}")
    } else {
        format!(
            "UNNEST($1::text[]) AS i(account_id) CROSS JOIN LATERAL (
                 SELECT * FROM packs p WHERE p.account_id = i.account_id AND {usable} OFFSET 0) p"
        )
    };
    for r in sqlx::query(&format!(
        "SELECT p.pack_id, p.kind, p.account_id, p.api, p.remaining, p.valid_until, p.purchased_at FROM {packs_of}"
    ))
    .bind(ids)
    .bind(page.month.to_string())
    .bind(page.start)
    .bind(page.end)
    .fetch_all(&mut *tx)
    .await
    .context("loading packs")?
    {
        let kind: String = r.try_get("kind")?;
        packs.entry(r.try_get("account_id")?).or_default().push(PackBalance {
            pack_id: r.try_get("pack_id")?,
            kind: if kind == "free" {
                PackKind::Free
            } else {
                PackKind::Prepaid
            },
            api: r.try_get("api")?,
            remaining: r.try_get("remaining")?,
            valid_until: r.try_get("valid_until")?,
            purchased_at: r.try_get("purchased_at")?,
        });
    }
    Ok(packs)
}

/// Writes one page's bills, lines, pack use, ledger entries, balances and events, one
/// statement per table.
/// An account's service state, its row locked until the transaction ends.
async fn locked_service_state(tx: &mut PgConnection, account_id: &str) -> StoreResult<ServiceState> {
    let Some(row) =
        sqlx::query("SELECT balance_fen, suspend_at, suspended FROM accounts WHERE account_id = $1 FOR UPDATE")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Err(StoreError::UnknownAccount(account_id.to_owned()));
    };
    Ok(service_state(&row)?)
}

/// Writes an account's service state after money came in, and records and queues its
/// restoration if it `restored` the service (rule 7).
async fn write_service(
    tx: &mut PgConnection,
    account_id: &str,
    state: &ServiceState,
    restored: bool,
    when: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(ACCOUNT_SERVICE_SQL)
        .bind(state.balance_fen)
        .bind(state.suspend_at)
        .bind(state.suspended)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    if restored {
        let event: i64 = sqlx::query_scalar(RESTORED_EVENT_SQL)
            .bind(account_id)
            .bind(when)
            .bind(state.balance_fen)
            .fetch_one(&mut *tx)
            .await?;
        webhooks::queue_events(tx, &[event], when).await?;
    }
    Ok(())
}

/// Finds the staged rows whose event their account has already (in `usage`, or on an earlier
/// line of the file): one that says what the first said is dropped from the staging table and
/// taken back from the tally and from the file's sums; one that says otherwise is a conflict.
/// Returns the lines dropped.
async fn skip_duplicate_events(
    tx: &mut PgConnection,
    tally: &mut ImportTally,
    mut sums: Option<&mut UsageTotals>,
) -> StoreResult<Vec<i64>> {
    let mut duplicates: Vec<i64> = Vec::new();
    for row in sqlx::query(DUPLICATE_EVENTS_SQL).fetch_all(&mut *tx).await? {
        let again = NewUsage {
            line: row.try_get::<i64, _>("source_line")? as u64,
            account_id: row.try_get("account_id")?,
            api: row.try_get("api")?,
            ts: row.try_get("ts")?,
            calls: row.try_get("calls")?,
            event_id: row.try_get("event_id")?,
        };
        let first = FirstEvent {
            import_id: row.try_get("first_import")?,
            line: row.try_get::<i64, _>("first_line")? as u64,
            ts: row.try_get("first_ts")?,
            api: row.try_get("first_api")?,
            calls: row.try_get("first_calls")?,
        };
        if first.same_as(&again) {
            duplicates.push(again.line as i64);
        } else {
            tally.event_conflict(&again, &first);
        }
    }
    if duplicates.is_empty() || tally.is_bad() {
        return Ok(duplicates);
    }
    let skipped: Vec<(String, String, DateTime<Utc>, i64)> = sqlx::query_as(DROP_STAGED_LINES_SQL)
        .bind(&duplicates)
        .fetch_all(&mut *tx)
        .await?;
    for (account_id, api, ts, calls) in skipped {
        tally.taken_back(ts, calls);
        if let Some(sums) = sums.as_deref_mut() {
            sums.take_back(&NewUsage {
                line: 0,
                account_id,
                api,
                ts,
                calls,
                event_id: None,
            });
        }
    }
    // The time range the tally saw may have lost its ends with the lines dropped.
    (tally.first, tally.last) = sqlx::query_as("SELECT MIN(ts), MAX(ts) FROM usage_in")
        .fetch_one(&mut *tx)
        .await?;
    Ok(duplicates)
}

async fn write_page(tx: &mut PgConnection, page: &SettlePage, month: &str, w: &PageWrites) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO bills (bill_id, account_id, month, revision, kind, period_start, period_end, catalog_version,
                            rounding, exact_total, total_fen, rounding_adjustment, debited_fen, balance_before_fen,
                            balance_after_fen, settled_at, credited_fen)
         SELECT id, acct, $1, rev, kind, $2, $3, ver, rnd, exact, total, adj, debited, bef, aft, $4, credited
         FROM UNNEST($5::text[], $6::text[], $7::int[], $8::text[], $9::text[], $10::text[], $11::numeric[],
                     $12::bigint[], $13::numeric[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[])
              AS u(id, acct, rev, kind, ver, rnd, exact, total, adj, debited, bef, aft, credited)",
    )
    .bind(month)
    .bind(page.start)
    .bind(page.end)
    .bind(page.now)
    .bind(&w.bill_id)
    .bind(&w.bill_account)
    .bind(&w.revision)
    .bind(&w.kind)
    .bind(&w.catalog_version)
    .bind(&w.rounding)
    .bind(&w.exact_total)
    .bind(&w.total_fen)
    .bind(&w.adjustment)
    .bind(&w.debited_fen)
    .bind(&w.before_fen)
    .bind(&w.after_fen)
    .bind(&w.credited_fen)
    .execute(&mut *tx)
    .await
    .context("writing bills")?;
    sqlx::query(
        "INSERT INTO bill_lines (bill_id, api, total_calls, free_calls, prepaid_calls, billable_calls, tier, tier_from,
                                 tier_to, catalog_version, unit_price, amount, pricing, tier_basis, slices, account_id)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                              $7::int[], $8::bigint[], $9::bigint[], $10::text[], $11::numeric[], $12::numeric[],
                              $13::text[], $14::text[], $15::text[], $16::text[])",
    )
    .bind(&w.line_bill)
    .bind(&w.line_api)
    .bind(&w.line_total)
    .bind(&w.line_free)
    .bind(&w.line_prepaid)
    .bind(&w.line_billable)
    .bind(&w.line_tier)
    .bind(&w.line_tier_from)
    .bind(&w.line_tier_to)
    .bind(&w.line_version)
    .bind(&w.line_unit_price)
    .bind(&w.line_amount)
    .bind(&w.line_pricing)
    .bind(&w.line_basis)
    .bind(&w.line_slices)
    .bind(&w.line_account)
    .execute(&mut *tx)
    .await
    .context("writing bill lines")?;
    if !w.use_bill.is_empty() {
        sqlx::query(
            "INSERT INTO pack_consumption (account_id, bill_id, pack_id, calls)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])",
        )
        .bind(&w.use_account)
        .bind(&w.use_bill)
        .bind(&w.use_pack)
        .bind(&w.use_calls)
        .execute(&mut *tx)
        .await
        .context("writing pack consumption")?;
    }
    if !w.pack_id.is_empty() {
        sqlx::query(
            "UPDATE packs p SET remaining = p.remaining + u.delta
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(account_id, pack_id, delta)
             WHERE p.account_id = u.account_id AND p.pack_id = u.pack_id AND p.account_id = ANY($1)",
        )
        .bind(&w.pack_account)
        .bind(&w.pack_id)
        .bind(&w.pack_delta)
        .execute(&mut *tx)
        .await
        .context("updating packs")?;
    }
    let ledger_kind: Vec<&str> = w
        .revision
        .iter()
        .map(|r| if *r == 1 { "debit" } else { "adjustment" })
        .collect();
    let amounts: Vec<i64> = w.debited_fen.iter().map(|d| -d).collect();
    sqlx::query(
        "INSERT INTO ledger (account_id, kind, amount_fen, bill_id, created_at)
         SELECT acct, kind, amount, bill, $1
         FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[]) AS u(acct, kind, amount, bill)",
    )
    .bind(page.now)
    .bind(&w.bill_account)
    .bind(&ledger_kind)
    .bind(&amounts)
    .bind(&w.bill_id)
    .execute(&mut *tx)
    .await
    .context("writing ledger entries")?;
    sqlx::query(
        "UPDATE accounts a SET balance_fen = u.balance, suspend_at = u.suspend_at, suspended = u.suspended
         FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::bool[]) AS u(acct, balance, suspend_at, suspended)
         WHERE a.account_id = u.acct",
    )
    .bind(&w.bill_account)
    .bind(&w.after_fen)
    .bind(&w.suspend_at)
    .bind(&w.suspended)
    .execute(&mut *tx)
    .await
    .context("updating balances")?;
    let mut events = Vec::new();
    if !w.event_account.is_empty() {
        events = sqlx::query_as(
            "INSERT INTO events (account_id, kind, at, bill_id, suspend_at, balance_fen)
             SELECT acct, kind, $1, bill, suspend_at, balance
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
                  WITH ORDINALITY AS u(acct, kind, bill, suspend_at, balance, n)
             ORDER BY n
             RETURNING event_id, account_id, kind",
        )
        .bind(page.now)
        .bind(&w.event_account)
        .bind(&w.event_kind)
        .bind(&w.event_bill)
        .bind(&w.event_suspend_at)
        .bind(&w.event_balance)
        .fetch_all(&mut *tx)
        .await
        .context("writing events")?;
    }
    webhooks::queue_page(tx, &w.bill_id, &w.bill_account, &events, page.now)
        .await
        .context("queueing webhook deliveries")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_values_are_percent_decoded_and_tls_files_checked() {
        assert!(check_tls_files("postgres://u@h/db?sslmode=require").is_ok());
        let err = check_tls_files("postgres://u@h/db?sslmode=verify-ca&sslrootcert=%2Fno%2Fsuch.pem").unwrap_err();
        assert!(err.to_string().contains("sslrootcert names /no/such.pem"), "{err}");
        assert_eq!(crate::error::exit_code(&err), crate::error::EXIT_INPUT);
        let spaced = check_tls_files("postgres://u@h/db?sslkey=%2Fetc%2Fca%20root.pem").unwrap_err();
        assert!(spaced.to_string().contains("sslkey names /etc/ca root.pem"), "{spaced}");
    }
}
