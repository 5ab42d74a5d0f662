//! A page of bills ready to write, the same for every backend.
//!
//! A backend reads what a page needs inside its transaction: the accounts' balances, the packs
//! that may cover the month, and each account's current revision of the month's bill, if any.
//! It hands them here. This module prices each account with the pure domain, and compares the
//! result with the current revision:
//!
//! - An account with no bill gets its original (revision 1), debited in full.
//! - An account whose recomputed bill differs gets an adjustment (revision n + 1), holding the
//!   recomputed lines. Only the difference is debited, or credited if negative. The packs the
//!   previous revision used are handed back before the new one takes its share.
//! - An account whose bill comes out the same gets nothing.
//!
//! The arrears and restore rules apply to the new balance. The rows to write come back as one
//! column array per field, so that a backend can write each table in one statement (`UNNEST`
//! on PostgreSQL, multi-row `VALUES` on SQLite).

use super::{AccountUsage, FreeGrant, PageOutcome, Pricer, SettlePage};
use crate::domain::arrears::{self, ServiceState};
use crate::domain::bill::BillDraft;
use crate::domain::money::to_fen;
use crate::domain::packs::{PackBalance, PackKind};
use crate::error::input_error;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// One line of a stored revision, as far as comparing with a recomputed bill needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLine {
    pub api: String,
    pub total_calls: i64,
    pub free_calls: i64,
    pub prepaid_calls: i64,
    pub billable_calls: i64,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

/// The current revision of an account's bill for the month.
#[derive(Clone, Debug, Default)]
pub struct CurrentBill {
    pub revision: i32,
    pub total_fen: i64,
    pub lines: Vec<StoredLine>,
    /// (pack_id, calls) this revision took from packs.
    pub consumed: Vec<(String, i64)>,
}

/// Column arrays of one page: bills, their lines, pack use, ledger entries, events.
#[derive(Default)]
pub struct PageWrites {
    pub bill_id: Vec<String>,
    pub bill_account: Vec<String>,
    pub revision: Vec<i32>,
    /// `original` or `adjustment`.
    pub kind: Vec<&'static str>,
    pub catalog_version: Vec<String>,
    pub rounding: Vec<String>,
    pub exact_total: Vec<Decimal>,
    pub total_fen: Vec<i64>,
    pub adjustment: Vec<Decimal>,
    /// What this revision moves: the whole total for an original, the difference for an
    /// adjustment (negative: a credit). The ledger entry is its negation.
    pub debited_fen: Vec<i64>,
    pub before_fen: Vec<i64>,
    pub after_fen: Vec<i64>,
    pub suspend_at: Vec<Option<DateTime<Utc>>>,
    pub suspended: Vec<bool>,
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
    pub use_bill: Vec<String>,
    pub use_pack: Vec<String>,
    pub use_calls: Vec<i64>,
    /// Net change of each pack's `remaining`: minus what new revisions take, plus what the
    /// revisions they replace had taken.
    pub pack_id: Vec<String>,
    pub pack_delta: Vec<i64>,
    /// Events: `arrears_notice` or `restored`.
    pub event_account: Vec<String>,
    pub event_kind: Vec<&'static str>,
    pub event_bill: Vec<String>,
    pub event_suspend_at: Vec<Option<DateTime<Utc>>>,
    pub event_balance: Vec<i64>,
}

/// The page's accounts that lack one of the month's free packs although their service opened
/// before the month ended (`opened`: account → `activated_at`). Settle grants the whole month
/// before its first page, so this is normally empty and a page pays nothing for it; an account
/// imported or opened meanwhile is granted its packs by the page, inside its transaction.
/// `packs` holds the page's packs as loaded for the month: free packs are the month's own.
pub fn lacking_free_packs(
    grant: &FreeGrant,
    opened: &HashMap<String, Option<DateTime<Utc>>>,
    packs: &HashMap<String, Vec<PackBalance>>,
) -> Vec<String> {
    let mut lacking: Vec<String> = opened
        .iter()
        .filter(|(_, at)| at.is_some_and(|at| at < grant.end))
        .filter(|(account, _)| {
            let held = packs.get(*account).map(Vec::as_slice).unwrap_or_default();
            grant
                .apis
                .iter()
                .any(|(api, _)| !held.iter().any(|p| p.kind == PackKind::Free && &p.api == api))
        })
        .map(|(account, _)| account.clone())
        .collect();
    lacking.sort();
    lacking
}

/// The id of revision `revision` of an account's bill for a month.
pub fn bill_id(month: &str, account_id: &str, revision: i32) -> String {
    format!("{month}-{account_id}-r{revision}")
}

/// Whether a recomputed bill says the same as the stored revision.
fn same_bill(draft: &BillDraft, current: &CurrentBill) -> bool {
    draft.lines.len() == current.lines.len()
        && draft.lines.iter().zip(&current.lines).all(|(d, c)| {
            d.api == c.api
                && d.total_calls == c.total_calls
                && d.free_calls == c.free_calls
                && d.prepaid_calls == c.prepaid_calls
                && d.billable_calls == c.billable_calls
                && d.unit_price == c.unit_price
                && d.amount == c.amount
        })
}

/// Prices every account of `accounts`, compares with its current revision in `current`, and
/// produces what to write. `states` and `packs` are as read in the page's transaction.
pub fn build(
    page: &SettlePage,
    accounts: &[AccountUsage],
    current: &HashMap<String, CurrentBill>,
    states: &HashMap<String, ServiceState>,
    mut packs: HashMap<String, Vec<PackBalance>>,
    pricer: &Pricer<'_>,
) -> anyhow::Result<(PageWrites, PageOutcome)> {
    let month = page.month.to_string();
    let mut w = PageWrites::default();
    let mut out = PageOutcome::default();
    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    for a in accounts {
        let account_id = &a.account_id;
        let previous = current.get(account_id);
        let mut account_packs = packs.remove(account_id).unwrap_or_default();
        // Hand back what the revision being replaced took, so the new one is computed from the
        // packs as they stood before it.
        if let Some(prev) = previous {
            for (pack_id, calls) in &prev.consumed {
                if let Some(p) = account_packs.iter_mut().find(|p| &p.pack_id == pack_id) {
                    p.remaining += calls;
                }
            }
        }
        let draft = pricer(&a.usage, &mut account_packs)
            .with_context(|| format!("pricing account '{account_id}' for {month}"))?;
        if previous.is_some_and(|prev| same_bill(&draft, prev)) {
            continue;
        }
        let out_of_range = || {
            input_error(format!(
                "account '{account_id}' cannot be billed for {month}: its bill of {} or its balance after it \
                 would be beyond ±{}, the largest amount billrun keeps",
                crate::domain::money::format_money(draft.total),
                crate::domain::money::format_money(crate::domain::money::from_fen(i64::MAX))
            ))
        };
        let total_fen = to_fen(draft.total).ok_or_else(out_of_range)?;
        let state = *states
            .get(account_id)
            .ok_or_else(|| anyhow!("usage for account '{account_id}' which does not exist"))?;
        let (revision, debited_fen) = match previous {
            None => (1, total_fen),
            Some(prev) => (
                prev.revision + 1,
                total_fen.checked_sub(prev.total_fen).ok_or_else(out_of_range)?,
            ),
        };
        let bill_id = bill_id(&month, account_id, revision);
        // A debit follows the arrears rule; a credit follows the recharge (restore) rule.
        let (after, notice, restored) = if debited_fen >= 0 {
            let d = arrears::debit(state, debited_fen, page.now).ok_or_else(out_of_range)?;
            // An adjustment of zero moves no money and sends no new notice.
            (d.state, d.arrears_notice && (revision == 1 || debited_fen > 0), false)
        } else {
            let r = arrears::recharge(state, -debited_fen).ok_or_else(out_of_range)?;
            (r.state, false, r.restored)
        };
        if let Some(prev) = previous {
            for (pack_id, calls) in &prev.consumed {
                *deltas.entry(pack_id.clone()).or_default() += calls;
            }
        }
        for line in &draft.lines {
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
            for c in &line.consumed {
                w.use_bill.push(bill_id.clone());
                w.use_pack.push(c.pack_id.clone());
                w.use_calls.push(c.calls);
                *deltas.entry(c.pack_id.clone()).or_default() -= c.calls;
            }
        }
        if notice {
            w.event_account.push(account_id.clone());
            w.event_kind.push("arrears_notice");
            w.event_bill.push(bill_id.clone());
            w.event_suspend_at.push(after.suspend_at);
            w.event_balance.push(after.balance_fen);
        }
        if restored {
            w.event_account.push(account_id.clone());
            w.event_kind.push("restored");
            w.event_bill.push(bill_id.clone());
            w.event_suspend_at.push(None);
            w.event_balance.push(after.balance_fen);
        }
        w.bill_id.push(bill_id);
        w.bill_account.push(account_id.clone());
        w.revision.push(revision);
        w.kind.push(if revision == 1 { "original" } else { "adjustment" });
        w.catalog_version.push(draft.catalog_version.clone());
        w.rounding.push(draft.rounding.as_str().to_owned());
        w.exact_total.push(draft.exact_total);
        w.total_fen.push(total_fen);
        w.adjustment.push(draft.rounding_adjustment);
        w.debited_fen.push(debited_fen);
        w.before_fen.push(state.balance_fen);
        w.after_fen.push(after.balance_fen);
        w.suspend_at.push(after.suspend_at);
        w.suspended.push(after.suspended);
        out.bills += 1;
        out.adjustments += (revision > 1) as u64;
        out.total_fen = out.total_fen.checked_add(debited_fen).ok_or_else(out_of_range)?;
        out.arrears += notice as u64;
    }
    for (pack_id, delta) in deltas.into_iter().filter(|(_, d)| *d != 0) {
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
    use super::*;
    use crate::domain::month::Month;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn free(api: &str) -> PackBalance {
        PackBalance {
            pack_id: format!("free:{api}"),
            kind: PackKind::Free,
            api: api.into(),
            remaining: 1000,
            valid_until: at("2026-11-01T00:00:00Z"),
            purchased_at: at("2026-10-01T00:00:00Z"),
        }
    }

    #[test]
    fn only_accounts_opened_in_time_and_missing_a_free_pack_are_granted_by_the_page() {
        let grant = FreeGrant {
            month: "2026-10".parse::<Month>().unwrap(),
            start: at("2026-10-01T00:00:00Z"),
            end: at("2026-11-01T00:00:00Z"),
            apis: vec![("A".into(), 1000), ("B".into(), 1000)],
        };
        let opened: HashMap<String, Option<DateTime<Utc>>> = [
            ("has-both", Some(at("2026-09-01T00:00:00Z"))),
            ("has-one", Some(at("2026-09-01T00:00:00Z"))),
            ("prepaid-only", Some(at("2026-10-31T23:59:59Z"))),
            ("never-opened", None),
            ("opened-after", Some(at("2026-11-01T00:00:00Z"))),
        ]
        .into_iter()
        .map(|(a, t)| (a.to_string(), t))
        .collect();
        let mut prepaid_b = free("B");
        prepaid_b.kind = PackKind::Prepaid;
        let packs: HashMap<String, Vec<PackBalance>> = [
            ("has-both", vec![free("A"), free("B")]),
            ("has-one", vec![free("A")]),
            ("prepaid-only", vec![free("A"), prepaid_b]),
        ]
        .into_iter()
        .map(|(a, p)| (a.to_string(), p))
        .collect();
        assert_eq!(
            lacking_free_packs(&grant, &opened, &packs),
            vec!["has-one", "prepaid-only"]
        );
    }
}
