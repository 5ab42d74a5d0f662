//! The finance export: one CSV row per bill line, with the bill's total and rounding on each.
//!
//! Required columns come first, in the order finance scripts expect; more follow. Money is
//! a plain decimal string; `amount` is the line's exact amount, `bill_total` the rounded
//! total and `rounding_adjustment` = `bill_total` − the sum of the bill's exact lines.
//!
//! Every revision of a bill is exported: `revision` 1 is the `original`, 2, 3… are
//! `adjustment`s holding the recomputed lines, and `revision_debited` is what that revision
//! debited (or, negative, credited). The month's money moved is the sum of `revision_debited`
//! over bills; its current billing is the sum of `bill_total` over each account's latest
//! revision.

use super::Ctx;
use crate::domain::money::{format_money, from_fen};
use crate::domain::month::Month;
use crate::output::AtomicFile;
use crate::store::{ExportLine, Store};
use std::io::Write;
use std::path::Path;

pub const COLUMNS: [&str; 29] = [
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
];

/// Neutralises a free-text cell a spreadsheet would run as a formula (OWASP: a leading
/// `= + - @`, tab or carriage return gets a `'` in front).
pub fn text_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Writes the month's bill lines as CSV to `out`. Returns the number of lines.
pub async fn write_bills<S: Store, W: Write>(store: &S, ctx: &Ctx, month: Month, out: W) -> anyhow::Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    let mut n = 0u64;
    let currency = ctx
        .catalog
        .for_month(month)
        .map(|v| v.currency.clone())
        .unwrap_or_else(|| "CNY".into());
    store
        .export_lines(Some(month), None, &mut |l: ExportLine| {
            n += 1;
            w.write_record([
                l.month,
                l.account_id,
                l.api,
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
                l.bill_id,
                currency.clone(),
                l.catalog_version,
                l.pricing,
                l.tier_basis,
                l.tier_from.to_string(),
                l.tier_to.map(|t| t.to_string()).unwrap_or_default(),
                format_money(l.bill_exact_total),
                format_money(from_fen(l.balance_before_fen)),
                format_money(from_fen(l.balance_after_fen)),
                ctx.local(l.period_start),
                ctx.local(l.period_end),
                ctx.local(l.settled_at),
                l.revision.to_string(),
                l.kind,
                format_money(from_fen(l.debited_fen)),
            ])?;
            Ok(())
        })
        .await?;
    w.flush()?;
    Ok(n)
}

/// Writes the export to `path` whole or not at all, or to standard output.
pub async fn bills<S: Store>(store: &S, ctx: &Ctx, month: Month, path: Option<&Path>) -> anyhow::Result<u64> {
    match path {
        Some(p) => {
            let mut file = AtomicFile::create(p)?;
            let n = write_bills(store, ctx, month, file.writer()).await?;
            file.commit()?;
            Ok(n)
        }
        None => {
            let stdout = std::io::stdout();
            let n = write_bills(store, ctx, month, std::io::BufWriter::new(stdout.lock())).await?;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::text_cell;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(text_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(text_cell("@cmd"), "'@cmd");
        assert_eq!(text_cell("Acme"), "Acme");
    }
}
