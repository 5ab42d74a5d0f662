//! Month to date: what each account has used of a month not settled yet and what it would be
//! billed, read from the month's usage totals and the packs as they stand, priced by the
//! settle's own rule (`domain::estimate`). Writes nothing.
//!
//! The month's free packs count even where they have not been granted yet (an account
//! opened this morning, a month whose grant has not run): the estimate holds what the settle
//! would grant. Accounts are read a page at a time, in account order, so that everyone's
//! estimate runs in bounded memory.

use super::Ctx;
use crate::domain::estimate::{estimate, AccountEstimate, Elapsed, MonthToDate};
use crate::domain::month::Month;
use crate::domain::shard::Shard;
use crate::error::{input_error, Refused};
use crate::store::{FreeGrant, Holding, Store, StoreError};

/// Accounts read and priced at a time.
const PAGE: usize = 1_000;

/// Checks that `month` can be estimated at `--now` and says how far into it that is: a month
/// that has begun and has no bill yet (a settled month has bills to show instead), whose usage
/// totals are kept for the billing zone.
/// Also says whether usage totals are kept at all (none before the first import).
async fn month_to_date<S: Store>(store: &S, ctx: &Ctx, month: Month) -> anyhow::Result<(MonthToDate, FreeGrant, bool)> {
    let (start, end) = (month.start(ctx.tz), month.end(ctx.tz));
    if ctx.now <= start {
        return Err(anyhow::Error::new(Refused(format!(
            "{month} has not begun in {}: it begins at {}, and --now is {}",
            ctx.tz,
            ctx.local(start),
            ctx.local(ctx.now)
        ))));
    }
    if store.month_totals(month).await?.bills > 0 {
        return Err(anyhow::Error::new(Refused(format!(
            "{month} has been settled: its bills say what was billed (`billrun bills show ACCOUNT --month {month}`, \
             `billrun export bills --month {month}`)"
        ))));
    }
    let version = ctx
        .catalog
        .for_month(month)
        .ok_or_else(|| anyhow::Error::new(Refused(format!("the catalog has no version in force for {month}"))))?
        .clone();
    let totals = store.usage_totals_zone().await?;
    match totals {
        Some(zone) if zone == ctx.tz => {}
        Some(zone) => {
            return Err(anyhow::Error::new(Refused(format!(
                "the usage totals are kept for the months of {zone}, not of --tz {}: estimate with --tz {zone}, the \
                 zone the months are billed in",
                ctx.tz
            ))))
        }
        None if store.import_watermark().await? == 0 => {}
        None => {
            return Err(anyhow::Error::new(Refused(
                "the usage totals have not been built yet (the usage was imported before billrun kept them): \
                 `billrun run` or `billrun settle --dry-run` builds them"
                    .to_owned(),
            )))
        }
    }
    let as_of = ctx.now.min(end);
    let elapsed = Elapsed::new((as_of - start).num_seconds(), (end - start).num_seconds());
    let grant = ctx.free_grant(month)?;
    let mtd = MonthToDate {
        month,
        start,
        end,
        as_of,
        elapsed,
        version,
    };
    Ok((mtd, grant, totals.is_some()))
}

/// Adds to `holding` the month's free packs that follow from the grant (opened before the
/// month ends), whole: the month to date has no bill that took from them.
fn with_free_packs(grant: &FreeGrant, account_id: &str, holding: &mut Holding) {
    for pack in grant.packs_due(account_id, holding.opened, &holding.packs) {
        holding.sizes.insert(pack.pack_id.clone(), pack.remaining);
        holding.packs.push(pack);
    }
}

/// The month to date of an account holding `holding`, to which the month's free packs not
/// granted yet are added.
fn priced(
    mtd: &MonthToDate,
    grant: &FreeGrant,
    account_id: &str,
    holding: &mut Holding,
) -> anyhow::Result<AccountEstimate> {
    with_free_packs(grant, account_id, holding);
    estimate(&mtd.version, &holding.usage, &holding.packs, mtd.elapsed).map_err(|e| {
        input_error(format!("catalog: {e}")).context(format!("estimating account '{account_id}' for {}", mtd.month))
    })
}

/// One account's month to date, with or without usage so far.
pub async fn one<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    account_id: &str,
) -> anyhow::Result<(MonthToDate, AccountEstimate)> {
    let (mtd, grant, _) = month_to_date(store, ctx, month).await?;
    let ids = [account_id.to_owned()];
    let mut holding = store
        .holdings(&grant, &ids)
        .await?
        .remove(account_id)
        .ok_or_else(|| StoreError::UnknownAccount(account_id.to_owned()))?;
    let estimate = priced(&mtd, &grant, account_id, &mut holding)?;
    Ok((mtd, estimate))
}

/// Every account with usage in the month so far, in account order, handed to `each` with what
/// it holds (its packs with their sizes, the month's free packs included, and the pack alerts
/// recorded for it). The month's usage stream says which accounts and in what order; each
/// page's usage and packs are then read together, in one transaction.
pub async fn everyone<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    each: &mut dyn FnMut(&MonthToDate, &str, &AccountEstimate, &Holding) -> anyhow::Result<()>,
) -> anyhow::Result<MonthToDate> {
    let (mtd, grant, totals) = month_to_date(store, ctx, month).await?;
    if !totals {
        return Ok(mtd); // nothing imported yet
    }
    let mut stream = store.month_usage(month, ctx.tz, Shard::ALL).await?;
    let mut page = Vec::with_capacity(PAGE);
    loop {
        let next = stream.recv().await.transpose()?;
        let done = next.is_none();
        page.extend(next.map(|a| a.account_id));
        if page.len() == PAGE || (done && !page.is_empty()) {
            let mut holdings = store.holdings(&grant, &page).await?;
            for account_id in page.drain(..) {
                let mut holding = holdings.remove(&account_id).unwrap_or_default();
                let estimate = priced(&mtd, &grant, &account_id, &mut holding)?;
                each(&mtd, &account_id, &estimate, &holding)?;
            }
        }
        if done {
            return Ok(mtd);
        }
    }
}
