//! The store: everything the jobs need from a database, behind one interface.
//!
//! [`Store`] is the port; `sqlite` is the embedded backend (a file, the default) and `postgres`
//! the production one. The binary looks at the URL once and runs the jobs generically over
//! whichever backend it names; nothing below that knows which one it is.
//! The jobs own the order of work; a store owns its transactions, so each method is one
//! atomic step: it either happens completely or not at all.

mod common;
mod decode;
mod error;
mod migrations;
pub mod page;
pub mod postgres;
pub mod repeats;
pub mod sql;
pub mod sqlite;
mod usage_stream;
mod usage_totals;
pub mod webhooks;

pub use error::{StoreError, StoreResult};
pub use usage_stream::{usage_channel, AccountUsage, UsageSender, UsageStream};
pub use usage_totals::UsageTotals;

use crate::domain::arrears::{EventKind, ServiceState};
use crate::domain::bill::ApiUsage;
use crate::domain::catalog::CatalogVersion;
use crate::domain::credit::{CreditAmount, CreditError};
use crate::domain::month::Month;
use crate::domain::pack_alerts::{PackAlert, Threshold};
use crate::domain::packs::{PackBalance, PackKind};
use crate::domain::settle::RevisionKind;
use crate::domain::shard::Shard;
use crate::input::accounts::NewAccount;
use crate::input::packs::NewPack;
use crate::input::stored::{Content, StoredChunk};
use crate::input::usage::{Fingerprint, NewUsage};
use crate::input::RowError;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use sql::verify::BookCheck;
use std::collections::{HashMap, HashSet};
use webhooks::{AttemptRecord, DeliveryFilter, DeliveryView, DueDelivery, EndpointHealth, EndpointRecord, Replay};

/// What an account holds for a month, as an estimate of the month reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// When its service opens or opened; `None`: not opened.
    pub opened: Option<DateTime<Utc>>,
    /// Every pack that may cover the month (the month's free packs, prepaid packs valid in
    /// it), as they stand now, used up or not.
    pub packs: Vec<PackBalance>,
    /// Each of `packs`' size in calls, by pack id.
    pub sizes: HashMap<String, i64>,
    /// Its usage totals for the month so far, by API.
    pub usage: Vec<ApiUsage>,
    /// The pack alerts recorded for it: (pack id, threshold).
    pub alerted: HashSet<(String, Threshold)>,
}

/// The free packs of one month: which APIs, how many calls, for what window.
#[derive(Clone, Debug)]
pub struct FreeGrant {
    pub month: Month,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// (api, free calls), only APIs with a non-zero free quota.
    pub apis: Vec<(String, i64)>,
}

impl FreeGrant {
    /// The free packs `version` gives for `month`, whose bounds are `[start, end)`.
    pub fn new(month: Month, start: DateTime<Utc>, end: DateTime<Utc>, version: &CatalogVersion) -> FreeGrant {
        let apis = version
            .apis
            .values()
            .filter(|a| a.free_calls > 0)
            .map(|a| (a.api.clone(), a.free_calls))
            .collect();
        FreeGrant {
            month,
            start,
            end,
            apis,
        }
    }

    /// The id of `account_id`'s free pack of `api` for the month.
    pub fn pack_id(&self, api: &str, account_id: &str) -> String {
        format!("free:{}:{api}:{account_id}", self.month)
    }

    /// The month's free packs an account has that are not stored, whole: one per API of the
    /// grant if its service opened (`opened`) before the month ended, except where it `held` a
    /// stored free pack of that API (one granted before free packs followed from the grant).
    /// What the month's bill takes from one is not stored either: it is the free calls of the
    /// bill's line for the API. The stored packs and these are the account's packs.
    pub fn packs_due(&self, account_id: &str, opened: Option<DateTime<Utc>>, held: &[PackBalance]) -> Vec<PackBalance> {
        if !opened.is_some_and(|at| at < self.end) {
            return Vec::new();
        }
        self.apis
            .iter()
            .filter(|(api, _)| !held.iter().any(|p| p.kind == PackKind::Free && &p.api == api))
            .map(|(api, calls)| {
                let pack_id = self.pack_id(api, account_id);
                PackBalance {
                    remaining: *calls,
                    pack_id,
                    kind: PackKind::Free,
                    api: api.clone(),
                    valid_until: self.end,
                    purchased_at: self.start,
                }
            })
            .collect()
    }

    /// This grant, keeping what the month's grant as first recorded gives (`recorded`: its
    /// JSON object of API → calls): a free pack once given keeps its size, so that a catalog
    /// version imported later for the month changes no pack a bill took from; an API it adds
    /// is given too.
    pub fn keeping(&self, recorded: &str) -> anyhow::Result<FreeGrant> {
        let mut apis: std::collections::BTreeMap<String, i64> = serde_json::from_str(recorded)
            .map_err(|e| anyhow::anyhow!("the recorded free packs of {} are not readable: {e}", self.month))?;
        for (api, calls) in &self.apis {
            apis.entry(api.clone()).or_insert(*calls);
        }
        Ok(FreeGrant {
            apis: apis.into_iter().collect(),
            ..self.clone()
        })
    }

    /// How many free packs recording this grant made due: none when the record did not change
    /// (`recorded`, the accounts now due, is `None`); otherwise the packs of the accounts now
    /// due less those the `previous` record (accounts, APIs as recorded) already gave.
    pub fn newly_due(&self, previous: Option<(i64, String)>, recorded: Option<i64>) -> anyhow::Result<u64> {
        let Some(accounts) = recorded else {
            return Ok(0);
        };
        let apis = self.apis.len() as i64;
        let before = match previous {
            Some((n, recorded_apis)) if recorded_apis == self.apis_json()? => n * apis,
            _ => 0,
        };
        Ok((accounts * apis - before).max(0) as u64)
    }

    /// The packs as a JSON object of API → calls, sorted by API: how `free_grants` records
    /// what a month was granted.
    pub fn apis_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string(
            &self
                .apis
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<String, i64>>(),
        )?)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Inactive,
    Active,
    Arrears,
    Suspended,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Inactive => "inactive",
            AccountStatus::Active => "active",
            AccountStatus::Arrears => "arrears",
            AccountStatus::Suspended => "suspended",
        }
    }

    /// The status at `now` of an account whose service opens (or opened) at `activated_at`:
    /// an opening still to come leaves it inactive until then.
    pub fn of(
        activated_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        suspended: bool,
        suspend_at: Option<DateTime<Utc>>,
    ) -> AccountStatus {
        match (activated_at.is_some_and(|at| at <= now), suspended, suspend_at) {
            (false, _, _) => AccountStatus::Inactive,
            (true, true, _) => AccountStatus::Suspended,
            (true, false, Some(_)) => AccountStatus::Arrears,
            (true, false, None) => AccountStatus::Active,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AccountView {
    pub account_id: String,
    pub name: String,
    pub balance: Decimal,
    /// When the service opens or opened; `None`: not opened.
    pub activated_at: Option<DateTime<Utc>>,
    pub suspended: bool,
    pub suspend_at: Option<DateTime<Utc>>,
}

impl AccountView {
    /// The account's status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> AccountStatus {
        AccountStatus::of(self.activated_at, now, self.suspended, self.suspend_at)
    }
}

impl AccountView {
    /// An account as listed, from the columns of [`sql::ACCOUNT_VIEW_SQL`].
    pub(crate) fn new(
        account_id: String,
        name: String,
        activated_at: Option<DateTime<Utc>>,
        state: ServiceState,
    ) -> AccountView {
        AccountView {
            account_id,
            name,
            activated_at,
            suspended: state.suspended,
            balance: crate::domain::money::from_fen(state.balance_fen),
            suspend_at: state.suspend_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActivateOutcome {
    Activated { packs_granted: u64 },
    AlreadyActive { since: DateTime<Utc> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RechargeOutcome {
    Credited {
        balance_fen: i64,
        restored: bool,
    },
    /// The reference names a recharge recorded before: nothing was credited. Whether it is
    /// the same payment (same account and amount) or another one is the job's to judge.
    ReferenceUsed(UsedReference),
    /// The credit would take the balance beyond what a 64-bit count of fen holds.
    Overflow {
        balance_fen: i64,
    },
}

/// The recharge a reference was first used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsedReference {
    pub account_id: String,
    pub amount_fen: i64,
    pub at: DateTime<Utc>,
    /// The balance of that account now.
    pub balance_fen: i64,
}

/// A credit an operator asks for (`billrun credit`).
#[derive(Clone, Debug)]
pub struct CreditRequest {
    pub account_id: String,
    pub month: Month,
    pub amount: CreditAmount,
    pub reason: String,
    /// The operator's idempotency key, unique across accounts: a retried command credits once.
    pub reference: String,
    /// Who issued it.
    pub by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditOutcome {
    /// The credit revision written.
    Credited(CreditIssued),
    /// The reference names a credit issued before: nothing was credited. Whether it is the
    /// same credit (same account, month and amount) is the job's to judge.
    ReferenceUsed(CreditIssued),
    /// The account has no bill for the month.
    NoBill,
    /// The rules refuse it (more than is due, nothing due, no such line).
    Refused(CreditError),
}

/// A credit revision, as written or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditIssued {
    pub account_id: String,
    pub month: String,
    pub bill_id: String,
    pub revision: i32,
    pub amount_fen: i64,
    /// Every credit the bill carries, this one included.
    pub credited_fen: i64,
    /// What the bill still asks for.
    pub due_fen: i64,
    /// The account's balance after the credit (as it stands now, for a reference used before).
    pub balance_fen: i64,
    pub restored: bool,
    pub at: DateTime<Utc>,
}

/// An import an operator takes back (`billrun usage retract`, `usage import --replaces`).
#[derive(Clone, Debug)]
pub struct Retraction {
    pub import_id: i64,
    pub reason: String,
    /// Who retracted it.
    pub by: Option<String>,
}

/// A retracted import, as the retraction left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retracted {
    pub import_id: i64,
    pub file_name: String,
    pub rows: u64,
    pub calls: i64,
    pub at: DateTime<Utc>,
    pub by: Option<String>,
    pub reason: String,
    /// The record of the retraction: an import of no rows, newer than what settled months read.
    pub record_id: i64,
    /// The settled months its rows fall in: the next settle of each issues the adjustments.
    pub settled_months: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetractOutcome {
    Retracted(Retracted),
    /// It was retracted before: nothing changed.
    AlreadyRetracted(Retracted),
}

/// What an accepted usage file added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageImported {
    /// `None`: nothing was imported, every row being an event imported before (a re-send).
    pub import_id: Option<i64>,
    /// Rows added (duplicates of events imported before are not).
    pub rows: u64,
    pub calls: i64,
    /// Rows falling in months already settled: not on any bill yet. By month, with how many
    /// rows each.
    pub late: Vec<(String, u64)>,
    /// Rows not added because their account's event was imported before, by an earlier import
    /// or an earlier line of this one.
    pub duplicates: u64,
    /// The import this one replaced (`--replaces`), retracted in the same transaction.
    pub replaced: Option<Retracted>,
}

/// A usage file's rows as an import reads them, checked one by one, then its fingerprints.
pub trait UsageSource: Iterator<Item = Result<NewUsage, Vec<RowError>>> {
    /// Once every row has been read: the file's fingerprints (`None` if reading stopped early,
    /// which a bad row has already reported).
    fn fingerprint(&self) -> Option<Fingerprint>;

    /// Whether rows may carry an `event_id` (known before the first row: a CSV header with the
    /// column, or NDJSON). A store may take a faster path for files without.
    fn may_have_event_ids(&self) -> bool;

    /// Once every row has been read: every good row's calls per account, API and month of the
    /// billing zone, summed by the reader (`None` if reading stopped early). Taken once.
    fn totals(&mut self) -> Option<UsageTotals>;

    /// Whether usage of an account never opened, or dated in a month before the one it opened
    /// in, is taken as it is (`--allow-unopened`) rather than refused.
    fn accepts_unopened(&self) -> bool {
        false
    }

    /// Once every row has been read: the hashes of the good rows without an event id
    /// (`repeats`), to tell rows sent twice. Taken once; `None` if the reader keeps none.
    fn row_hashes(&mut self) -> Option<repeats::RowHashes> {
        None
    }

    /// Whether a file whose rows repeat those of earlier imports is taken as it is
    /// (`--allow-repeats`) rather than refused.
    fn accepts_repeats(&self) -> bool {
        false
    }

    /// The chunks of the file's content (`input::stored`) finished since the last call, which
    /// the store writes in the import's transaction as it goes.
    fn take_chunks(&mut self) -> Vec<StoredChunk>;

    /// Once every row has been read: what the whole content was (its SHA-256, length and
    /// chunks), recorded with the import (`None` if reading stopped early).
    fn content(&self) -> Option<Content>;
}

/// An import of rows, with what `verify` reads back of it.
#[derive(Clone, Debug)]
pub struct StoredImport {
    pub import_id: i64,
    pub file_name: String,
    /// Of the file as given (gzip-compressed, if it was).
    pub sha256: String,
    /// The rows and calls it counted when imported.
    pub rows: i64,
    pub calls: i64,
    /// What its kept content was when imported, and how it reads back; `None` for an import
    /// made before content was kept in a form that reads back (`billrun migrate` rebuilds it).
    pub content: Option<Content>,
    /// The lines it skipped, as stored (`input::replay::SkippedLines::encode`).
    pub skipped_lines: Option<Vec<u8>>,
    /// The instants of its first and last rows.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Taken back: its rows count nowhere.
    pub retracted: bool,
    /// The import that records its retraction, if it was taken back.
    pub record_id: Option<i64>,
    /// Its kept content moved to files (`billrun archive`): the database no longer holds its
    /// chunks.
    pub archived: Option<Archived>,
}

/// What decides whether an import may be archived, as read inside the archiving transaction.
#[derive(Clone, Debug)]
pub struct ArchiveState {
    /// Every import of rows ([`Store::stored_imports`]).
    pub imports: Vec<StoredImport>,
    pub settled: Vec<SettledMonth>,
    pub late: Vec<LateUsage>,
    /// The zone the month's totals are kept for.
    pub zone: Option<Tz>,
}

/// What the database keeps of an import whose content was archived (`jobs::archive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archived {
    pub at: DateTime<Utc>,
    /// Of the content file: the stored chunks, one after another.
    pub sha256: String,
    /// The calls its rows gave each month (`YYYY-MM`) of the billing zone, as read back when it
    /// was archived (all its rows, whether they count or not).
    pub calls: std::collections::BTreeMap<String, i64>,
}

/// A settled month: its period, the newest import its settlement read, and the zone it was
/// settled in (`None`: settled before the zone was recorded).
#[derive(Clone, Debug)]
pub struct SettledMonth {
    pub month: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub through_import: i64,
    pub tz: Option<String>,
}

/// An account's calls of an API on the current bill of a month.
#[derive(Clone, Debug)]
pub struct BilledCalls {
    pub account_id: String,
    pub api: String,
    pub calls: i64,
}

/// One stored usage total: an account's calls of an API in a month of the billing zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTotal {
    pub month: String,
    pub account_id: String,
    pub api: String,
    pub calls: i64,
}

#[derive(Clone, Debug)]
pub struct PackView {
    pub pack_id: String,
    pub kind: PackKind,
    pub account_id: String,
    pub api: String,
    pub calls: i64,
    pub remaining: i64,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub purchased_at: DateTime<Utc>,
    pub month: Option<String>,
}

/// The month a page of accounts is settled for, and when.
pub struct SettlePage {
    pub month: Month,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The month's free packs, granted to the page's accounts where missing.
    pub grant: FreeGrant,
    /// The catalog version that prices the month.
    pub version: CatalogVersion,
    /// Compute and report, then roll back: write nothing.
    pub dry_run: bool,
}

/// What a page wrote (or, in a dry run, would have written) for one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillPreview {
    pub account_id: String,
    pub revision: i32,
    pub total_fen: i64,
    pub debited_fen: i64,
    pub balance_after_fen: i64,
    pub in_arrears: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// Bills written: originals and adjustments.
    pub bills: u64,
    /// Of which adjustments (revision 2 and later).
    pub adjustments: u64,
    /// Net amount debited (credits count negative).
    pub total_fen: i64,
    pub arrears: u64,
}

/// One committed page of a settle: its last account, what it wrote, and (in a dry run) what
/// it would have written.
pub struct PageDone {
    pub last: Option<String>,
    pub outcome: PageOutcome,
    pub previews: Vec<BillPreview>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthTotals {
    /// Accounts billed for the month.
    pub bills: u64,
    /// What the month's revisions moved: the sum of what each bill asks for, after its credit
    /// notes.
    pub total_fen: i64,
    /// What the month's credit notes gave back.
    pub credited_fen: i64,
    pub accounts_in_arrears: u64,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Where a recorded run stands, or how it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunOutcome {
    /// Started, not ended (or killed before it could record its end).
    #[default]
    Running,
    /// It did what was due.
    Ok,
    /// Nothing was due.
    NothingToDo,
    /// A stop signal ended it cleanly.
    Stopped,
    /// Another run held what it needed.
    Busy,
    Failed,
    /// Refused before it did anything: it asked for what cannot be done (a month that has not
    /// ended, a month in another billing zone; exit 3). An operator's typo, not a failure of
    /// the job: it pages nobody.
    Refused,
}

impl RunOutcome {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Ok => "ok",
            RunOutcome::NothingToDo => "nothing-to-do",
            RunOutcome::Stopped => "stopped",
            RunOutcome::Busy => "busy",
            RunOutcome::Failed => "failed",
            RunOutcome::Refused => "refused",
        }
    }

    /// The outcome a stored name stands for.
    pub fn parse(name: &str) -> Option<RunOutcome> {
        use RunOutcome::*;
        [Running, Ok, NothingToDo, Stopped, Busy, Failed, Refused]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// How a recorded run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunEnd {
    pub ended_at: DateTime<Utc>,
    pub outcome: RunOutcome,
    pub month: Option<String>,
    pub accounts_billed: u64,
    pub billed_fen: i64,
    pub suspended: u64,
    pub message: String,
}

/// A usage import, for `billrun usage imports`.
#[derive(Clone, Debug)]
pub struct ImportView {
    pub import_id: i64,
    pub file_name: String,
    pub sha256: String,
    pub rows: u64,
    pub calls: i64,
    /// Rows skipped as events already imported.
    pub duplicates: u64,
    /// The earliest and latest usage time among its rows (none for an import of no new rows).
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub imported_at: DateTime<Utc>,
    /// The import this one is the record of the retraction of.
    pub retracts: Option<i64>,
    /// When it was retracted, by whom and why, and the import that replaced it.
    pub retracted_at: Option<DateTime<Utc>>,
    pub retracted_by: Option<String>,
    pub retraction_reason: Option<String>,
    pub replaced_by: Option<i64>,
}

/// A recorded run, for `billrun runs list`.
#[derive(Clone, Debug)]
pub struct RunView {
    pub run_id: i64,
    pub command: String,
    pub month: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: RunOutcome,
    pub accounts_billed: i64,
    pub billed_fen: i64,
    pub suspended: i64,
    pub message: String,
}

/// One row of the finance export: a bill line with its bill and account.
#[derive(Clone, Debug)]
pub struct ExportLine {
    pub month: String,
    pub bill_id: String,
    pub revision: i32,
    pub kind: RevisionKind,
    /// What this revision debited (+) or credited (−), in fen.
    pub debited_fen: i64,
    pub rounding: String,
    pub account_id: String,
    pub account_name: String,
    pub api: String,
    pub total_calls: i64,
    pub free_calls: i64,
    pub prepaid_calls: i64,
    pub billable_calls: i64,
    pub tier: i64,
    pub tier_from: i64,
    pub tier_to: Option<i64>,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub pricing: String,
    pub tier_basis: String,
    pub catalog_version: String,
    pub bill_exact_total: Decimal,
    pub bill_total_fen: i64,
    pub rounding_adjustment: Decimal,
    pub balance_before_fen: i64,
    pub balance_after_fen: i64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub settled_at: DateTime<Utc>,
    /// The credits the bill carries at this revision, in fen.
    pub credited_fen: i64,
    /// A credit revision's reference, reason and issuer.
    pub credit: Option<CreditNote>,
}

/// One bill line's exact amount with the arithmetic of its bill, as stored: what `verify`
/// checks each bill's total against.
#[derive(Clone, Debug)]
pub struct LineAmount {
    pub bill_id: String,
    pub rounding: String,
    pub exact_total: Decimal,
    pub total_fen: i64,
    pub rounding_adjustment: Decimal,
    /// The line's exact amount.
    pub amount: Decimal,
}

/// Who issued a credit, why, and under which reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditNote {
    pub reference: String,
    pub reason: String,
    pub by: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EventView {
    pub event_id: i64,
    pub account_id: String,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub bill_id: Option<String>,
    pub suspend_at: Option<DateTime<Utc>>,
    pub balance_fen: i64,
    /// A pack alert's pack and threshold.
    pub pack: Option<webhooks::PackNotice>,
}

/// What `mark_settled` records.
pub struct Settled<'a> {
    pub month: Month,
    pub shard: Shard,
    pub period: &'a BilledPeriod,
    pub version: &'a str,
    pub now: DateTime<Utc>,
    pub through_import: i64,
}

/// How a month's settlement ended, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkSettled {
    /// This shard is recorded as done; `month_complete` once every shard of its split is.
    Done { month_complete: bool },
    /// Usage for the month was imported after the run read the month's usage: it is not on
    /// every bill yet, so nothing was recorded and the month must be read again.
    UsageArrived,
}

/// The period a month was billed for, as its bills and settlement recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BilledPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The billing time zone it was settled in, if recorded.
    pub tz: Option<String>,
}

/// Everything the jobs need from a database.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Held while a month is being settled; dropping it releases the month.
    type MonthLock;

    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;

    /// Checks, without changing anything, that the database has every migration this binary
    /// has and no other: what a command that only reads needs.
    async fn check_schema(&self) -> StoreResult<()>;

    /// Closes the store's connections, waiting for them to end cleanly (SQLite then folds
    /// its write-ahead log back into the database file).
    async fn close(&self);

    /// Takes the month for this run, or `None` if another run holds it. This only avoids wasted
    /// work: the unique keys on bills and ledger entries are the real guarantee.
    async fn lock_month(&self, month: Month, shard: Shard) -> StoreResult<Option<Self::MonthLock>>;

    /// Adds accounts and their opening balances (as ledger entries), granting `grant`'s free
    /// packs to those opened before it ends. All or nothing: ids already present are refused
    /// ([`StoreError::Rejected`]) and nothing is written.
    async fn import_accounts(&self, rows: &[NewAccount], grant: &FreeGrant, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Opens an account's service at `at` and grants `grant`'s free packs to it
    /// ([`StoreError::UnknownAccount`] if there is no such account).
    async fn activate(&self, account_id: &str, at: DateTime<Utc>, grant: &FreeGrant) -> StoreResult<ActivateOutcome>;

    /// How many accounts there are.
    async fn count_accounts(&self) -> StoreResult<u64>;

    /// Every account, sorted by id, handed to `each`.
    async fn accounts(&self, each: &mut dyn FnMut(AccountView) -> anyhow::Result<()>) -> StoreResult<()>;

    /// Credits an account, restoring its service if the balance reaches ≥ 0. A `reference`
    /// makes the recharge idempotent. [`StoreError::UnknownAccount`] if there is no such
    /// account.
    async fn recharge(
        &self,
        account_id: &str,
        amount_fen: i64,
        at: DateTime<Utc>,
        reference: Option<&str>,
    ) -> StoreResult<RechargeOutcome>;

    /// Issues a credit against the account's bill for the month, as a revision of kind `credit`
    /// planned by `domain::credit`, with its ledger entry, the service restored if the balance
    /// reaches ≥ 0, and `bill.issued` queued: all in one transaction. A reference used before
    /// credits nothing. [`StoreError::UnknownAccount`] if there is no such account.
    async fn credit(&self, request: &CreditRequest, now: DateTime<Utc>) -> StoreResult<CreditOutcome>;

    /// Takes a usage import back, in one transaction: its calls come off the month's totals, its
    /// rows move to `retracted_usage` (its event ids free again), it is marked with when, by
    /// whom and why, and a record of no rows newer than any settlement tells `run` which
    /// settled months to settle again. A retraction of a retracted import changes nothing.
    /// [`StoreError::UnknownImport`] if there is no such import.
    async fn retract_import(&self, retraction: &Retraction, now: DateTime<Utc>) -> StoreResult<RetractOutcome>;

    /// Adds a usage file's rows, all or none. Rows that failed parsing arrive as `Err` and are
    /// reported together with unknown accounts. A file whose bytes or rows were imported
    /// before (its fingerprints, known once the rows are read) is refused
    /// ([`StoreError::AlreadyImported`]). A row whose `event_id` the same account already has
    /// (from an earlier import or an earlier line) is skipped and counted as a duplicate.
    ///
    /// In the same transaction, the file's calls are added to the month's usage totals of
    /// billing zone `zone` (built from the raw rows first, if they are kept for another zone or
    /// not built yet), from the sums the source made while reading ([`UsageSource::totals`],
    /// which must be of `zone`).
    async fn import_usage(
        &self,
        file_name: &str,
        rows: &mut dyn UsageSource,
        now: DateTime<Utc>,
        zone: Tz,
        replaces: Option<&Retraction>,
    ) -> StoreResult<UsageImported>;

    /// Makes the month's usage totals, which [`Store::month_usage`] reads, those of billing
    /// zone `zone`: if they are kept for another zone, or not built yet (a database from
    /// before they existed), builds them from the raw usage rows, keeping imports out
    /// meanwhile. Returns whether it built them.
    async fn ensure_usage_totals(&self, zone: Tz) -> StoreResult<bool>;

    /// The billing zone whose months the usage totals are kept for; `None` before they are
    /// first built (by an import or a settle).
    async fn usage_totals_zone(&self) -> StoreResult<Option<Tz>>;

    /// The settled months (`month` only, if given), in month order.
    async fn settled_months(&self, month: Option<Month>) -> StoreResult<Vec<SettledMonth>>;

    /// Hands the calls of each API on each current bill of `month` to `each`, in no order.
    async fn billed_calls(&self, month: &str, each: &mut dyn FnMut(BilledCalls)) -> StoreResult<()>;

    /// How many usage totals `month` has (`None`: every month).
    async fn count_usage_totals(&self, month: Option<Month>) -> StoreResult<u64>;

    /// Hands each usage total of `month` (`None`: every month) to `each`, in no order.
    async fn usage_totals(&self, month: Option<Month>, each: &mut dyn FnMut(StoredTotal)) -> StoreResult<()>;

    /// The newest usage import committed: a settle that reads the month's usage after this
    /// has seen every import up to it.
    async fn import_watermark(&self) -> StoreResult<i64>;

    /// Settled months with usage imported after the settlement read them (an import newer
    /// than the month's watermark whose rows reach into the month), oldest first, with what
    /// waits to be billed into each.
    async fn late_usage(&self) -> StoreResult<Vec<LateUsage>>;

    /// The period `month` was billed for, if it has any bill or was settled.
    async fn billed_period(&self, month: Month) -> StoreResult<Option<BilledPeriod>>;

    /// The currency the database keeps money in, if recorded.
    async fn currency(&self) -> StoreResult<Option<String>>;

    /// Records `currency` as the database's, unless one is recorded; returns the recorded one.
    async fn adopt_currency(&self, currency: &str) -> StoreResult<String>;

    /// The catalog versions the database prices with, oldest first (none: not stored yet).
    async fn catalog_versions(&self) -> StoreResult<Vec<StoredVersion>>;

    /// Stores catalog versions, all in one transaction; a version already stored under the
    /// same name is left as it is (the caller compares what it reads back).
    async fn add_catalog_versions(&self, versions: &[StoredVersion]) -> StoreResult<()>;

    /// The catalog versions the database's bill lines name.
    async fn billed_catalog_versions(&self) -> StoreResult<Vec<String>>;

    /// Adds prepaid packs, all or none: a pack id already present, or an unknown account, is
    /// refused ([`StoreError::Rejected`]).
    async fn import_packs(&self, rows: &[NewPack]) -> StoreResult<u64>;

    /// Every pack, sorted by account, API and id.
    async fn packs(&self) -> StoreResult<Vec<PackView>>;

    /// Records each of `alerts` (account, alert) at `now` as a pack-alert event and queues its
    /// webhooks, in one transaction; an alert already recorded for its pack and threshold is
    /// left alone. Returns how many were new.
    async fn record_pack_alerts(&self, alerts: &[(String, PackAlert)], now: DateTime<Utc>) -> StoreResult<u64>;

    /// How far pack alerts have been checked, as [`Store::set_pack_alerts_checked`] recorded it.
    async fn pack_alerts_checked(&self) -> StoreResult<Option<String>>;

    /// Records how far pack alerts have been checked.
    async fn set_pack_alerts_checked(&self, through: &str) -> StoreResult<()>;

    /// What each of `accounts` that exists holds for `grant`'s month, has used of it so far
    /// (its usage totals, in the zone they are kept for) and was alerted of, read in one
    /// transaction.
    /// Accounts that do not exist are left out.
    async fn holdings(&self, grant: &FreeGrant, accounts: &[String]) -> StoreResult<HashMap<String, Holding>>;

    /// Records the month's grant, from which every account opened before the month ended has
    /// the month's free packs (what an earlier record of the month gave stays:
    /// [`FreeGrant::keeping`]). Returns how many packs it made due, and the grant as recorded.
    async fn grant_free_packs(&self, grant: &FreeGrant, now: DateTime<Utc>) -> StoreResult<(u64, FreeGrant)>;

    /// Streams the month's usage totals, in account order, of every account whose usage is not
    /// exactly what its current bill for the month counted: accounts with no bill yet, and
    /// accounts with late usage. One set-based query, read by a task of its own.
    /// It reads the month's usage totals: [`Store::ensure_usage_totals`] must have made them
    /// those of billing zone `zone` first. Each read checks, in its own snapshot, that they
    /// still are; if a command under another zone built them again meanwhile, the stream ends
    /// with an error (busy: retry).
    async fn month_usage(&self, month: Month, zone: Tz, shard: Shard) -> StoreResult<UsageStream>;

    /// Settles the stream's accounts `page_size` at a time, in stream order, each page one
    /// transaction, and hands each page's result to `done` as it commits. Each page bills,
    /// debits and flags its accounts: an original bill for an account without one, an
    /// adjustment for one whose recomputed bill differs from its current revision, nothing for
    /// the others (including any a concurrent run billed since the stream read them). With
    /// `page.dry_run` every page is rolled back. On an error the run stops there: a page after
    /// the failed one may have committed already (each page is whole, and a re-run finishes
    /// the rest), but this run does not count it.
    async fn settle_pages(
        &self,
        page: &SettlePage,
        usage: UsageStream,
        page_size: usize,
        done: &mut dyn FnMut(PageDone),
    ) -> StoreResult<()>;

    /// Records that every account of `shard` has been billed for the month with every usage
    /// import up to `through_import`, and, once every shard of its split is done, that the
    /// month is settled. Refuses (and records nothing) if an import newer than
    /// `through_import` reaches into the month: checked under a lock that keeps imports out
    /// until the record is committed.
    async fn mark_settled(&self, settled: &Settled<'_>) -> StoreResult<MarkSettled>;

    /// Bills, total and arrears of a month so far.
    async fn month_totals(&self, month: Month) -> StoreResult<MonthTotals>;

    /// Suspends accounts whose `suspend_at` has come while their balance is still negative.
    /// Returns their ids.
    async fn enforce(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>>;

    /// The bill lines of every revision, by month, account, revision and API, handed to `each`:
    /// of one month or all, of one account or all.
    async fn export_lines(
        &self,
        month: Option<Month>,
        account: Option<&str>,
        each: &mut dyn FnMut(ExportLine) -> anyhow::Result<()>,
    ) -> StoreResult<()>;

    /// Every event, oldest first.
    async fn events(&self) -> StoreResult<Vec<EventView>>;

    /// Whether the month's settlement has run to the end.
    async fn is_settled(&self, month: Month) -> StoreResult<bool>;

    /// The earliest `suspend_at` of an account not yet suspended whose balance is negative.
    async fn next_suspension(&self) -> StoreResult<Option<DateTime<Utc>>>;

    /// Records that a run started; returns its id.
    async fn run_started(&self, command: &str, month: Option<Month>, at: DateTime<Utc>) -> StoreResult<i64>;

    /// Records how a run ended.
    async fn run_ended(&self, run_id: i64, end: &RunEnd) -> StoreResult<()>;

    /// The latest `limit` runs, newest first.
    async fn runs(&self, limit: u32) -> StoreResult<Vec<RunView>>;

    /// The latest `limit` usage imports, newest first.
    async fn usage_imports(&self, limit: u32) -> StoreResult<Vec<ImportView>>;

    /// Every import of rows (not the record of a retraction), oldest first, with its kept
    /// content.
    async fn stored_imports(&self) -> StoreResult<Vec<StoredImport>>;

    /// Chunk `seq` of the stored content of import `import_id`, if there is one.
    async fn stored_chunk(&self, import_id: i64, seq: i64) -> StoreResult<Option<StoredChunk>>;

    /// Records that import `import_id`'s kept content is archived and drops its chunks, in one
    /// transaction that keeps imports, retractions and settles out: first it reads what decides
    /// whether the import may be archived ([`ArchiveState`]) again and hands it to `recheck`,
    /// whose refusal (a text) leaves everything as it was and is returned as busy (exit 4).
    /// False (nothing done) if it is archived already, or keeps no content.
    async fn archive_import(
        &self,
        import_id: i64,
        archived: &Archived,
        recheck: &(dyn Fn(&ArchiveState) -> Result<(), String> + Send + Sync),
    ) -> StoreResult<bool>;

    /// Writes import `import_id`'s chunks back, as `next` gives them (in order, until `None`),
    /// and clears its archive record, in one transaction. False (nothing done) if it is not
    /// archived.
    async fn restore_import(
        &self,
        import_id: i64,
        next: &mut (dyn FnMut() -> anyhow::Result<Option<StoredChunk>> + Send),
    ) -> StoreResult<bool>;

    /// The exact amount of each bill line of `month` (or every month) with its bill's
    /// arithmetic, handed to `each`, the lines of a bill one after another.
    async fn line_amounts(
        &self,
        month: Option<Month>,
        each: &mut dyn FnMut(LineAmount) -> anyhow::Result<()>,
    ) -> StoreResult<()>;

    /// Runs one of `verify`'s checks for `month` (or every month): one text per breach.
    async fn breaches(&self, check: BookCheck, month: Option<Month>) -> StoreResult<Vec<String>>;

    /// One account; [`StoreError::UnknownAccount`] if there is no such account.
    async fn account(&self, account_id: &str) -> StoreResult<AccountView>;

    /// What the metrics report, read at `now`: the latest run and success of each command,
    /// accounts by status, overdue suspensions, the spans of the usage imports and the
    /// settled months.
    async fn health(&self, now: DateTime<Utc>) -> StoreResult<Health>;

    /// Every revision of `month`'s bills that left its account's balance negative, by account
    /// and revision, with the service stop the account was under right after it: the
    /// `suspend_at` of the revision's own arrears notice, or else (a credit that left the
    /// balance still negative) that of the account's latest arrears notice recorded by then.
    async fn arrears_bills(&self, month: Month) -> StoreResult<Vec<ArrearsBill>>;

    /// Records the endpoints of a webhooks file (never their secrets) and sets the event types
    /// each wants. From then on every bill and event of those types gets a pending delivery
    /// for it, in the transaction that records the bill or event. Endpoints not named are left
    /// as they are.
    async fn register_endpoints(&self, endpoints: &[EndpointRecord], now: DateTime<Utc>) -> StoreResult<()>;

    /// Claims up to `limit` deliveries of the enabled `endpoints` that are due at `now` and not
    /// leased to another deliverer, leasing them until `lease_until`; the earliest due first.
    async fn claim_deliveries(
        &self,
        endpoints: &[String],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;

    /// Records how attempts ended, all in one transaction; a 410 also disables the endpoint.
    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> StoreResult<()>;

    /// Deliveries, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliveryView>>;

    /// Makes deliveries to `endpoint` due again at `now`, each with a new schedule: of one bill
    /// or event (whatever the endpoint's subscriptions), or of every bill and event of its
    /// types recorded since a time. Creates those it lacks (recorded before it was
    /// configured). Returns how many are due, or `None` if no endpoint has that name.
    async fn replay(&self, endpoint: &str, which: &Replay, now: DateTime<Utc>) -> StoreResult<Option<u64>>;

    /// Enables an endpoint disabled by a 410; false if there is no such endpoint.
    async fn enable_endpoint(&self, endpoint: &str) -> StoreResult<bool>;

    /// Forgets an endpoint taken out of the webhooks file: nothing more is queued for it, and
    /// its pending deliveries are dropped. Returns how many were, or `None` if there is no
    /// such endpoint.
    async fn remove_endpoint(&self, endpoint: &str) -> StoreResult<Option<u64>>;

    /// When the next pending delivery of the enabled `endpoints` is due.
    async fn next_delivery(&self, endpoints: &[String]) -> StoreResult<Option<DateTime<Utc>>>;
}

/// The latest run of one command, and when it last succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRuns {
    /// As recorded: `settle`, `settle --shard 1/4`, `enforce`, `run`, `daemon`.
    pub command: String,
    pub last_started_at: DateTime<Utc>,
    /// `None`: the latest run has not ended (or was killed before it could say so).
    pub last_ended_at: Option<DateTime<Utc>>,
    pub last_outcome: RunOutcome,
    /// When a run of it last ended `ok` or `nothing-to-do`.
    pub last_success: Option<DateTime<Utc>>,
}

/// Accounts by status at an instant (see [`AccountStatus::of`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub active: u64,
    pub arrears: u64,
    pub suspended: u64,
    pub inactive: u64,
}

/// What an on-call engineer's metrics are made of, read from the database at an instant, so
/// that every replica of the job reports the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Per command, by command.
    pub runs: Vec<CommandRuns>,
    pub accounts: StatusCounts,
    /// Accounts whose `suspend_at` has passed with a negative balance, not suspended yet.
    pub overdue_suspensions: u64,
    /// The first and last instant of each committed usage import, oldest import first.
    pub import_spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Settled months, oldest first.
    pub settled_months: Vec<Month>,
    /// Settled months with late usage waiting to be billed, oldest first.
    pub late_usage: Vec<LateUsage>,
    /// Webhook deliveries, per endpoint billrun was given.
    pub webhooks: Vec<EndpointHealth>,
}

/// A catalog version as the database keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    pub version: String,
    pub effective_from: String,
    pub currency: String,
    /// The version as a `[[versions]]` block of a catalog file
    /// (`domain::catalog::CatalogVersion::to_toml`).
    pub definition: String,
    /// The file it was imported from.
    pub source: String,
    pub imported_at: DateTime<Utc>,
}

/// Usage imported for a settled month after its settlement read it, and not billed yet: the
/// next `run` (or `settle --month`) bills it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateUsage {
    pub month: Month,
    /// The imports waiting.
    pub imports: u64,
    /// Their rows and calls, whole: an import that also reaches into other months counts
    /// whole for each.
    pub rows: u64,
    pub calls: u64,
    /// When the oldest of them was imported.
    pub oldest_imported_at: DateTime<Utc>,
}

/// A bill revision that left its account in arrears (balance < 0 after its debit or credit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrearsBill {
    pub bill_id: String,
    pub account_id: String,
    pub revision: i32,
    pub balance_after_fen: i64,
    /// When service stops (or stopped) unless a recharge brings the balance to ≥ 0; `None` if
    /// no stop was ever scheduled (say, a negative opening balance and only credits since).
    pub suspend_at: Option<DateTime<Utc>>,
}

/// The database URL with any password replaced by `***`, for messages and logs.
///
/// It does not trust the URL to be well formed, since a mistyped one is exactly the one that
/// ends up in an error message: the password of `user:password@` is masked wherever the scheme
/// is (`postgres://`, `postgres:/`, none at all), and so is the value of any query parameter
/// whose name speaks of a password, secret or token (`?password=…`, `&sslpassword=…`).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.rfind('@') {
        Some(at) => {
            let prefix = &base[..at];
            let start = match prefix.find("://") {
                Some(i) => i + 3,
                None => ["postgresql:", "postgres:", "sqlite:"]
                    .iter()
                    .find(|s| prefix.starts_with(*s))
                    .map(|s| s.len() + prefix[s.len()..].bytes().take_while(|&b| b == b'/').count())
                    .unwrap_or(0),
            };
            match prefix[start..].find(':') {
                Some(colon) => format!("{}***{}", &base[..start + colon + 1], &base[at..]),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if ["pass", "secret", "token"]
                        .iter()
                        .any(|w| k.to_ascii_lowercase().contains(w)) =>
                {
                    format!("{k}=***")
                }
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        for (url, shown) in [
            ("postgres://bill:s3cret@db:5432/x", "postgres://bill:***@db:5432/x"),
            ("postgres://bill:p@ss@db/x", "postgres://bill:***@db/x"),
            ("sqlite://billrun.db", "sqlite://billrun.db"),
            ("postgres://bill@db/x", "postgres://bill@db/x"),
            (
                "postgres://bill@db/x?password=s3cret&sslmode=require",
                "postgres://bill@db/x?password=***&sslmode=require",
            ),
            (
                "postgres://db/x?sslmode=require&PassWord=s3cret",
                "postgres://db/x?sslmode=require&PassWord=***",
            ),
            ("postgres:/bill:s3cret@db/x", "postgres:/bill:***@db/x"),
            ("postgresql:bill:s3cret@db/x", "postgresql:bill:***@db/x"),
            ("bill:s3cret@db/x", "bill:***@db/x"),
            ("sqlite://bill:s3cret@/tmp/x.db", "sqlite://bill:***@/tmp/x.db"),
            ("mysql://bill:s3cret@db/x", "mysql://bill:***@db/x"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("s3cret"));
        }
    }
}
