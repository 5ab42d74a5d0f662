//! `verify`'s check that every call of a settled month's usage is on exactly one current bill
//! revision, read from what the imports kept.
//!
//! For each settled month, side by side per account and API: the month's usage (its totals,
//! when the month was settled in the zone they are kept for; otherwise the rows of its period,
//! read back from the imports that count), the late usage (rows of imports committed after the
//! settlement read the month, less the rows of imports it read that were retracted since,
//! which count negative: an import that came late and went again was never on a bill), and
//! the calls on the current bills. Late usage waits for the next run, which bills it: until
//! then a bill may count the month's usage without it, or with it (a re-settle that has reached
//! the account and not yet finished). Anything else is a breach.
//!
//! At most [`SUMS_PER_SHARE`] accounts' figures are held at a time: a larger month is checked
//! in several shares of its accounts, each reading the totals and the bills again.

use super::recount::{read_back, Found};
use crate::domain::month::Month;
use crate::input::replay::{share_of, shares_for, PeriodSums, SUMS_PER_SHARE};
use crate::store::{BilledCalls, SettledMonth, Store, StoredImport, StoredTotal};
use std::collections::BTreeMap;

/// What the check makes sure of.
pub const BILLED_CHECK: &str = "every usage row of a settled month is counted by exactly one current bill revision";

/// Usage, late usage and calls billed, of one account and API.
#[derive(Default)]
struct Side {
    used: i64,
    late: i64,
    billed: i64,
}

/// The check, of `month` (`None`: every settled month).
pub async fn check<S: Store>(store: &S, month: Option<Month>) -> anyhow::Result<Found> {
    let started = std::time::Instant::now();
    let mut found = Found::new(BILLED_CHECK);
    let imports = store.stored_imports().await?;
    let zone = store.usage_totals_zone().await?.map(|z| z.name().to_owned());
    for sm in store.settled_months(month).await? {
        let m: Month = sm.month.parse().map_err(anyhow::Error::msg)?;
        let on_totals = sm.tz.is_some() && sm.tz == zone;
        let shares = shares_for(store.count_usage_totals(Some(m)).await?, SUMS_PER_SHARE / 2);
        for share in 0..shares {
            let mut sides: BTreeMap<(String, String), Side> = BTreeMap::new();
            let ours = |account: &str| shares == 1 || share_of(account, shares) == share;
            if on_totals {
                store
                    .usage_totals(Some(m), &mut |t: StoredTotal| {
                        if ours(&t.account_id) {
                            sides.entry((t.account_id, t.api)).or_default().used += t.calls;
                        }
                    })
                    .await?;
            } else {
                let counted = imports.iter().filter(|i| !i.retracted);
                for (key, calls) in period_sums(store, &sm, counted, share, shares, &mut found).await? {
                    sides.entry(key).or_default().used += calls;
                }
            }
            let late = imports
                .iter()
                .filter(|i| i.import_id > sm.through_import && !i.retracted);
            for (key, calls) in period_sums(store, &sm, late, share, shares, &mut found).await? {
                sides.entry(key).or_default().late += calls;
            }
            let gone = imports
                .iter()
                .filter(|i| i.import_id <= sm.through_import && i.record_id.is_some_and(|r| r > sm.through_import));
            for (key, calls) in period_sums(store, &sm, gone, share, shares, &mut found).await? {
                sides.entry(key).or_default().late -= calls;
            }
            store
                .billed_calls(&sm.month, &mut |b: BilledCalls| {
                    if ours(&b.account_id) {
                        sides.entry((b.account_id, b.api)).or_default().billed += b.calls;
                    }
                })
                .await?;
            for ((account, api), s) in sides {
                if s.used != s.billed && s.used - s.late != s.billed {
                    let late = if s.late > 0 {
                        format!(" ({} of them late, waiting)", s.late)
                    } else {
                        String::new()
                    };
                    found.add(format!(
                        "account {account}, {}, {api}: {} calls of usage{late}, {} on the current bill",
                        sm.month, s.used, s.billed
                    ));
                }
            }
        }
    }
    tracing::debug!(
        check = BILLED_CHECK,
        millis = started.elapsed().as_millis() as u64,
        "checked"
    );
    Ok(found)
}

/// The calls of `imports`' rows in `sm`'s period, per account and API, of one share of the
/// accounts; an import whose content does not read back is a breach.
async fn period_sums<'a, S: Store>(
    store: &S,
    sm: &SettledMonth,
    imports: impl Iterator<Item = &'a StoredImport>,
    share: u64,
    shares: u64,
    found: &mut Found,
) -> anyhow::Result<std::collections::HashMap<(String, String), i64>> {
    let mut sums = PeriodSums::new(sm.start, sm.end, share, shares);
    for import in imports {
        let reaches = import
            .span
            .is_some_and(|(first, last)| first < sm.end && last >= sm.start);
        let Some(content) = import.content.as_ref().filter(|_| reaches) else {
            continue;
        };
        // An archived import is never read here: every settled month whose period its rows
        // reach was settled through it in the zone of the totals, with nothing waiting
        // (`jobs::archive` archives no other), so it is neither late nor gone, and its months
        // are checked on the totals.
        if import.archived.is_some() {
            continue;
        }
        let add = |sums: &mut PeriodSums, rows| sums.add_all(rows);
        let (back, unreadable, _) = read_back(store, None, import, content, false, sums, add).await?;
        sums = back;
        if let Some(problem) = unreadable {
            found.add(format!(
                "import #{} ({}): its kept content does not read back: {problem}",
                import.import_id, import.file_name
            ));
        }
    }
    Ok(sums.calls)
}
