//! The finance export: one CSV row per bill line, with the bill's total and rounding on each.
//!
//! Required columns come first, in the order finance scripts expect; more follow, and new ones
//! are only ever appended. Money is a plain decimal string; `amount` is the line's exact
//! amount, `bill_total` the rounded total and `rounding_adjustment` = `bill_total` − the sum of
//! the bill's exact lines.
//!
//! Every revision of a bill is exported: `revision` 1 is the `original`, 2, 3… are
//! `adjustment`s holding the recomputed lines or `credit`s holding the same lines as the
//! revision before, and `revision_debited` is what that revision debited (or, negative,
//! credited). `bill_credited` is what credits took off the bill so far and `bill_due` what it
//! asks for (`bill_total` − `bill_credited`, never below zero). The month's money moved is the
//! sum of `revision_debited` over bills, which is the sum of `bill_due` over each account's
//! latest revision.
//!
//! Spreadsheets: every text cell goes through [`text_cell`] (OWASP's rule against formula
//! injection), numeric cells never do, so `-499.50` stays a number. `--excel` puts a UTF-8
//! byte-order mark first, so that Excel reads Chinese names as UTF-8.

use super::Ctx;
use crate::domain::credit::amount_due;
use crate::domain::money::{format_money, from_fen};
use crate::domain::month::Month;
pub use crate::output::text_cell;
use crate::output::Destination;
use crate::store::{ExportLine, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub const COLUMNS: [&str; 38] = [
    "month",
    "account_id",
    "api",
    "total_calls",
    "free_calls",
    "prepaid_calls",
    "billable_calls",
    "tier",
    "unit_price",
    "amount",
    "bill_total",
    "rounding_adjustment",
    "account_name",
    "bill_id",
    "currency",
    "catalog_version",
    "pricing",
    "tier_basis",
    "tier_from",
    "tier_to",
    "bill_exact_total",
    "balance_before",
    "balance_after",
    "period_start",
    "period_end",
    "settled_at",
    "revision",
    "kind",
    "revision_debited",
    "product",
    "api_name",
    "billing_mode",
    "in_arrears",
    "suspend_at",
    "bill_credited",
    "bill_due",
    "credit_reference",
    "credit_reason",
];

/// What every line billrun bills is: calls beyond the packs, billed after the month.
pub const BILLING_MODE: &str = "postpaid";

/// The UTF-8 byte-order mark `--excel` writes first.
pub const BOM: &str = "\u{FEFF}";

/// The names a bill line shows for its API: (product, API display name), from the catalog
/// version the line was priced with; the API id and no product if the catalog lacks it.
pub fn names(ctx: &Ctx, version: &str, api: &str) -> (String, String) {
    match ctx.catalog.version(version).and_then(|v| v.apis.get(api)) {
        Some(p) => (p.product.clone(), p.display_name.clone()),
        None => (String::new(), api.to_owned()),
    }
}

/// The CSV record of one bill line. `suspend_at` is the service stop the account was under
/// after this revision, if it left the balance negative.
fn record(ctx: &Ctx, l: ExportLine, currency: &str, suspend_at: Option<DateTime<Utc>>) -> [String; 38] {
    let (product, api_name) = names(ctx, &l.catalog_version, &l.api);
    let in_arrears = l.balance_after_fen < 0;
    [
        text_cell(&l.month),
        text_cell(&l.account_id),
        text_cell(&l.api),
        l.total_calls.to_string(),
        l.free_calls.to_string(),
        l.prepaid_calls.to_string(),
        l.billable_calls.to_string(),
        l.tier.to_string(),
        l.unit_price.normalize().to_string(),
        format_money(l.amount),
        format_money(from_fen(l.bill_total_fen)),
        format_money(l.rounding_adjustment),
        text_cell(&l.account_name),
        text_cell(&l.bill_id),
        text_cell(currency),
        text_cell(&l.catalog_version),
        text_cell(&l.pricing),
        text_cell(&l.tier_basis),
        l.tier_from.to_string(),
        l.tier_to.map(|t| t.to_string()).unwrap_or_default(),
        format_money(l.bill_exact_total),
        format_money(from_fen(l.balance_before_fen)),
        format_money(from_fen(l.balance_after_fen)),
        ctx.local(l.period_start),
        ctx.local(l.period_end),
        ctx.local(l.settled_at),
        l.revision.to_string(),
        text_cell(l.kind.as_str()),
        format_money(from_fen(l.debited_fen)),
        text_cell(&product),
        text_cell(&api_name),
        BILLING_MODE.to_owned(),
        in_arrears.to_string(),
        suspend_at
            .filter(|_| in_arrears)
            .map(|t| ctx.local(t))
            .unwrap_or_default(),
        format_money(from_fen(l.credited_fen)),
        format_money(from_fen(amount_due(l.bill_total_fen, l.credited_fen))),
        text_cell(l.credit.as_ref().map(|c| c.reference.as_str()).unwrap_or_default()),
        text_cell(l.credit.as_ref().map(|c| c.reason.as_str()).unwrap_or_default()),
    ]
}

/// The month's currency: the catalog version in force for it says, CNY otherwise.
pub fn currency(ctx: &Ctx, month: Month) -> String {
    ctx.catalog
        .for_month(month)
        .map(|v| v.currency.clone())
        .unwrap_or_else(|| "CNY".into())
}

/// Writes the month's bill lines as CSV to `out`, after a byte-order mark if `excel`.
/// Returns the number of lines.
pub async fn write_bills<S: Store, W: Write>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    excel: bool,
    mut out: W,
) -> anyhow::Result<u64> {
    if excel {
        out.write_all(BOM.as_bytes())?;
    }
    let stops: HashMap<String, Option<DateTime<Utc>>> = store
        .arrears_bills(month)
        .await?
        .into_iter()
        .map(|b| (b.bill_id, b.suspend_at))
        .collect();
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    let mut n = 0u64;
    let currency = currency(ctx, month);
    store
        .export_lines(Some(month), None, &mut |l: ExportLine| {
            n += 1;
            let suspend_at = stops.get(&l.bill_id).copied().flatten();
            w.write_record(record(ctx, l, &currency, suspend_at))?;
            Ok(())
        })
        .await?;
    w.flush()?;
    Ok(n)
}

/// Writes the export to `path` whole or not at all, or to standard output.
pub async fn bills<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    path: Option<&Path>,
    excel: bool,
) -> anyhow::Result<u64> {
    super::check_settled(store, month).await?;
    let mut out = Destination::open(path)?;
    let n = write_bills(store, ctx, month, excel, &mut out).await?;
    out.finish()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::text_cell;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(text_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(text_cell("@cmd"), "'@cmd");
        assert_eq!(text_cell("Acme"), "Acme");
        for bad in ["+1", "-cmd", "\tx", "\rx", "=HYPERLINK(\"http://x\")"] {
            assert!(text_cell(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(text_cell("示例一"), "示例一");
        assert_eq!(text_cell(""), "");
    }
}
