//! Grant and settle: the month's free packs, then one bill per account with usage, debited
//! once, with arrears flagged (docs/rules.md, rules 3–8).
//!
//! The month's usage is totalled by the database in one query and streamed here in account
//! order; accounts are priced and written a page at a time, each page one transaction. A run
//! that is killed leaves whole pages behind; the next run's stream leaves out accounts that
//! already have their bill for the month, so nobody is charged twice and the result is the
//! same as one clean run.

use super::Ctx;
use crate::domain::month::Month;
use crate::domain::shard::Shard;
use crate::error::{input_error, Busy, Refused};
use crate::store::{
    BillPreview, BilledPeriod, FreeGrant, MarkSettled, MonthTotals, PageDone, SettlePage, Settled, Store,
};

/// What a settle run did, and where the month stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleSummary {
    pub month: Month,
    pub catalog_version: String,
    pub packs_granted: u64,
    /// Bills written by this run: originals and adjustments.
    pub billed_now: u64,
    /// Of which adjustments.
    pub adjusted_now: u64,
    /// Net amount debited by this run (credits count negative).
    pub billed_now_fen: i64,
    pub arrears_now: u64,
    pub month_totals: MonthTotals,
    /// A dry run: what would have been written, and nothing was.
    pub dry_run: bool,
    pub previews: Vec<BillPreview>,
    /// The shard this run settled (`0/1`: every account).
    pub shard: Shard,
    /// Every shard of the month is done: the month counts as settled.
    pub month_settled: bool,
}

/// Grants a month's free packs to every account opened before it ended: records the month's
/// grant, from which they follow. Refuses a month billed for another period (another billing
/// time zone), whose packs' window would move under its bills. Returns how many packs it made
/// due, and the grant as recorded (what an earlier record of the month gave stays).
pub async fn grant<S: Store>(store: &S, ctx: &Ctx, month: Month) -> anyhow::Result<(u64, FreeGrant)> {
    let grant = ctx.free_grant(month)?;
    let period = BilledPeriod {
        start: grant.start,
        end: grant.end,
        tz: Some(ctx.tz.name().to_owned()),
    };
    check_period(store, ctx, month, &period).await?;
    record_grant(store, ctx, grant).await
}

/// Records `grant` (its month's period already checked).
async fn record_grant<S: Store>(store: &S, ctx: &Ctx, grant: FreeGrant) -> anyhow::Result<(u64, FreeGrant)> {
    Ok(store.grant_free_packs(&grant, ctx.now).await?)
}

/// How many times a settle reads the month's usage again because imports kept arriving for it
/// while it ran, before it gives up for now (a later run finishes the work).
const MAX_PASSES: u32 = 10;

/// Settles `month`: original bills for accounts without one, adjustments for accounts whose
/// usage changed since their bill. Refuses a month that has not ended at `--now` in the billing
/// time zone, and a month already billed for another period (another time zone). With
/// `dry_run`, computes everything and writes nothing.
///
/// Usage imported while the month is read is not lost: the run notes the newest import before
/// it reads the month's usage, and records the month as settled only if no newer import
/// reaches into it (checked under a lock that keeps imports out). If one does, the month is
/// read again: accounts whose usage changed since their new bill get an adjustment.
pub async fn settle<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    shard: Shard,
    dry_run: bool,
) -> anyhow::Result<SettleSummary> {
    let (start, end) = (month.start(ctx.tz), month.end(ctx.tz));
    if ctx.now < end {
        return Err(anyhow::Error::new(Refused(format!(
            "{month} has not ended yet in {}: it ends at {}, and --now is {}; a month can be settled only after it has ended",
            ctx.tz,
            ctx.local(end),
            ctx.local(ctx.now)
        ))));
    }
    let period = BilledPeriod {
        start,
        end,
        tz: Some(ctx.tz.name().to_owned()),
    };
    check_period(store, ctx, month, &period).await?;
    let version = ctx
        .catalog
        .for_month(month)
        .ok_or_else(|| anyhow::Error::new(Refused(format!("the catalog has no version in force for {month}"))))?;
    let what = if shard.is_all() {
        month.to_string()
    } else {
        format!("{month} shard {shard}")
    };
    let _lock = store.lock_month(month, shard).await?.ok_or_else(|| {
        anyhow::Error::new(Busy(format!(
            "another billrun run is settling {what} right now; this one did nothing (retry later)"
        )))
    })?;
    // The month's usage is read from its totals, which must be those of this billing zone.
    // Building them changes no bill or balance, so a dry run builds them too.
    if store.ensure_usage_totals(ctx.tz).await? {
        tracing::warn!(
            zone = ctx.tz.name(),
            "usage totals built from the imports' kept usage for this billing zone (they were kept for another zone, or not built yet)"
        );
    }
    // The month's free packs follow from its grant as recorded; a dry run records nothing and
    // prices with the catalog's.
    let free = ctx.free_grant(month)?;
    let (packs_granted, free) = if dry_run {
        (0, free)
    } else {
        record_grant(store, ctx, free).await?
    };
    let mut summary = SettleSummary {
        month,
        catalog_version: version.version.clone(),
        packs_granted,
        billed_now: 0,
        adjusted_now: 0,
        billed_now_fen: 0,
        arrears_now: 0,
        month_totals: MonthTotals::default(),
        dry_run,
        previews: Vec::new(),
        shard,
        month_settled: false,
    };
    let page = SettlePage {
        month,
        start,
        end,
        now: ctx.now,
        grant: free,
        version: version.clone(),
        dry_run,
    };
    // Accounts with usage are not counted before the month is read: the bar's total is every
    // account, of which those without usage are passed over.
    let total = store.count_accounts().await?;
    let mut bar = ctx.progress(
        format!("settling {month}: accounts billed, of at most"),
        "accounts",
        Some(total),
    );
    // What this run moved, in all: a sum of 64-bit amounts, kept wide enough never to overflow.
    let mut moved: i128 = 0;
    for pass in 1.. {
        let through_import = store.import_watermark().await?;
        let stream = store.month_usage(month, ctx.tz, shard).await?;
        store
            .settle_pages(&page, stream, ctx.page_size, &mut |done: PageDone| {
                summary.previews.extend(done.previews);
                summary.billed_now += done.outcome.bills;
                summary.adjusted_now += done.outcome.adjustments;
                moved += i128::from(done.outcome.total_fen);
                summary.arrears_now += done.outcome.arrears;
                bar.add(done.outcome.bills);
                tracing::debug!(bills = done.outcome.bills, last = ?done.last, "settled a page");
            })
            .await?;
        if dry_run {
            break;
        }
        let settled = Settled {
            month,
            shard,
            period: &period,
            version: &version.version,
            now: ctx.now,
            through_import,
        };
        match store.mark_settled(&settled).await? {
            MarkSettled::Done { month_complete } => {
                summary.month_settled = month_complete;
                break;
            }
            MarkSettled::UsageArrived if pass < MAX_PASSES => {
                tracing::info!(
                    month = %month,
                    pass,
                    "usage for the month was imported while it was being settled: reading the month again"
                );
            }
            MarkSettled::UsageArrived => {
                return Err(anyhow::Error::new(Busy(format!(
                    "usage for {month} kept arriving while it was being settled ({MAX_PASSES} passes); \
                     what was billed stands, and the next run bills the rest"
                ))))
            }
        }
    }
    bar.finish();
    summary.billed_now_fen = i64::try_from(moved).map_err(|_| {
        input_error(format!(
            "the bills written for {month} add up to more than billrun can show in one total; they are written, \
             and `billrun export bills` lists each"
        ))
    })?;
    summary.month_totals = store.month_totals(month).await?;
    Ok(summary)
}

/// Refuses to settle `month` for `period` if it was billed for another one: bills, adjustments
/// and `verify` all count the usage of the period the month was first billed for, and another
/// time zone would shift it (billing hours of one month twice and of another never).
async fn check_period<S: Store>(store: &S, ctx: &Ctx, month: Month, period: &BilledPeriod) -> anyhow::Result<()> {
    let Some(billed) = store.billed_period(month).await? else {
        return Ok(());
    };
    if billed.start == period.start && billed.end == period.end {
        return Ok(());
    }
    let zone = billed.tz.as_deref().map(|tz| format!(" in {tz}")).unwrap_or_default();
    Err(anyhow::Error::new(Refused(format!(
        "{month} was billed{zone} for [{}, {}); in --tz {} it would be [{}, {}), another period. \
         The billing time zone of a month that has bills cannot change: run with --tz {}",
        billed.start.to_rfc3339(),
        billed.end.to_rfc3339(),
        ctx.tz,
        period.start.to_rfc3339(),
        period.end.to_rfc3339(),
        billed.tz.as_deref().unwrap_or("the zone it was settled in")
    ))))
}
