//! The jobs: import, grant, settle, enforce, export, report. Each is idempotent or refuses to do
//! harm twice, and each takes the clock and the time zone from [`Ctx`] rather than reading them.

pub mod accounts;
pub mod archive;
pub mod billed_usage;
pub mod catalog;
pub mod credit;
pub mod estimate;
pub mod export;
pub mod metrics;
pub mod pack_alerts;
pub mod recount;
pub mod report;
pub mod run;
pub mod settle;
pub mod summary;
pub mod usage;
pub mod verify;
pub mod webhooks;

use crate::domain::catalog::Catalog;
use crate::domain::month::Month;
use crate::error::input_error;
use crate::store::FreeGrant;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use std::path::Path;

/// What every job runs under: the clock, the billing time zone and the catalog.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub catalog: Catalog,
    /// Draw progress bars for long steps (standard error is a terminal); log progress otherwise.
    pub progress: bool,
    /// Accounts settled per transaction.
    pub page_size: usize,
    /// How long after a month ends `run` waits before settling it.
    pub settle_after: chrono::Duration,
}

impl Ctx {
    /// The free packs of `month` under the catalog version in force for it.
    pub fn free_grant(&self, month: Month) -> anyhow::Result<FreeGrant> {
        let version = self.catalog.for_month(month).ok_or_else(|| {
            input_error(format!(
                "the catalog has no version in force for {month} (the earliest takes effect later)"
            ))
        })?;
        Ok(FreeGrant::new(month, month.start(self.tz), month.end(self.tz), version))
    }

    /// Progress of a long step: a bar on a terminal, a log line now and then otherwise.
    pub fn progress(&self, what: String, unit: &'static str, total: Option<u64>) -> crate::progress::Progress {
        crate::progress::Progress::new(what, unit, total, self.progress)
    }

    /// The currency the catalog prices in, which the database's balances are kept in too
    /// (checked when the store is opened).
    pub fn currency(&self) -> &str {
        self.catalog.currency()
    }

    /// The month that contains `--now` in the billing time zone.
    pub fn current_month(&self) -> Month {
        Month::containing(self.now, self.tz)
    }

    /// An instant as RFC 3339 in the billing time zone.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// Refuses to export or report a month that was never settled (it has no bill: an empty export
/// would look like a month without revenue), and warns about a month whose settlement has not
/// finished (a settle under way or stopped, a shard missing): what is shown holds the bills
/// written so far.
pub async fn check_settled<S: crate::store::Store>(store: &S, month: Month) -> anyhow::Result<()> {
    if store.is_settled(month).await? {
        return Ok(());
    }
    let bills = store.month_totals(month).await?.bills;
    if bills == 0 {
        return Err(input_error(format!(
            "{month} has not been settled: it has no bills to show. Settle it first \
             (`billrun settle --month {month}`, or `billrun run` once the month is over)"
        )));
    }
    tracing::warn!(
        month = %month,
        bills,
        "{month} is not settled yet (a settle is under way or was stopped, or a shard is missing): \
         what follows holds the bills written so far"
    );
    Ok(())
}

/// Opens an input file with its name in the error.
pub fn open_input(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| input_error(format!("cannot read {}: {e}", path.display())))
}

/// Suspends the accounts whose `suspend_at` has come at `--now` while their balance is still
/// negative; returns their ids.
pub async fn enforce<S: crate::store::Store>(store: &S, ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    Ok(store.enforce(ctx.now).await?)
}
