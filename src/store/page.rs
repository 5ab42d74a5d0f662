//! A page of bills ready to write, the same for every backend.
//!
//! A backend reads what a page needs inside its transaction: the accounts' balances, the
//! packs that may cover the month, and which accounts are already billed. It hands them here.
//! This module prices each account with the pure domain and applies the arrears rule. It
//! returns the rows to write, as one column array per field, so that a backend can write each
//! table in one statement (`UNNEST` on PostgreSQL, multi-row `VALUES` on SQLite).

use super::{AccountUsage, PageOutcome, Pricer, SettlePage};
use crate::domain::arrears::{self, ServiceState};
use crate::domain::money::to_fen;
use crate::domain::packs::PackBalance;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};

/// Column arrays of one page: bills, their lines, what they took from packs.
#[derive(Default)]
pub struct PageWrites {
    pub bill_id: Vec<String>,
    pub bill_account: Vec<String>,
    pub catalog_version: Vec<String>,
    pub rounding: Vec<String>,
    pub exact_total: Vec<Decimal>,
    pub total_fen: Vec<i64>,
    pub adjustment: Vec<Decimal>,
    pub before_fen: Vec<i64>,
    pub after_fen: Vec<i64>,
    pub suspend_at: Vec<Option<DateTime<Utc>>>,
    /// The debit left the balance negative: write an arrears notice.
    pub notice: Vec<bool>,
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
    pub use_bill: Vec<String>,
    pub use_pack: Vec<String>,
    pub use_calls: Vec<i64>,
}

/// The id of an account's original bill for a month.
pub fn bill_id(month: &str, account_id: &str) -> String {
    format!("{month}-{account_id}-r1")
}

/// Prices every account of `accounts` not in `billed`, debits it from `states` and applies the
/// arrears rule, taking calls from `packs`.
pub fn build(
    page: &SettlePage,
    accounts: &[AccountUsage],
    billed: &HashSet<String>,
    states: &HashMap<String, ServiceState>,
    mut packs: HashMap<String, Vec<PackBalance>>,
    pricer: &Pricer<'_>,
) -> anyhow::Result<(PageWrites, PageOutcome)> {
    let month = page.month.to_string();
    let mut w = PageWrites::default();
    let mut out = PageOutcome::default();
    for a in accounts.iter().filter(|a| !billed.contains(&a.account_id)) {
        let account_id = &a.account_id;
        let mut account_packs = packs.remove(account_id).unwrap_or_default();
        let draft = pricer(&a.usage, &mut account_packs)
            .with_context(|| format!("pricing account '{account_id}' for {month}"))?;
        let total_fen = to_fen(draft.total).ok_or_else(|| anyhow!("bill total {} is out of range", draft.total))?;
        let state = *states
            .get(account_id)
            .ok_or_else(|| anyhow!("usage for account '{account_id}' which does not exist"))?;
        let after = arrears::debit(state, total_fen, page.now);
        let bill_id = bill_id(&month, account_id);
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
            }
        }
        w.bill_id.push(bill_id);
        w.bill_account.push(account_id.clone());
        w.catalog_version.push(draft.catalog_version.clone());
        w.rounding.push(draft.rounding.as_str().to_owned());
        w.exact_total.push(draft.exact_total);
        w.total_fen.push(total_fen);
        w.adjustment.push(draft.rounding_adjustment);
        w.before_fen.push(state.balance_fen);
        w.after_fen.push(after.state.balance_fen);
        w.suspend_at.push(after.state.suspend_at);
        w.notice.push(after.arrears_notice);
        out.bills += 1;
        out.total_fen += total_fen;
        out.arrears += after.arrears_notice as u64;
    }
    Ok((w, out))
}
