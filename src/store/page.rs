//! A page of bills ready to write, the same for every backend.
//!
//! A backend reads what a page needs inside its transaction: the accounts' balances, the packs
//! that may cover the month, and each account's current revision of the month's bill, if any.
//! It hands them here. Each account is planned by the pure domain (`domain::settle::plan`,
//! where the settlement rule lives); this module only lays the plans out as the rows to write:
//! one column array per field, so that a backend can write each table in one statement
//! (`UNNEST` on PostgreSQL, multi-row `VALUES` on SQLite).

use super::{AccountUsage, PageOutcome, SettlePage};
use crate::domain::arrears::{EventKind, ServiceState};
use crate::domain::packs::PackBalance;
use crate::domain::settle::{bill_id, plan, AccountMonth, PlanError};
pub use crate::domain::settle::{CurrentBill, StoredLine};
use crate::error::input_error;
use anyhow::anyhow;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Column arrays of one page: bills, their lines, pack use, ledger entries, events.
#[derive(Default)]
pub struct PageWrites {
    pub bill_id: Vec<String>,
    pub bill_account: Vec<String>,
    pub revision: Vec<i32>,
    /// `original` or `adjustment` (a settle writes no credit notes).
    pub kind: Vec<&'static str>,
    pub catalog_version: Vec<String>,
    pub rounding: Vec<String>,
    pub exact_total: Vec<Decimal>,
    pub total_fen: Vec<i64>,
    pub adjustment: Vec<Decimal>,
    /// What this revision moves: the whole total for an original, the difference for an
    /// adjustment (negative: a credit). The ledger entry is its negation.
    pub debited_fen: Vec<i64>,
    /// The credits the bill carries, from the revision replaced.
    pub credited_fen: Vec<i64>,
    pub before_fen: Vec<i64>,
    pub after_fen: Vec<i64>,
    pub suspend_at: Vec<Option<DateTime<Utc>>>,
    pub suspended: Vec<bool>,
    /// The account of each line, pack use and pack change: every table is keyed by account
    /// first, so that a database distributed by account keeps each row with its account.
    pub line_account: Vec<String>,
    pub line_bill: Vec<String>,
    pub line_api: Vec<String>,
    pub line_total: Vec<i64>,
    pub line_free: Vec<i64>,
    pub line_prepaid: Vec<i64>,
    pub line_billable: Vec<i64>,
    pub line_tier: Vec<i32>,
    pub line_tier_from: Vec<i64>,
    pub line_tier_to: Vec<Option<i64>>,
    pub line_version: Vec<String>,
    pub line_unit_price: Vec<Decimal>,
    pub line_amount: Vec<Decimal>,
    pub line_pricing: Vec<String>,
    pub line_basis: Vec<String>,
    pub line_slices: Vec<String>,
    /// What each new revision takes from packs (pack_consumption rows).
    pub use_account: Vec<String>,
    pub use_bill: Vec<String>,
    pub use_pack: Vec<String>,
    pub use_calls: Vec<i64>,
    /// Net change of each pack's `remaining`: minus what new revisions take, plus what the
    /// revisions they replace had taken.
    pub pack_account: Vec<String>,
    pub pack_id: Vec<String>,
    pub pack_delta: Vec<i64>,
    /// Events: `arrears_notice` or `restored`.
    pub event_account: Vec<String>,
    pub event_kind: Vec<&'static str>,
    pub event_bill: Vec<String>,
    pub event_suspend_at: Vec<Option<DateTime<Utc>>>,
    pub event_balance: Vec<i64>,
}

/// Plans every account of `accounts` against its current revision in `current` and lays out
/// what to write. `states`, `opened` (account → when its service opened) and `packs` (the
/// stored packs that may cover the month) are as read in the page's transaction. The month's
/// free packs that follow from the grant are added here, whole: what the current revision took
/// from them is in its lines, not its pack use (any such use recorded by an earlier release is
/// left out, not handed back twice), and neither what a new revision takes from them nor a
/// remainder is written. Only stored packs get pack use rows and remainders.
pub fn build(
    page: &SettlePage,
    accounts: &[AccountUsage],
    current: &HashMap<String, CurrentBill>,
    states: &HashMap<String, ServiceState>,
    opened: &HashMap<String, Option<DateTime<Utc>>>,
    mut packs: HashMap<String, Vec<PackBalance>>,
) -> anyhow::Result<(PageWrites, PageOutcome)> {
    let month = page.month.to_string();
    let mut w = PageWrites::default();
    let mut out = PageOutcome::default();
    let mut deltas: BTreeMap<(&str, String), i64> = BTreeMap::new();
    // Only stored packs get pack use and a new remainder: not one that follows from the grant,
    // nor one a replaced revision took from that is no longer there.
    let stored: HashSet<String> = packs.values().flatten().map(|p| p.pack_id.clone()).collect();
    for a in accounts {
        let account_id = &a.account_id;
        let state = *states
            .get(account_id)
            .ok_or_else(|| anyhow!("usage for account '{account_id}' which does not exist"))?;
        let mut held = packs.remove(account_id).unwrap_or_default();
        held.extend(
            page.grant
                .packs_due(account_id, opened.get(account_id).copied().flatten(), &held),
        );
        let input = AccountMonth {
            usage: &a.usage,
            packs: held,
            current: current.get(account_id),
            state,
        };
        let plan = match plan(input, &page.version, page.now) {
            Ok(Some(plan)) => plan,
            Ok(None) => continue,
            Err(PlanError::OutOfRange { total }) => {
                return Err(input_error(format!(
                    "account '{account_id}' cannot be billed for {month}: its bill of {} or its balance after it \
                     would be beyond ±{}, the largest amount billrun keeps",
                    crate::domain::money::format_money(total),
                    crate::domain::money::format_money(crate::domain::money::from_fen(i64::MAX))
                )))
            }
            Err(PlanError::Pricing(e)) => {
                return Err(
                    input_error(format!("catalog: {e}")).context(format!("pricing account '{account_id}' for {month}"))
                )
            }
        };
        let bill_id = bill_id(&month, account_id, plan.revision);
        let draft = &plan.draft;
        for line in &draft.lines {
            w.line_account.push(account_id.clone());
            w.line_bill.push(bill_id.clone());
            w.line_api.push(line.api.clone());
            w.line_total.push(line.total_calls);
            w.line_free.push(line.free_calls);
            w.line_prepaid.push(line.prepaid_calls);
            w.line_billable.push(line.billable_calls);
            w.line_tier.push(line.tier as i32);
            w.line_tier_from.push(line.tier_from);
            w.line_tier_to.push(line.tier_to);
            w.line_version.push(draft.catalog_version.clone());
            w.line_unit_price.push(line.unit_price);
            w.line_amount.push(line.amount);
            w.line_pricing.push(line.mode.as_str().to_owned());
            w.line_basis.push(line.tier_basis.as_str().to_owned());
            w.line_slices.push(
                line.slices
                    .iter()
                    .map(|s| format!("{}:{}@{}", s.tier, s.calls, s.unit_price))
                    .collect::<Vec<_>>()
                    .join(";"),
            );
            for c in line.consumed.iter().filter(|c| stored.contains(&c.pack_id)) {
                w.use_account.push(account_id.clone());
                w.use_bill.push(bill_id.clone());
                w.use_pack.push(c.pack_id.clone());
                w.use_calls.push(c.calls);
            }
        }
        for (pack_id, delta) in &plan.pack_deltas {
            *deltas.entry((account_id.as_str(), pack_id.clone())).or_default() += delta;
        }
        if plan.notice {
            w.event_account.push(account_id.clone());
            w.event_kind.push(EventKind::ArrearsNotice.as_str());
            w.event_bill.push(bill_id.clone());
            w.event_suspend_at.push(plan.after.suspend_at);
            w.event_balance.push(plan.after.balance_fen);
        }
        if plan.restored {
            w.event_account.push(account_id.clone());
            w.event_kind.push(EventKind::Restored.as_str());
            w.event_bill.push(bill_id.clone());
            w.event_suspend_at.push(None);
            w.event_balance.push(plan.after.balance_fen);
        }
        w.bill_id.push(bill_id);
        w.bill_account.push(account_id.clone());
        w.revision.push(plan.revision);
        w.kind.push(plan.kind.as_str());
        w.catalog_version.push(draft.catalog_version.clone());
        w.rounding.push(draft.rounding.as_str().to_owned());
        w.exact_total.push(draft.exact_total);
        w.total_fen.push(plan.total_fen);
        w.adjustment.push(draft.rounding_adjustment);
        w.debited_fen.push(plan.debited_fen);
        w.credited_fen.push(plan.credited_fen);
        w.before_fen.push(plan.before.balance_fen);
        w.after_fen.push(plan.after.balance_fen);
        w.suspend_at.push(plan.after.suspend_at);
        w.suspended.push(plan.after.suspended);
        out.bills += 1;
        out.adjustments += (plan.revision > 1) as u64;
        out.total_fen = out.total_fen.checked_add(plan.debited_fen).ok_or_else(|| {
            input_error(format!(
                "the bills of {month} on one page add up to more than billrun can count"
            ))
        })?;
        out.arrears += plan.notice as u64;
    }
    for ((account_id, pack_id), delta) in deltas.into_iter().filter(|((_, p), d)| *d != 0 && stored.contains(p)) {
        w.pack_account.push(account_id.to_owned());
        w.pack_id.push(pack_id);
        w.pack_delta.push(delta);
    }
    Ok((w, out))
}

/// One line per bill of the page, for a dry run's report.
pub fn previews(w: &PageWrites) -> Vec<super::BillPreview> {
    (0..w.bill_id.len())
        .map(|i| super::BillPreview {
            account_id: w.bill_account[i].clone(),
            revision: w.revision[i],
            total_fen: w.total_fen[i],
            debited_fen: w.debited_fen[i],
            balance_after_fen: w.after_fen[i],
            in_arrears: w.after_fen[i] < 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::domain::month::Month;
    use crate::domain::packs::{PackBalance, PackKind};
    use crate::store::FreeGrant;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn grant() -> FreeGrant {
        FreeGrant {
            month: "2026-10".parse::<Month>().unwrap(),
            start: at("2026-10-01T00:00:00Z"),
            end: at("2026-11-01T00:00:00Z"),
            apis: vec![("A".into(), 1000), ("B".into(), 500)],
        }
    }

    fn stored(api: &str, kind: PackKind, remaining: i64) -> PackBalance {
        PackBalance {
            pack_id: format!("stored-{api}"),
            kind,
            api: api.into(),
            remaining,
            valid_until: at("2026-11-01T00:00:00Z"),
            purchased_at: at("2026-10-01T00:00:00Z"),
        }
    }

    /// (pack id, api, remaining) of what `packs_due` gives.
    fn due(opened: Option<&str>, held: &[PackBalance]) -> Vec<(String, String, i64)> {
        grant()
            .packs_due("acc", opened.map(at), held)
            .into_iter()
            .map(|p| {
                assert_eq!(
                    (p.kind, p.valid_until, p.purchased_at),
                    (PackKind::Free, grant().end, grant().start)
                );
                (p.pack_id, p.api, p.remaining)
            })
            .collect()
    }

    #[test]
    fn an_account_opened_before_the_month_ended_has_a_whole_free_pack_per_api() {
        let all = vec![
            ("free:2026-10:A:acc".to_string(), "A".to_string(), 1000),
            ("free:2026-10:B:acc".to_string(), "B".to_string(), 500),
        ];
        assert_eq!(due(Some("2026-09-01T00:00:00Z"), &[]), all);
        assert_eq!(due(Some("2026-10-31T23:59:59Z"), &[]), all);
        assert!(due(Some("2026-11-01T00:00:00Z"), &[]).is_empty(), "opened as it ended");
        assert!(due(None, &[]).is_empty(), "never opened");
        // A stored free pack of an API stands in for the grant's; a prepaid one does not.
        let held = [stored("A", PackKind::Free, 7), stored("B", PackKind::Prepaid, 9)];
        assert_eq!(
            due(Some("2026-09-01T00:00:00Z"), &held),
            vec![("free:2026-10:B:acc".to_string(), "B".to_string(), 500)]
        );
    }
}
