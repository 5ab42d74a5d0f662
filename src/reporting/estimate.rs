//! A month to date, as the customer's console and support read it: per API the calls so far,
//! what the packs took and have left, the tier reached and where the next begins, the charge
//! so far and the month at this pace. Text for one account on screen, one JSON object per
//! account, one CSV row per account and API. Pure: handed the estimate, returns values.

use super::group_digits;
use crate::domain::catalog::{CatalogVersion, TierBasis};
use crate::domain::estimate::{AccountEstimate, ApiEstimate, MonthToDate};
use crate::domain::money::format_money;
use crate::domain::packs::PackKind;
use chrono::SecondsFormat;
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};
use std::fmt::Write;

/// What the text and the rows need besides the estimate.
pub struct EstimateContext<'a> {
    pub mtd: &'a MonthToDate,
    pub tz: Tz,
}

impl EstimateContext<'_> {
    fn as_of(&self) -> String {
        self.mtd
            .as_of
            .with_timezone(&self.tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    fn version(&self) -> &CatalogVersion {
        &self.mtd.version
    }

    /// The part of the month elapsed, as "9.6 of 31 days": a duration shown to a tenth of a
    /// day, rounded half away from zero (not money).
    fn elapsed(&self) -> String {
        let days = |seconds: i64| {
            (Decimal::new(seconds, 0) / Decimal::from(86_400))
                .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
                .normalize()
        };
        format!(
            "{} of {} days",
            days(self.mtd.elapsed.so_far),
            days(self.mtd.elapsed.whole)
        )
    }

    /// An API as customers know it: its id, and its display name if the catalog gives another.
    fn api_name(&self, api: &str) -> String {
        match self.version().apis.get(api).map(|p| p.display_name.as_str()) {
            Some(name) if name != api => format!("{api} ({name})"),
            _ => api.to_owned(),
        }
    }
}

fn calls(n: i64) -> String {
    group_digits(&n.to_string())
}

/// What is left of an API's prepaid packs after the month so far.
fn prepaid_left(a: &ApiEstimate) -> i64 {
    a.packs
        .iter()
        .filter(|p| p.kind == PackKind::Prepaid)
        .map(|p| p.left)
        .sum()
}

/// The tier a line reached and where the next begins, in the calls its basis counts.
fn tier(a: &ApiEstimate) -> String {
    let l = &a.line;
    let basis = match l.tier_basis {
        TierBasis::Billable => "billable calls",
        TierBasis::Total => "calls",
    };
    match l.tier_to {
        Some(next) => format!(
            "tier {} (from {} {basis}); tier {} from {} {basis}",
            l.tier,
            calls(l.tier_from),
            l.tier + 1,
            calls(next)
        ),
        None => format!("tier {} (from {} {basis}), the last", l.tier, calls(l.tier_from)),
    }
}

/// One API's month so far and at this pace, under its name.
fn explain_api(out: &mut String, cx: &EstimateContext, a: &ApiEstimate) {
    let currency = &cx.version().currency;
    let l = &a.line;
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", cx.api_name(&l.api));
    let _ = writeln!(out, "  calls so far      {}", calls(l.total_calls));
    for p in &a.packs {
        let kind = match p.kind {
            PackKind::Free => "free pack   ",
            PackKind::Prepaid => "prepaid pack",
        };
        let _ = writeln!(
            out,
            "  {kind}      {} used, {} left ({})",
            calls(p.used),
            calls(p.left),
            p.pack_id
        );
    }
    let _ = writeln!(out, "  billable          {}", calls(l.billable_calls));
    let _ = writeln!(out, "  {}", tier(a));
    let _ = writeln!(
        out,
        "  charge so far     {} × {} = {} {currency}",
        calls(l.billable_calls),
        l.unit_price.normalize(),
        group_digits(&l.amount.normalize().to_string())
    );
    let _ = writeln!(
        out,
        "  at this pace      {} calls in the month, {} billable, {} {currency}",
        calls(a.projected_calls),
        calls(a.projected.billable_calls),
        group_digits(&a.projected.amount.normalize().to_string())
    );
}

/// One account's month to date, on screen.
pub fn explain(cx: &EstimateContext, account: &str, e: &AccountEstimate) -> String {
    let currency = &cx.version().currency;
    let mut out = String::new();
    let _ = writeln!(out, "account {account}, {} to date", cx.mtd.month);
    let _ = writeln!(
        out,
        "as of {} ({}), priced with catalog version {}; nothing is billed until the month is settled",
        cx.as_of(),
        cx.elapsed(),
        cx.version().version
    );
    for a in &e.apis {
        explain_api(&mut out, cx, a);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "so far                {} {currency} (the lines' {} rounded {})",
        group_digits(&format_money(e.so_far.total)),
        e.so_far.exact_total.normalize(),
        e.so_far.rounding.as_str()
    );
    let _ = writeln!(
        out,
        "the month at this pace {} {currency} (each API's calls so far × {} / {} seconds)",
        group_digits(&format_money(e.projected.total)),
        cx.mtd.elapsed.whole,
        cx.mtd.elapsed.so_far
    );
    out
}

/// One account's month to date as a JSON object: amounts and prices as decimal strings.
pub fn json(cx: &EstimateContext, account: &str, e: &AccountEstimate) -> Value {
    let apis: Vec<Value> = e
        .apis
        .iter()
        .map(|a| {
            let l = &a.line;
            json!({
                "api": l.api,
                "calls": l.total_calls,
                "free_used": l.free_calls,
                "free_left": a.free_left,
                "prepaid_used": l.prepaid_calls,
                "packs": a.packs.iter().map(|p| json!({
                    "pack_id": p.pack_id,
                    "kind": p.kind.as_str(),
                    "used": p.used,
                    "left": p.left,
                })).collect::<Vec<_>>(),
                "billable": l.billable_calls,
                "tier": l.tier,
                "tier_from": l.tier_from,
                "next_tier_from": l.tier_to,
                "tier_basis": l.tier_basis.as_str(),
                "unit_price": l.unit_price.normalize().to_string(),
                "amount": l.amount.normalize().to_string(),
                "projected_calls": a.projected_calls,
                "projected_billable": a.projected.billable_calls,
                "projected_amount": a.projected.amount.normalize().to_string(),
            })
        })
        .collect();
    json!({
        "account_id": account,
        "month": cx.mtd.month.to_string(),
        "as_of": cx.as_of(),
        "elapsed_seconds": cx.mtd.elapsed.so_far,
        "month_seconds": cx.mtd.elapsed.whole,
        "catalog_version": cx.version().version,
        "currency": cx.version().currency,
        "rounding": e.so_far.rounding.as_str(),
        "total": format_money(e.so_far.total),
        "exact_total": e.so_far.exact_total.normalize().to_string(),
        "projected_total": format_money(e.projected.total),
        "apis": apis,
    })
}

/// The columns of [`rows`].
pub const HEADERS: &[&str] = &[
    "month",
    "as_of",
    "account_id",
    "api",
    "calls",
    "free_used",
    "free_left",
    "prepaid_used",
    "prepaid_left",
    "billable",
    "tier",
    "tier_from",
    "next_tier_from",
    "unit_price",
    "amount",
    "projected_calls",
    "projected_billable",
    "projected_amount",
];

/// The columns of [`HEADERS`] that hold numbers: all after the month, time, account and API.
pub const NUMERIC: &[&str] = HEADERS.split_at(4).1;

/// One row per API of an account's month to date; amounts exact, as bill lines keep them.
pub fn rows(cx: &EstimateContext, account: &str, e: &AccountEstimate) -> Vec<Vec<String>> {
    e.apis
        .iter()
        .map(|a| {
            let l = &a.line;
            vec![
                cx.mtd.month.to_string(),
                cx.as_of(),
                account.to_owned(),
                l.api.clone(),
                l.total_calls.to_string(),
                l.free_calls.to_string(),
                a.free_left.to_string(),
                l.prepaid_calls.to_string(),
                prepaid_left(a).to_string(),
                l.billable_calls.to_string(),
                l.tier.to_string(),
                l.tier_from.to_string(),
                l.tier_to.map(|t| t.to_string()).unwrap_or_default(),
                l.unit_price.normalize().to_string(),
                l.amount.normalize().to_string(),
                a.projected_calls.to_string(),
                a.projected.billable_calls.to_string(),
                a.projected.amount.normalize().to_string(),
            ]
        })
        .collect()
}
