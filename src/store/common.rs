//! What both backends do alike around their own SQL: tallying a usage import as its rows
//! arrive, grouping the month's usage rows into accounts for the settle, checking a schema's
//! migrations. Kept out of the port (`store`), which only says what a store does.

use super::{
    AccountUsage, CreditIssued, CreditRequest, Retracted, StoreError, StoreResult, UsageImported, UsageSender,
};
use crate::domain::bill::ApiUsage;
use crate::domain::credit::{amount_due, CreditPlan};
use crate::domain::settle::{bill_id, CurrentBill};
use crate::domain::shard::Shard;
use crate::error::MAX_LISTED;
use crate::input::usage::NewUsage;
use crate::input::RowError;
use crate::store::repeats::{too_many, RowHashes, Sketch};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;

/// What a usage import has read so far: its good rows, their calls and time range, the rows
/// that fall in months already settled, the duplicate events skipped, and its problems. The
/// same bookkeeping for every backend.
#[derive(Debug, Default)]
pub(crate) struct ImportTally {
    pub rows: u64,
    pub calls: i64,
    pub duplicates: u64,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// Settled months, `[start, end)`, with how many of the file's rows fall in each.
    settled: Vec<(String, DateTime<Utc>, DateTime<Utc>, u64)>,
    problems: Vec<RowError>,
    problems_total: u64,
}

impl ImportTally {
    /// A tally for a file imported into a database whose settled months are `settled`
    /// (month, start, end).
    pub(crate) fn new(settled: Vec<(String, DateTime<Utc>, DateTime<Utc>)>) -> ImportTally {
        ImportTally {
            settled: settled.into_iter().map(|(m, s, e)| (m, s, e, 0)).collect(),
            ..ImportTally::default()
        }
    }

    /// The rows that fall in settled months, by month: late usage.
    pub(crate) fn late(&self) -> Vec<(String, u64)> {
        self.settled
            .iter()
            .filter(|(.., n)| *n > 0)
            .map(|(m, .., n)| (m.clone(), *n))
            .collect()
    }

    /// Counts a good row; a row whose calls would take the file's total past what a 64-bit
    /// count holds becomes a problem instead. Returns whether the row counted.
    pub(crate) fn row(&mut self, r: &NewUsage) -> bool {
        let Some(calls) = self.calls.checked_add(r.calls) else {
            self.problems(vec![RowError::new(
                r.line,
                "calls",
                format!(
                    "the file's calls add up to more than {}, the most billrun can count",
                    i64::MAX
                ),
            )]);
            return false;
        };
        self.calls = calls;
        self.rows += 1;
        self.first = Some(self.first.map_or(r.ts, |f| f.min(r.ts)));
        self.last = Some(self.last.map_or(r.ts, |l| l.max(r.ts)));
        if let Some(month) = self.settled.iter_mut().find(|(_, s, e, _)| *s <= r.ts && r.ts < *e) {
            month.3 += 1;
        }
        true
    }

    /// Counts a row skipped before it was counted: its account already had its event.
    pub(crate) fn duplicate(&mut self) {
        self.duplicates += 1;
    }

    /// Takes back a row of `calls` calls at `ts`, counted by [`ImportTally::row`], that turned
    /// out to be a duplicate event. The time range is the caller's to set again from the rows
    /// kept.
    pub(crate) fn taken_back(&mut self, ts: DateTime<Utc>, calls: i64) {
        self.rows -= 1;
        self.calls -= calls;
        self.duplicates += 1;
        if let Some(late) = self.settled.iter_mut().find(|(_, s, e, _)| *s <= ts && ts < *e) {
            late.3 -= 1;
        }
    }

    /// Records that line `line` repeats an event its account has already, with another
    /// payload: an event is billed once, as first sent, so a changed one is a conflict (the
    /// file is refused), never a silent drop. `first` says where it came first: an earlier
    /// import (its id) or this file (`None`), and the line.
    pub(crate) fn event_conflict(&mut self, r: &NewUsage, first: &FirstEvent) {
        let event = r.event_id.as_deref().unwrap_or_default();
        let (ts, api, calls) = (&first.ts, &first.api, first.calls);
        let mut differs = Vec::new();
        if *api != r.api {
            differs.push(format!("api {api}"));
        }
        if *ts != r.ts {
            differs.push(format!("timestamp {}", ts.to_rfc3339()));
        }
        if calls != r.calls {
            differs.push(format!("calls {calls}"));
        }
        let place = match first.import_id {
            Some(id) => format!("import #{id}, line {}", first.line),
            None => format!("line {} of this file", first.line),
        };
        self.problems(vec![RowError::new(
            r.line,
            "event_id",
            format!(
                "event '{event}' of account '{}' came before ({place}) with {}: an event is billed once, as \
                 first sent; a meter that reuses its event ids must make them unique (by month, say)",
                r.account_id,
                differs.join(", ")
            ),
        )]);
    }

    /// What an import of a file whose every row is an event imported before did: nothing, and it
    /// is accepted as a harmless re-send (`None` for any other file). A file that was to replace
    /// an import (`replacing`) is refused instead: taking the import back with nothing in its
    /// place is a retraction, which the operator asks for by name, never a side effect of a
    /// re-send.
    pub(crate) fn nothing_new(&self, replacing: Option<&Retracted>) -> Option<StoreResult<UsageImported>> {
        if self.rows > 0 || self.duplicates == 0 || self.problems_total > 0 {
            return None;
        }
        Some(match replacing {
            Some(r) => Err(StoreError::Failed(crate::error::input_error(format!(
                "every row of the file ({} rows) is an event that other imports already hold: it would replace \
                 import #{} ({}) with nothing; nothing was changed (to take #{} back, use `billrun usage retract {}`)",
                self.duplicates, r.import_id, r.file_name, r.import_id, r.import_id
            )))),
            None => Ok(UsageImported {
                import_id: None,
                rows: 0,
                calls: 0,
                late: Vec::new(),
                duplicates: self.duplicates,
                replaced: None,
            }),
        })
    }

    /// Records that line `line` (at `ts`) is usage of account `id`, which was never opened
    /// (`opened` is `None`) or opened in a later month.
    pub(crate) fn unopened_account(&mut self, line: u64, id: &str, opened: Option<DateTime<Utc>>, ts: DateTime<Utc>) {
        let why = match opened {
            None => format!(
                "account '{id}' was never opened (it has no activated_at): its usage would be billed with no free pack"
            ),
            Some(opened) => format!(
                "account '{id}' opened at {}, and this row is dated {}, in a month before the one it opened in",
                opened.to_rfc3339(),
                ts.to_rfc3339()
            ),
        };
        self.problems(vec![RowError::new(
            line,
            "account_id",
            format!("{why}; import with --allow-unopened to bill it as it is"),
        )]);
    }

    /// Records that line `line` names account `id`, which does not exist.
    pub(crate) fn unknown_account(&mut self, line: u64, id: &str) {
        self.problems(vec![RowError::new(
            line,
            "account_id",
            format!("unknown account '{id}'"),
        )]);
    }

    /// Counts `n` more problems, beyond those listed.
    pub(crate) fn unlisted_problems(&mut self, n: u64) {
        self.problems_total += n;
    }

    /// Records problems; the first `MAX_LISTED` are kept to be listed.
    pub(crate) fn problems(&mut self, errs: Vec<RowError>) {
        self.problems_total += errs.len() as u64;
        let room = MAX_LISTED.saturating_sub(self.problems.len());
        self.problems.extend(errs.into_iter().take(room));
    }

    /// Whether the file is known to be bad.
    pub(crate) fn is_bad(&self) -> bool {
        self.problems_total > 0
    }

    /// The rejection, if the file is bad or has no rows at all.
    pub(crate) fn rejection(&mut self) -> Option<StoreError> {
        if self.problems_total > 0 {
            let mut problems = std::mem::take(&mut self.problems);
            problems.sort_by_key(|p| p.line);
            return Some(StoreError::Rejected {
                problems,
                total: self.problems_total,
            });
        }
        (self.rows == 0 && self.duplicates == 0).then(|| StoreError::Rejected {
            problems: vec![RowError::new(1, "(file)", "the file has no usage rows")],
            total: 1,
        })
    }
}

/// An earlier import whose rows span some of a new file's, with its sketch.
pub(crate) struct EarlierImport {
    pub import_id: i64,
    pub file_name: String,
    pub imported_at: DateTime<Utc>,
    pub sketch: Sketch,
}

/// The problem with a file whose rows without an event id repeat, in more than the share
/// `repeats` allows, rows of the `earlier` imports: how many, and of which imports (the most
/// first, three at most named).
pub(crate) fn repeated_rows(hashes: &RowHashes, earlier: &[EarlierImport]) -> Option<RowError> {
    let mut found: Vec<(u64, &EarlierImport)> = earlier
        .iter()
        .map(|e| (hashes.repeats_of(&e.sketch), e))
        .filter(|(n, _)| *n > 0)
        .collect();
    let total = found.iter().map(|(n, _)| n).sum::<u64>().min(hashes.rows());
    if !too_many(total, hashes.rows()) {
        return None;
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.import_id.cmp(&b.1.import_id)));
    let named: Vec<String> = found
        .iter()
        .take(3)
        .map(|(n, e)| {
            format!(
                "about {n} of import #{} ({}, imported {})",
                e.import_id,
                e.file_name,
                e.imported_at.to_rfc3339()
            )
        })
        .collect();
    Some(RowError::new(
        1,
        "(file)",
        format!(
            "about {total} of its {} rows without an event_id repeat rows of earlier imports (same account, API, \
             time and calls): {}. Importing them would bill those calls twice: import only the new rows, give \
             the rows event ids, or, if they are new calls, import with --allow-repeats",
            hashes.rows(),
            named.join("; ")
        ),
    ))
}

/// Where an event came first: its import (`None`: an earlier line of the same file), line and
/// payload.
pub(crate) struct FirstEvent {
    pub import_id: Option<i64>,
    pub line: u64,
    pub ts: DateTime<Utc>,
    pub api: String,
    pub calls: i64,
}

impl FirstEvent {
    /// Whether `r` says the same as the first: the same API, instant and calls.
    pub(crate) fn same_as(&self, r: &NewUsage) -> bool {
        self.api == r.api && self.ts == r.ts && self.calls == r.calls
    }
}

/// Groups `(account_id, api, calls, billed)` rows, read in account order, into one
/// [`AccountUsage`] per account of `shard`. `billed` is what the current revision of the
/// account's bill counted for that API (NULL: no bill, or no line for it): an account whose
/// every API matches is left out, as nothing about it changed. (A backend that filters those
/// in SQL passes NULL.)
pub(crate) struct Grouper {
    shard: Shard,
    /// The account being read, and whether all its rows so far match its bill.
    current: Option<(AccountUsage, bool)>,
}

impl Grouper {
    pub(crate) fn new(shard: Shard) -> Grouper {
        Grouper { shard, current: None }
    }

    /// Takes the next row; returns the previous account once this row starts another.
    pub(crate) fn push(
        &mut self,
        account_id: String,
        api: String,
        calls: i64,
        billed: Option<i64>,
    ) -> Option<AccountUsage> {
        if !self.shard.contains(&account_id) {
            return None;
        }
        let mut done = None;
        if self.current.as_ref().is_some_and(|(c, _)| c.account_id != account_id) {
            let (previous, unchanged) = self.current.take().expect("current");
            done = (!unchanged).then_some(previous);
        }
        let (account, unchanged) = self.current.get_or_insert_with(|| {
            (
                AccountUsage {
                    account_id,
                    usage: Vec::new(),
                },
                true,
            )
        });
        *unchanged &= billed == Some(calls);
        account.usage.push(ApiUsage { api, calls });
        done
    }

    /// The last account, after the last row.
    pub(crate) fn finish(self) -> Option<AccountUsage> {
        self.current.and_then(|(last, unchanged)| (!unchanged).then_some(last))
    }
}

/// The error for a month whose usage of some account and API adds up to more calls than a
/// 64-bit count holds: every row was within bounds, but there are too many of them.
pub(crate) fn calls_overflow(month: &str) -> anyhow::Error {
    crate::error::input_error(format!(
        "the usage of {month} adds up to more than {} calls for one account and API, more than billrun can \
         count and bill; nothing of {month} is billed from here on",
        i64::MAX
    ))
}

/// The error for a month's totals found kept for another zone than `zone` while a settle read
/// them: a command under another `--tz` built them again meanwhile. Retry later (exit 4).
pub(crate) fn totals_moved(zone: Tz) -> anyhow::Error {
    anyhow::Error::new(crate::error::Busy(format!(
        "the month's usage totals were built again for another billing zone while this settle read them \
         for {}, by a command run with another --tz; the settle stopped (pages already written are whole) \
         and a re-run finishes the month: keep --tz the same for every command",
        zone.name()
    )))
}

/// The error for work that needs the usage of an archived import (`billrun archive`): `needs`
/// says what.
pub(crate) fn archived_error(import_id: i64, file_name: &str, needs: &str) -> anyhow::Error {
    crate::error::input_error(format!(
        "usage import #{import_id} ({file_name}) is archived, and {needs} needs its usage: \
         `billrun restore-usage --dir DIR` brings it back from the archive's files; nothing was written"
    ))
}

/// The error for an import that may no longer be archived once the archiving transaction holds
/// the imports: something changed it, or its months, after it was checked. Retry later (exit 4).
pub(crate) fn archive_refused(import_id: i64, why: String) -> anyhow::Error {
    anyhow::Error::new(crate::error::Busy(format!(
        "usage import #{import_id} changed while it was being archived ({why}); it was not archived, \
         and what was archived before it stays so: run the command again"
    )))
}

/// Reads what decides whether an import may be archived ([`ArchiveState`]), on `conn`, from the
/// rows of the queries that list imports, settled months, late usage and the totals' zone.
pub(crate) fn archive_state<R: super::decode::Columns>(
    imports: &[R],
    settled: &[R],
    late: &[R],
    zone: Option<String>,
) -> anyhow::Result<crate::store::ArchiveState> {
    use super::decode::{late_usage, settled_month, stored_import};
    Ok(crate::store::ArchiveState {
        imports: imports.iter().map(stored_import).collect::<anyhow::Result<_>>()?,
        settled: settled.iter().map(settled_month).collect::<anyhow::Result<_>>()?,
        late: late.iter().map(late_usage).collect::<anyhow::Result<_>>()?,
        zone: zone.and_then(|z| z.parse().ok()),
    })
}

/// What rebuilding the month's totals for another billing zone says of an archived import.
pub(crate) const REZONING: &str = "building the month's totals for another billing time zone";

/// The error for month totals that would leave 64 bits: an import that would take one past
/// it, or usage rows written past billrun's bounds by another writer, found when the totals
/// are built.
pub(crate) fn totals_overflow() -> anyhow::Error {
    crate::error::input_error(format!(
        "the usage of one account and API in a month adds up to more than {} calls, more than billrun \
         can count and bill; nothing was written (`billrun verify` names the month's totals)",
        i64::MAX
    ))
}

/// Reads `(account_id, api, calls, billed)` rows in account order and sends one
/// [`AccountUsage`] per account of `shard` down the channel (see [`Grouper`]); stops early if
/// the receiver is gone.
pub(crate) async fn forward_grouped<S>(mut rows: S, month: &str, shard: Shard, mut out: UsageSender)
where
    S: futures_util::Stream<Item = Result<(String, String, i64, Option<i64>), sqlx::Error>> + Unpin,
{
    use futures_util::TryStreamExt;
    let mut grouper = Grouper::new(shard);
    loop {
        match rows.try_next().await {
            Ok(Some((account_id, api, calls, billed))) => {
                if let Some(done) = grouper.push(account_id, api, calls, billed) {
                    if !out.send(done).await {
                        return;
                    }
                }
            }
            Ok(None) => {
                if let Some(last) = grouper.finish() {
                    if !out.send(last).await {
                        return;
                    }
                }
                return out.finish(None).await;
            }
            Err(e) => {
                let overflow = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "22003");
                let e = match overflow {
                    true => calls_overflow(month),
                    false => anyhow::Error::new(e).context("reading the month's usage"),
                };
                return out.finish(Some(e)).await;
            }
        }
    }
}

/// What is wrong with a database whose applied migrations are `applied` (`None`: it has no
/// migrations table at all) for a binary that has `known`, if anything.
pub(crate) fn schema_problem(applied: Option<Vec<i64>>, known: &sqlx::migrate::Migrator) -> Option<String> {
    let known: Vec<i64> = known.iter().map(|m| m.version).collect();
    let Some(applied) = applied else {
        return Some(
            "the database has no billrun schema yet: run `billrun migrate` (or any command that writes) \
             with a role that may create tables"
                .into(),
        );
    };
    if let Some(v) = applied.iter().find(|v| !known.contains(v)) {
        return Some(format!(
            "the database was migrated by a newer billrun (migration {v} is unknown to this one): use that \
             version or a newer one"
        ));
    }
    let missing: Vec<String> = known
        .iter()
        .filter(|v| !applied.contains(v))
        .map(i64::to_string)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the database's schema is older than this billrun (migrations {} are not applied): run \
             `billrun migrate` with a role that may change the schema, then run this again",
            missing.join(", ")
        )
    })
}

/// The credit revision `plan` writes against `current`, as the port reports it.
pub(crate) fn credit_issued(
    req: &CreditRequest,
    current: &CurrentBill,
    plan: &CreditPlan,
    at: DateTime<Utc>,
) -> CreditIssued {
    let month = req.month.to_string();
    CreditIssued {
        bill_id: bill_id(&month, &req.account_id, plan.revision),
        account_id: req.account_id.clone(),
        month,
        revision: plan.revision,
        amount_fen: plan.amount_fen,
        credited_fen: plan.credited_fen,
        due_fen: amount_due(current.total_fen, plan.credited_fen),
        balance_fen: plan.after.balance_fen,
        restored: plan.restored,
        at,
    }
}

/// The file name and fingerprint of the record of import `import_id`'s retraction.
pub(crate) fn retraction_record(import_id: i64) -> (String, String) {
    (
        format!("retraction of import #{import_id}"),
        format!("retraction-{import_id}"),
    )
}

/// The settled months (of `settled`: month, start, end) that rows from `first` to `last` fall in.
pub(crate) fn settled_months_within(
    settled: &[(String, DateTime<Utc>, DateTime<Utc>)],
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Vec<String> {
    settled
        .iter()
        .filter(|(_, start, end)| first < *end && last >= *start)
        .map(|(m, _, _)| m.clone())
        .collect()
}

/// The error for `usage import --replaces` of an import retracted before: nothing is imported.
pub(crate) fn replaced_before(before: &Retracted) -> StoreError {
    StoreError::Failed(crate::error::input_error(format!(
        "import #{} ({}) was retracted before ({}): there is nothing to replace; import the file without --replaces",
        before.import_id, before.file_name, before.reason
    )))
}

/// An import whose rows count, as the month's totals are built from it: its kept content and
/// how it reads back (`sql::COUNTED_IMPORTS_SQL`).
pub(crate) struct CountedImport {
    pub import_id: i64,
    pub chunks: i64,
    pub reading: crate::input::stored::Reading,
    pub skipped: crate::input::replay::SkippedLines,
}

impl CountedImport {
    /// From the columns as stored; an import whose content does not read back is an error
    /// that says what makes it read back.
    pub fn new(
        import_id: i64,
        chunks: Option<i64>,
        format: Option<String>,
        assume_tz: Option<String>,
        skipped: Option<Vec<u8>>,
    ) -> anyhow::Result<CountedImport> {
        let (Some(chunks), Some(format)) = (chunks, format) else {
            anyhow::bail!(
                "usage import #{import_id}'s content is not kept in a form that reads back: run `billrun migrate`"
            );
        };
        let reading = crate::input::stored::Reading::from_stored(&format, assume_tz.as_deref())
            .map_err(|e| anyhow::anyhow!("usage import #{import_id}: {e}"))?;
        Ok(CountedImport {
            import_id,
            chunks,
            reading,
            skipped: crate::input::replay::SkippedLines::decode(skipped.as_deref())
                .map_err(|e| anyhow::anyhow!("usage import #{import_id}: {e}"))?,
        })
    }

    /// What reading it back found wrong, as an error.
    pub fn unreadable(&self, problem: String) -> anyhow::Error {
        anyhow::anyhow!(
            "usage import #{}'s kept content does not read back as the rows it counted: {problem}",
            self.import_id
        )
    }
}

/// The accounts an import's totals named that it may not have usage of: accounts that do not
/// exist, and (unless it accepts them) accounts not open yet in the month of some of their usage,
/// each with its opening and the first instant it may have usage from.
#[derive(Default)]
pub(crate) struct RefusedAccounts {
    pub unknown: std::collections::HashSet<String>,
    pub unopened: HashMap<String, Unopened>,
}

/// An account not open yet: when it opened (`None`: never), and the first instant it may have
/// usage from.
pub(crate) type Unopened = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A line naming an account not open yet in its month: line, account, opening, the row's instant.
type UnopenedLine = (u64, String, Option<DateTime<Utc>>, DateTime<Utc>);

/// The lines of an import naming refused accounts, found by reading its kept content back
/// (`input::replay`): the first [`MAX_LISTED`] of each kind, and how many there are.
#[derive(Default)]
pub(crate) struct RefusedLines {
    unknown: Vec<(u64, String)>,
    unknown_total: u64,
    unopened: Vec<UnopenedLine>,
    unopened_total: u64,
}

impl RefusedLines {
    /// Reads `rows` for the lines naming `accounts` (a row that does not read was reported
    /// when it was imported).
    pub(crate) fn find(rows: crate::input::replay::ReadBack, accounts: RefusedAccounts) -> RefusedLines {
        let mut found = RefusedLines::default();
        for row in rows.flatten() {
            if accounts.unknown.contains(&row.account_id) {
                found.unknown_total += 1;
                if found.unknown.len() < MAX_LISTED {
                    found.unknown.push((row.line, row.account_id));
                }
            } else if let Some(&(opened, from)) = accounts.unopened.get(&row.account_id) {
                if from.map_or(true, |from| row.ts < from) {
                    found.unopened_total += 1;
                    if found.unopened.len() < MAX_LISTED {
                        found.unopened.push((row.line, row.account_id, opened, row.ts));
                    }
                }
            }
        }
        found
    }

    /// Records the lines as the import's problems: those naming unknown accounts first.
    pub(crate) fn report(self, tally: &mut ImportTally) {
        let listed = (self.unknown.len() + self.unopened.len()) as u64;
        for (line, id) in &self.unknown {
            tally.unknown_account(*line, id);
        }
        for (line, id, opened, ts) in &self.unopened {
            tally.unopened_account(*line, id, *opened, *ts);
        }
        tally.unlisted_problems(self.unknown_total + self.unopened_total - listed);
    }
}
