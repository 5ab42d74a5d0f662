//! `billrun report`: reads what the month report shows from the store and writes the page
//! (`reporting::html` renders it) to a file, whole or not at all, or to standard output.
//!
//! The history is the month and up to 11 months before it, from the first one with bills.

use super::summary::month_summary;
use super::Ctx;
use crate::domain::month::Month;
use crate::output::Destination;
use crate::reporting::html::{render, ArrearsRow, MonthPoint, ReportData, ARREARS_SHOWN};
use crate::reporting::summary::MonthSummary;
use crate::store::Store;
use std::io::Write;
use std::path::Path;

/// How many months the history chart covers, this one included.
pub const HISTORY_MONTHS: usize = 12;

/// Gathers the report's figures for `month`.
pub async fn report_data<S: Store>(store: &S, ctx: &Ctx, month: Month) -> anyhow::Result<ReportData> {
    let summary = month_summary(store, ctx, month).await?;
    let mut history = Vec::new();
    let mut settled_at = None;
    let mut m = month;
    for _ in 0..HISTORY_MONTHS {
        let t = store.month_totals(m).await?;
        if m == month {
            settled_at = t.settled_at;
        }
        history.push(MonthPoint {
            month: m.to_string(),
            bills: t.bills,
            billed_fen: t.total_fen,
        });
        m = m.prev();
    }
    history.reverse();
    let first = history.iter().position(|p| p.bills > 0).unwrap_or(history.len() - 1);
    history.drain(..first);
    let mut worst: Vec<_> = summary.arrears.clone();
    worst.sort_by(|a, b| b.owed_fen().cmp(&a.owed_fen()).then(a.account_id.cmp(&b.account_id)));
    worst.truncate(ARREARS_SHOWN);
    let mut arrears = Vec::with_capacity(worst.len());
    for bill in worst {
        let now = store.account(&bill.account_id).await?;
        arrears.push(ArrearsRow {
            status_now: now.status(ctx.now).as_str().to_owned(),
            balance_now: now.balance,
            bill,
        });
    }
    let version = ctx.catalog.for_month(month);
    Ok(ReportData {
        month: month.to_string(),
        tz: ctx.tz,
        generated_at: ctx.now,
        currency: super::export::currency(ctx, month),
        catalog_version: version.map(|v| v.version.clone()).unwrap_or_default(),
        settled_at,
        summary,
        history,
        arrears,
    })
}

/// Writes the month report to `path`, or to standard output. Returns the month's summary.
pub async fn report<S: Store>(store: &S, ctx: &Ctx, month: Month, path: Option<&Path>) -> anyhow::Result<MonthSummary> {
    super::check_settled(store, month).await?;
    let data = report_data(store, ctx, month).await?;
    let page = render(&data);
    let mut out = Destination::open(path)?;
    out.write_all(page.as_bytes())?;
    out.finish()?;
    Ok(data.summary)
}
