//! Pack alerts, checked by `run` (and so by the daemon) for the month containing `--now`: the
//! month so far of every account with usage (`jobs::estimate`), the alerts it calls for
//! (`domain::pack_alerts`), and those not recorded yet recorded as events and announced as
//! `pack.alert` webhooks. A month is checked again only once usage has been imported since
//! its last check; each alert is recorded once per pack and threshold, however often the
//! check runs or is killed.

use super::estimate::everyone;
use super::Ctx;
use crate::domain::pack_alerts::{alerts, PackAlert};
use crate::error::is_refused;

/// Alerts recorded at a time.
const BATCH: usize = 1_000;

/// Checks the month containing `--now`: returns how many alerts were recorded, or `None` if
/// nothing was imported since the last check. A month that cannot be estimated (no catalog
/// version in force, totals kept for another zone) is logged and skipped.
pub async fn check<S: crate::store::Store>(store: &S, ctx: &Ctx) -> anyhow::Result<Option<u64>> {
    let month = ctx.current_month();
    let through = format!("{month}:{}", store.import_watermark().await?);
    if store.pack_alerts_checked().await?.as_deref() == Some(through.as_str()) {
        return Ok(None);
    }
    let mut new: Vec<(String, PackAlert)> = Vec::new();
    let read = everyone(store, ctx, month, &mut |_, account, estimate, holding| {
        new.extend(
            alerts(estimate, &holding.sizes)
                .into_iter()
                .filter(|a| !holding.alerted.contains(&(a.pack_id.clone(), a.threshold)))
                .map(|a| (account.to_owned(), a)),
        );
        Ok(())
    })
    .await;
    match read {
        Ok(_) => {}
        Err(e) if is_refused(&e) => {
            tracing::warn!(month = %month, "pack alerts not checked: {e:#}");
            return Ok(None);
        }
        Err(e) => return Err(e.context(format!("checking the pack alerts of {month}"))),
    }
    let mut recorded = 0;
    for batch in new.chunks(BATCH) {
        recorded += store.record_pack_alerts(batch, ctx.now).await?;
    }
    store.set_pack_alerts_checked(&through).await?;
    Ok(Some(recorded))
}
