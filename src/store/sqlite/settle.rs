//! SQLite's settle: pages of bills read, priced and written by threads of their own.
//!
//! Why not sqlx here: its SQLite driver runs each connection on a worker thread and hands
//! every statement and every row across to the async task, one at a time. A page of 1000
//! accounts reads about 4000 rows and writes about 12000, and those hand-offs cost more than
//! the SQL itself. Here a writer thread and a reader thread each own a `rusqlite` connection
//! to the same file (through the same SQLite library as sqlx, so its locks are shared) and run
//! a page's reads or writes as one call, with cached prepared statements.
//!
//! SQLite runs one writer at a time, so the work is pipelined. The writer takes the write lock
//! (`BEGIN IMMEDIATE`) for page N and, holding it, has the reader read page N + 1's bills,
//! balances and packs; while the writer writes page N, the async task prices page N + 1 and
//! gathers page N + 2 from the usage stream. Page N + 1's read-ahead is written only if no
//! other connection committed anything between the write lock taken for page N and the one
//! taken for page N + 1 (`PRAGMA data_version`, which counts other connections' commits, is the
//! same): the read came after the first, and the writer's own page N touched other accounts.
//! The writer checks this itself, right after taking the lock, and writes and commits the page
//! without waiting on the async task. Otherwise, and for a dry run, the page is read again
//! inside its own transaction, before it is priced.
//!
//! A checkpoint thread copies the write-ahead log back into the database after each commit, so
//! that the copying, and the waits for the disk, happen beside the writer rather than in it.
//!
//! If the async task goes away (a stop signal), the threads see their channel close, roll back
//! any open transaction and end: nothing half-written is kept.

use super::conn::open;
use super::rows::{at, bind_row, opt_at, us, Rows};
use super::sql::{FIRST_MONTH_USAGE_SQL, MONTH_USAGE_SQL, USAGE_STREAM_CHUNK};
use crate::domain::arrears::ServiceState;
use crate::domain::money::format_money;
use crate::domain::month::Month;
use crate::domain::packs::{PackBalance, PackKind};
use crate::domain::shard::Shard;
use crate::store::common::{calls_overflow, totals_moved, Grouper};
use crate::store::page::{self, CurrentBill, PageWrites, StoredLine};
use crate::store::{AccountUsage, PageDone, PageOutcome, SettlePage, UsageStream};
use anyhow::{anyhow, Context};
use chrono_tz::Tz;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What pricing a page needs from the database, for its accounts.
pub struct PageState {
    /// The current revision of each account's bill for the month, if any.
    current: HashMap<String, CurrentBill>,
    states: HashMap<String, ServiceState>,
    /// When each account's service opened (`None`: not opened).
    opened: HashMap<String, Option<chrono::DateTime<chrono::Utc>>>,
    packs: HashMap<String, Vec<PackBalance>>,
}

/// A page priced and ready to write.
struct Priced {
    writes: PageWrites,
    outcome: PageOutcome,
}

/// The month a page is settled for, as the threads need it.
#[derive(Clone)]
struct Params {
    month: String,
    start: i64,
    end: i64,
    now: i64,
}

impl Params {
    fn of(page: &SettlePage) -> Params {
        Params {
            month: page.month.to_string(),
            start: us(page.start),
            end: us(page.end),
            now: us(page.now),
        }
    }
}

/// Reads what pricing the page's accounts (`ids`) needs.
fn read_state(conn: &Connection, p: &Params, ids: &str) -> anyhow::Result<PageState> {
    let mut current: HashMap<String, CurrentBill> = HashMap::new();
    let mut by_bill: HashMap<String, String> = HashMap::new();
    let mut bills = conn.prepare_cached(
        "SELECT b.account_id, b.bill_id, b.revision, b.total_fen, b.credited_fen FROM bills b
         WHERE b.month = ?1 AND b.account_id IN (SELECT value FROM json_each(?2))
           AND b.revision = (SELECT MAX(b2.revision) FROM bills b2 WHERE b2.account_id = b.account_id AND b2.month = ?1)",
    )?;
    let mut rows = bills.query(params![p.month, ids])?;
    while let Some(r) = rows.next()? {
        let account: String = r.get(0)?;
        by_bill.insert(r.get(1)?, account.clone());
        current.insert(
            account,
            CurrentBill {
                revision: r.get(2)?,
                total_fen: r.get(3)?,
                credited_fen: r.get(4)?,
                ..CurrentBill::default()
            },
        );
    }
    if !by_bill.is_empty() {
        let bill_ids = serde_json::to_string(&by_bill.keys().collect::<Vec<_>>())?;
        let mut lines = conn.prepare_cached(
            "SELECT bill_id, api, total_calls, free_calls, prepaid_calls, billable_calls, unit_price, amount
             FROM bill_lines WHERE bill_id IN (SELECT value FROM json_each(?1)) ORDER BY bill_id, api",
        )?;
        let mut rows = lines.query([&bill_ids])?;
        while let Some(r) = rows.next()? {
            let bill = current.get_mut(&by_bill[&r.get::<_, String>(0)?]).expect("loaded bill");
            bill.lines.push(StoredLine {
                api: r.get(1)?,
                total_calls: r.get(2)?,
                free_calls: r.get(3)?,
                prepaid_calls: r.get(4)?,
                billable_calls: r.get(5)?,
                unit_price: decimal(r.get(6)?, "unit_price")?,
                amount: decimal(r.get(7)?, "amount")?,
            });
        }
        let mut used = conn.prepare_cached(
            "SELECT bill_id, pack_id, calls FROM pack_consumption WHERE bill_id IN (SELECT value FROM json_each(?1))",
        )?;
        let mut rows = used.query([&bill_ids])?;
        while let Some(r) = rows.next()? {
            let bill = current.get_mut(&by_bill[&r.get::<_, String>(0)?]).expect("loaded bill");
            bill.consumed.push((r.get(1)?, r.get(2)?));
        }
    }

    let mut states = HashMap::new();
    let mut opened = HashMap::new();
    let mut accounts = conn.prepare_cached(
        "SELECT account_id, balance_fen, suspend_at, suspended, activated_at FROM accounts
         WHERE account_id IN (SELECT value FROM json_each(?1))",
    )?;
    let mut rows = accounts.query([ids])?;
    while let Some(r) = rows.next()? {
        let account: String = r.get(0)?;
        opened.insert(account.clone(), opt_at(r.get(4)?));
        states.insert(
            account,
            ServiceState {
                balance_fen: r.get(1)?,
                suspend_at: opt_at(r.get(2)?),
                suspended: r.get::<_, i64>(3)? != 0,
            },
        );
    }
    let packs = read_packs(conn, p, ids)?;
    Ok(PageState {
        current,
        states,
        opened,
        packs,
    })
}

/// Every pack of the page's accounts that may cover the month, used up or not: a revision
/// being replaced hands its calls back before the new one is computed.
fn read_packs(conn: &Connection, p: &Params, ids: &str) -> anyhow::Result<HashMap<String, Vec<PackBalance>>> {
    let mut packs: HashMap<String, Vec<PackBalance>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT pack_id, kind, account_id, api, remaining, valid_until, purchased_at FROM packs
         WHERE account_id IN (SELECT value FROM json_each(?1))
           AND ((kind = 'free' AND month = ?2) OR (kind = 'prepaid' AND valid_from < ?4 AND valid_until > ?3))",
    )?;
    let mut rows = stmt.query(params![ids, p.month, p.start, p.end])?;
    while let Some(r) = rows.next()? {
        let kind: String = r.get(1)?;
        packs.entry(r.get(2)?).or_default().push(PackBalance {
            pack_id: r.get(0)?,
            kind: if kind == "free" {
                PackKind::Free
            } else {
                PackKind::Prepaid
            },
            api: r.get(3)?,
            remaining: r.get(4)?,
            valid_until: at(r.get(5)?),
            purchased_at: at(r.get(6)?),
        });
    }
    Ok(packs)
}

fn decimal(text: String, column: &str) -> anyhow::Result<Decimal> {
    Decimal::from_str_exact(&text).with_context(|| format!("stored {column} '{text}' is not a decimal"))
}

/// The writer's statements: inserts of many rows each, updates of one (see `store::sqlite::rows`).
///
/// Each is `OR FAIL`: a row that breaks a constraint stops the statement and keeps the rows
/// before it, where the default (`ABORT`) undoes the statement's own rows first. Either way the
/// page's transaction is then rolled back whole, so the result is the same; but to undo a
/// statement SQLite must first copy every page it changes into a statement journal: more bytes
/// than the write-ahead log itself, and a share of the writer's time (docs/performance.md).
struct Writes {
    bills: Rows,
    lines: Rows,
    uses: Rows,
    packs: Rows,
    ledger: Rows,
    balances: Rows,
    events: Rows,
}

impl Writes {
    fn new() -> Writes {
        Writes {
            bills: Rows::insert(
                "INSERT OR FAIL INTO bills (month, period_start, period_end, settled_at, bill_id, account_id, revision, kind,
                   catalog_version, rounding, exact_total, total_fen, rounding_adjustment, debited_fen,
                   balance_before_fen, balance_after_fen, credited_fen) VALUES ",
                4,
            ),
            lines: Rows::insert(
                "INSERT OR FAIL INTO bill_lines (bill_id, api, total_calls, free_calls, prepaid_calls, billable_calls, tier,
                   tier_from, tier_to, catalog_version, unit_price, amount, pricing, tier_basis, slices, account_id) VALUES ",
                0,
            ),
            uses: Rows::insert(
                "INSERT OR FAIL INTO pack_consumption (account_id, bill_id, pack_id, calls) VALUES ",
                0,
            ),
            packs: Rows::update_each("UPDATE OR FAIL packs SET remaining = remaining + ?2 WHERE pack_id = ?1", 2),
            ledger: Rows::insert(
                "INSERT OR FAIL INTO ledger (created_at, account_id, kind, amount_fen, bill_id) VALUES ",
                1,
            ),
            balances: Rows::update_each(
                "UPDATE OR FAIL accounts SET balance_fen = ?2, suspend_at = ?3, suspended = ?4 WHERE account_id = ?1",
                4,
            ),
            events: Rows::insert(
                "INSERT OR FAIL INTO events (at, account_id, kind, bill_id, suspend_at, balance_fen) VALUES ",
                1,
            ),
        }
    }

    /// Writes one page's bills, lines, pack use, ledger entries, balances and events.
    fn page(&self, conn: &Connection, p: &Params, w: &PageWrites) -> anyhow::Result<()> {
        let n = w.bill_id.len();
        self.bills
            .write(conn, &[&p.month, &p.start, &p.end, &p.now], n, |st, at, i| {
                bind_row!(st, at;
                    &w.bill_id[i], &w.bill_account[i], w.revision[i], w.kind[i], &w.catalog_version[i],
                    &w.rounding[i], format_money(w.exact_total[i]), w.total_fen[i], format_money(w.adjustment[i]),
                    w.debited_fen[i], w.before_fen[i], w.after_fen[i], w.credited_fen[i])
            })
            .context("inserting bills")?;
        self.lines
            .write(conn, &[], w.line_bill.len(), |st, at, i| {
                bind_row!(st, at;
                    &w.line_bill[i], &w.line_api[i], w.line_total[i], w.line_free[i], w.line_prepaid[i],
                    w.line_billable[i], w.line_tier[i], w.line_tier_from[i], w.line_tier_to[i], &w.line_version[i],
                    w.line_unit_price[i].to_string(), format_money(w.line_amount[i]), &w.line_pricing[i],
                    &w.line_basis[i], &w.line_slices[i], &w.line_account[i])
            })
            .context("inserting bill lines")?;
        self.uses
            .write(
                conn,
                &[],
                w.use_bill.len(),
                |st, at, i| bind_row!(st, at; &w.use_account[i], &w.use_bill[i], &w.use_pack[i], w.use_calls[i]),
            )
            .context("recording pack use")?;
        let updated = self
            .packs
            .write(
                conn,
                &[],
                w.pack_id.len(),
                |st, at, i| bind_row!(st, at; &w.pack_id[i], w.pack_delta[i]),
            )
            .context("updating packs")?;
        if updated != w.pack_id.len() {
            return Err(anyhow!(
                "{} of the page's {} packs vanished while it was settled",
                w.pack_id.len() - updated,
                w.pack_id.len()
            ));
        }
        self.ledger
            .write(conn, &[&p.now], n, |st, at, i| {
                let kind = if w.revision[i] == 1 { "debit" } else { "adjustment" };
                bind_row!(st, at; &w.bill_account[i], kind, -w.debited_fen[i], &w.bill_id[i])
            })
            .context("inserting ledger entries")?;
        self.balances
            .write(conn, &[], n, |st, at, i| {
                bind_row!(st, at; &w.bill_account[i], w.after_fen[i], w.suspend_at[i].map(us), w.suspended[i])
            })
            .context("updating balances")?;
        self.events
            .write(conn, &[&p.now], w.event_account.len(), |st, at, i| {
                bind_row!(st, at;
                    &w.event_account[i], w.event_kind[i], &w.event_bill[i], w.event_suspend_at[i].map(us),
                    w.event_balance[i])
            })
            .context("inserting events")?;
        super::webhooks::queue_page(conn, &w.bill_id, p.now).context("queueing webhook deliveries")?;
        Ok(())
    }
}

/// A page read ahead by the reader thread: the `PRAGMA data_version` the writer saw when it
/// took the write lock after which the read began, and what was read.
type ReadAhead = anyhow::Result<(i64, PageState)>;

/// Accounts (a JSON array) for the reader thread to read once the writer holds the lock.
struct ReadRequest {
    ids: String,
    reply: oneshot::Sender<ReadAhead>,
}

/// What the writer thread is asked to do.
enum Command {
    /// `BEGIN IMMEDIATE`, then: has the reader thread read `read_ahead` (the next page),
    /// now that the lock is held; then, if `priced` was read ahead at the `data_version` the
    /// writer now sees, writes it and commits (or, in a dry run, rolls back). Otherwise the
    /// transaction stays open and the answer is [`Locked::Open`]: the page must be read with
    /// `Read` and written with `Finish`.
    Page {
        priced: Option<(i64, Box<PageWrites>)>,
        read_ahead: Option<ReadRequest>,
        reply: oneshot::Sender<anyhow::Result<Locked>>,
    },
    /// Reads the page's accounts (a JSON array) inside the open transaction, granting lacking
    /// packs.
    Read(String, oneshot::Sender<anyhow::Result<PageState>>),
    /// Writes the page inside the open transaction, then commits (or, in a dry run, rolls back).
    Finish(Box<PageWrites>, oneshot::Sender<anyhow::Result<Box<PageWrites>>>),
}

/// How a [`Command::Page`] ended. The rows come back with the answer, to be freed on the async
/// task's thread rather than the writer's.
enum Locked {
    Committed(Box<PageWrites>),
    Open,
}

/// The writer thread: one connection, one transaction at a time. Ends, rolling back whatever
/// is open, when the commands stop coming.
fn writer(
    conn: Connection,
    p: Params,
    dry_run: bool,
    commands: mpsc::Receiver<Command>,
    reader: mpsc::Sender<(i64, ReadRequest)>,
    checkpoints: mpsc::SyncSender<()>,
) {
    let end = if dry_run { "ROLLBACK" } else { "COMMIT" };
    let statements = Writes::new();
    let finish = |writes: Box<PageWrites>| {
        statements
            .page(&conn, &p, &writes)
            .and_then(|()| conn.execute_batch(end).context("committing a page of bills"))
            .map(|()| {
                // Full: a checkpoint is already due.
                let _ = checkpoints.try_send(());
                writes
            })
    };
    while let Ok(command) = commands.recv() {
        match command {
            Command::Page {
                priced,
                read_ahead,
                reply,
            } => {
                let locked = conn
                    .execute_batch("BEGIN IMMEDIATE")
                    .context("taking the write lock")
                    .and_then(|()| Ok(conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))?))
                    .and_then(|version| {
                        // Asked only now, with the write lock held: see the module header.
                        if let Some(request) = read_ahead {
                            reader
                                .send((version, request))
                                .map_err(|_| anyhow!("the settle reader thread ended unexpectedly"))?;
                        }
                        match priced {
                            Some((read_at, writes)) if read_at == version => finish(writes).map(Locked::Committed),
                            _ => Ok(Locked::Open),
                        }
                    });
                let _ = reply.send(locked);
            }
            Command::Read(ids, reply) => {
                let _ = reply.send(read_state(&conn, &p, &ids));
            }
            Command::Finish(writes, reply) => {
                let _ = reply.send(finish(writes));
            }
        }
    }
    // A transaction still open (the async task went away mid-page) is rolled back.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Write-ahead log pages past which the writer checkpoints by itself (SQLite's automatic
/// checkpoint), should the checkpoint thread fall behind. SQLite's default is 1000.
const WAL_BACKSTOP_PAGES: i64 = 4096;

/// The checkpoint thread: copies the write-ahead log back into the database after each commit
/// (a `PASSIVE` checkpoint, which never waits for or blocks the writer), so that the copying
/// and its two `fsync`s overlap the writer's next page instead of stalling it: otherwise the
/// writer waits on the disk.
fn checkpointer(conn: Connection, signals: mpsc::Receiver<()>) {
    while signals.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "a background checkpoint failed; the writer's own will do");
        }
    }
}

/// The reader thread: reads a page's accounts in one snapshot, on a connection that writes
/// nothing, and answers with the `data_version` the writer saw before the read began.
fn reader(conn: Connection, p: Params, requests: mpsc::Receiver<(i64, ReadRequest)>) {
    while let Ok((version, request)) = requests.recv() {
        let state = conn.execute_batch("BEGIN").map_err(anyhow::Error::from).and_then(|()| {
            let state = read_state(&conn, &p, &request.ids);
            conn.execute_batch("COMMIT")?;
            state
        });
        let _ = request.reply.send(state.map(|state| (version, state)));
    }
}

async fn answer<T>(reply: oneshot::Receiver<anyhow::Result<T>>) -> anyhow::Result<T> {
    reply.await.map_err(|_| anyhow!("a settle thread ended unexpectedly"))?
}

/// Up to `n` accounts from the stream; fewer only at its end.
async fn next_page(usage: &mut UsageStream, n: usize) -> anyhow::Result<Vec<AccountUsage>> {
    let mut accounts = Vec::with_capacity(n);
    while accounts.len() < n {
        match usage.recv().await {
            Some(account) => accounts.push(account?),
            None => break,
        }
    }
    Ok(accounts)
}

fn ids_of(accounts: &[AccountUsage]) -> anyhow::Result<String> {
    Ok(serde_json::to_string(
        &accounts.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(),
    )?)
}

fn price(page: &SettlePage, accounts: &[AccountUsage], state: PageState) -> anyhow::Result<Priced> {
    let (writes, outcome) = page::build(
        page,
        accounts,
        &state.current,
        &state.states,
        &state.opened,
        state.packs,
    )?;
    Ok(Priced { writes, outcome })
}

/// Streams the month's usage per account from a thread of its own with a connection of its own,
/// [`USAGE_STREAM_CHUNK`] rows per read, each read a short transaction of its own (see
/// `MONTH_USAGE_SQL`).
pub fn month_usage(file: PathBuf, month: Month, zone: Tz, shard: Shard) -> anyhow::Result<UsageStream> {
    let conn = open(&file, false)?;
    let (mut out, stream) = crate::store::usage_channel();
    let month = month.to_string();
    // With no bill for the month yet (its first settle), no account can be unchanged since its
    // bill: the stream skips looking up each (account, API)'s billed calls, two index
    // searches per row. Bills written meanwhile by another run are still found by the pages,
    // which re-read every account's bill under the write lock and leave an unchanged one alone.
    let sql = match conn.query_row("SELECT EXISTS (SELECT 1 FROM bills WHERE month = ?1)", [&month], |r| {
        r.get(0)
    }) {
        Ok(true) => MONTH_USAGE_SQL,
        Ok(false) => FIRST_MONTH_USAGE_SQL,
        Err(e) => return Err(anyhow::Error::from(e).context("looking for the month's bills")),
    };
    std::thread::Builder::new().name("settle-usage".into()).spawn(move || {
        let mut grouper = Grouper::new(shard);
        let mut after = (String::new(), String::new());
        loop {
            let chunk = match usage_chunk(&conn, sql, &month, zone, &after) {
                Ok(chunk) => chunk,
                Err(e) if format!("{e:#}").contains("integer overflow") => {
                    return out.blocking_finish(Some(calls_overflow(&month)))
                }
                Err(e) => return out.blocking_finish(Some(e.context("reading the month's usage"))),
            };
            let more = chunk.len() == USAGE_STREAM_CHUNK;
            if let Some((account, api, ..)) = chunk.last() {
                after = (account.clone(), api.clone());
            }
            for (account, api, calls, billed) in chunk {
                if let Some(done) = grouper.push(account, api, calls, billed) {
                    if !out.blocking_send(done) {
                        return;
                    }
                }
            }
            if !more {
                break;
            }
        }
        if let Some(last) = grouper.finish() {
            if !out.blocking_send(last) {
                return;
            }
        }
        out.blocking_finish(None);
    })?;
    Ok(stream)
}

/// (account, API, calls in the month, calls its current bill counted for the API).
type UsageRow = (String, String, i64, Option<i64>);

/// One read of the month's usage: the (account, API) rows after `after`.
/// The zone the totals are kept for is read in the same snapshot: totals built again for
/// another zone by a command under another `--tz` end the stream with an error.
fn usage_chunk(
    conn: &Connection,
    sql: &str,
    month: &str,
    zone: Tz,
    after: &(String, String),
) -> anyhow::Result<Vec<UsageRow>> {
    let tx = conn.unchecked_transaction()?;
    if super::totals::zone(&tx)? != Some(zone) {
        return Err(totals_moved(zone));
    }
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(params![month, after.0, after.1, USAGE_STREAM_CHUNK as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Settles the stream's accounts `page_size` at a time on the database file `file`, each page
/// one transaction, handing each page's result to `done` as it commits.
pub async fn settle_pages(
    file: PathBuf,
    page: &SettlePage,
    mut usage: UsageStream,
    page_size: usize,
    done: &mut dyn FnMut(PageDone),
) -> anyhow::Result<()> {
    let p = Params::of(page);
    let (to_writer, commands) = mpsc::channel();
    let (to_reader, requests) = mpsc::channel();
    {
        let (checkpoints, signals) = mpsc::sync_channel(1);
        let conn = open(&file, false)?;
        std::thread::Builder::new()
            .name("settle-checkpoint".into())
            .spawn(move || checkpointer(conn, signals))?;
        let (conn, params, dry_run) = (open(&file, false)?, p.clone(), page.dry_run);
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        std::thread::Builder::new()
            .name("settle-writer".into())
            .spawn(move || writer(conn, params, dry_run, commands, to_reader, checkpoints))?;
        let (conn, params) = (open(&file, false)?, p.clone());
        std::thread::Builder::new()
            .name("settle-reader".into())
            .spawn(move || reader(conn, params, requests))?;
    }
    let send = |command: Command| {
        to_writer
            .send(command)
            .map_err(|_| anyhow!("the settle writer thread ended unexpectedly"))
    };

    let mut accounts = next_page(&mut usage, page_size).await?;
    let mut next = next_page(&mut usage, page_size).await?;
    // `accounts` priced ahead, with the data_version its read was valid for.
    let mut ahead: Option<(i64, Priced)> = None;
    while !accounts.is_empty() {
        let (read_ahead, ahead_state) = if next.is_empty() || page.dry_run {
            (None, None)
        } else {
            let (reply, state) = oneshot::channel();
            let ids = ids_of(&next)?;
            (Some(ReadRequest { ids, reply }), Some(state))
        };
        let (priced, outcome) = ahead
            .take()
            .map(|(version, priced)| ((version, Box::new(priced.writes)), priced.outcome))
            .unzip();
        let (reply, locked) = oneshot::channel();
        send(Command::Page {
            priced,
            read_ahead,
            reply,
        })?;
        // While the writer writes, the next page is read and priced, and the one after it
        // gathered.
        let next_priced = match ahead_state {
            Some(state) => answer(state)
                .await
                .and_then(|(version, state)| price(page, &next, state).map(|priced| Some((version, priced)))),
            None => Ok(None),
        };
        let after = next_page(&mut usage, page_size).await;
        let (outcome, previews) = match (answer(locked).await?, outcome) {
            (Locked::Committed(writes), Some(outcome)) => {
                drop(writes);
                (outcome, Vec::new())
            }
            (Locked::Committed(_), None) => return Err(anyhow!("the settle writer committed a page it was not given")),
            (Locked::Open, _) => {
                // Read again under the lock: no page read ahead, or another connection
                // committed since it was read.
                let (reply, state) = oneshot::channel();
                send(Command::Read(ids_of(&accounts)?, reply))?;
                let priced = price(page, &accounts, answer(state).await?)?;
                let previews = if page.dry_run {
                    page::previews(&priced.writes)
                } else {
                    Vec::new()
                };
                let (reply, finished) = oneshot::channel();
                send(Command::Finish(Box::new(priced.writes), reply))?;
                answer(finished).await?;
                (priced.outcome, previews)
            }
        };
        done(PageDone {
            last: accounts.last().map(|a| a.account_id.clone()),
            outcome,
            previews,
        });
        ahead = next_priced?;
        accounts = std::mem::replace(&mut next, after?);
    }
    Ok(())
}
