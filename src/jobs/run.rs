//! `billrun run`: everything that is due at `--now`, and nothing else.
//!
//! 1. Grants the current month's free packs to open accounts that lack them.
//! 2. Settles the previous month if it is not settled yet. This happens on any day from the 1st
//!    on; after the 3rd it still settles, with a warning that it is late.
//! 3. Settles again every settled month that usage was imported for after its settlement read
//!    it (late usage): its accounts get adjustments, or their first bill.
//! 4. Enforces suspensions whose time has come.
//! 5. Records the pack alerts the current month's usage calls for (`jobs::pack_alerts`), once
//!    usage has been imported since the last check.
//!
//! Each step is idempotent, so running it twice in a row changes nothing the second time.
//! This is what cron and the Kubernetes CronJob call.

use super::settle::{self, SettleSummary};
use super::Ctx;
use crate::domain::month::Month;
use crate::domain::shard::Shard;
use crate::store::Store;
use chrono::Datelike;

/// The last day of the month's settlement window (1st–3rd).
pub const LAST_WINDOW_DAY: u32 = 3;

#[derive(Clone, Debug)]
pub struct RunSummary {
    pub current: Month,
    pub packs_granted: u64,
    /// The previous month's settlement, if this run did it.
    pub settled: Option<SettleSummary>,
    /// Settlements of months with late usage.
    pub late_usage: Vec<SettleSummary>,
    /// The settlement happened after the 1st–3rd window.
    pub late: bool,
    pub suspended: Vec<String>,
    /// Pack alerts recorded; `None`: nothing imported since the last check.
    pub pack_alerts: Option<u64>,
}

impl RunSummary {
    pub fn did_something(&self) -> bool {
        self.packs_granted > 0
            || self.settled.is_some()
            || !self.late_usage.is_empty()
            || !self.suspended.is_empty()
            || self.pack_alerts.is_some_and(|n| n > 0)
    }
}

pub async fn run_due<S: Store>(store: &S, ctx: &Ctx) -> anyhow::Result<RunSummary> {
    let current = ctx.current_month();
    let packs_granted = match ctx.catalog.for_month(current) {
        Some(_) => settle::grant(store, ctx, current).await?.0,
        None => {
            tracing::warn!(month = %current, "no catalog version in force: no free packs granted");
            0
        }
    };
    let previous = current.prev();
    let mut late = false;
    let waits = ctx.now < previous.end(ctx.tz) + ctx.settle_after;
    if waits {
        tracing::info!(
            month = %previous,
            settle_after = %ctx.settle_after,
            "not settling {previous} yet: --settle-after leaves the meters time to deliver its last usage"
        );
    }
    let settled = if waits || store.is_settled(previous).await? || ctx.catalog.for_month(previous).is_none() {
        None
    } else {
        let day = ctx.now.with_timezone(&ctx.tz).day();
        if day > LAST_WINDOW_DAY {
            late = true;
            tracing::warn!(
                month = %previous,
                day,
                "settling {previous} late: the settlement window is the 1st to the {LAST_WINDOW_DAY}rd"
            );
        }
        Some(settle::settle(store, ctx, previous, Shard::ALL, false).await?)
    };
    let mut late_usage = Vec::new();
    for month in store.late_usage().await?.into_iter().map(|l| l.month) {
        tracing::warn!(month = %month, "usage for {month} was imported after it was settled: billing it now");
        late_usage.push(settle::settle(store, ctx, month, Shard::ALL, false).await?);
    }
    let suspended = store.enforce(ctx.now).await?;
    let pack_alerts = super::pack_alerts::check(store, ctx).await?;
    Ok(RunSummary {
        current,
        packs_granted,
        settled,
        late_usage,
        late,
        suspended,
        pack_alerts,
    })
}
