//! `billrun export summary`: the month in one CSV, for finance to check against the bills
//! export and to book.
//!
//! One header, and a `section` column saying what each row is:
//!
//! - `api`: one row per API: calls, free, prepaid and billable calls, how many accounts each
//!   tier priced (`accounts_tier_1` … `accounts_tier_N`), and `revenue`, the sum of the API's
//!   exact line amounts;
//! - `total`: `api` = `TOTAL`; the calls and tier columns are sums of the API rows,
//!   `accounts` is the number of accounts billed, `revenue` the sum of every exact line,
//!   `rounding` the sum of the bills' rounding adjustments and `billed` = `revenue` +
//!   `rounding`, the sum of the rounded bill totals; `credited` the credit notes the bills
//!   carry and `due` what they ask for after them (`billed` − `credited`, each bill never
//!   below zero), the money the month moved;
//! - `arrears`: one row per account whose latest revision left its balance negative, with
//!   that bill, its total (`billed`), what the account owed after it (`owed`) and its
//!   `suspend_at`;
//! - `arrears_total`: how many such accounts (`accounts`) and what they owe in all (`owed`).
//!
//! Each account's latest revision counts, as in the month's current billing; the arithmetic is
//! in `reporting::summary`.

use super::export::{currency, names, text_cell, BOM};
use super::Ctx;
use crate::domain::money::{format_money, from_fen};
use crate::domain::month::Month;
use crate::output::Destination;
use crate::reporting::summary::{KnownApi, MonthSummary, Summarizer};
use crate::store::Store;
use std::io::Write;
use std::path::Path;

/// How many of the largest bills a summary keeps (the report shows them).
pub const LARGEST: usize = 10;

/// Reads the month's bills and sums them up.
pub async fn month_summary<S: Store>(store: &S, ctx: &Ctx, month: Month) -> anyhow::Result<MonthSummary> {
    let known = ctx
        .catalog
        .for_month(month)
        .map(|v| {
            v.apis
                .values()
                .map(|a| KnownApi {
                    api: a.api.clone(),
                    api_name: a.display_name.clone(),
                    tiers: a.tiers.len(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut s = Summarizer::new(known, store.arrears_bills(month).await?, LARGEST);
    store
        .export_lines(Some(month), None, &mut |l| {
            s.push(l, |l| names(ctx, &l.catalog_version, &l.api).1);
            Ok(())
        })
        .await?;
    Ok(s.finish())
}

/// The header: fixed columns around one `accounts_tier_i` per tier.
pub fn header(tiers: usize) -> Vec<String> {
    let mut h: Vec<String> = [
        "section",
        "api",
        "api_name",
        "accounts",
        "calls",
        "free_calls",
        "prepaid_calls",
        "billable_calls",
    ]
    .map(String::from)
    .to_vec();
    h.extend((1..=tiers).map(|t| format!("accounts_tier_{t}")));
    h.extend(
        [
            "revenue",
            "rounding",
            "billed",
            "currency",
            "account_id",
            "account_name",
            "bill_id",
            "revision",
            "owed",
            "suspend_at",
            "credited",
            "due",
        ]
        .map(String::from),
    );
    h
}

/// The rows under [`header`], every text cell neutralised for spreadsheets.
pub fn rows(ctx: &Ctx, s: &MonthSummary, currency: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let blank = |n: usize| vec![String::new(); n];
    let cur = text_cell(currency);
    for a in &s.apis {
        let mut r = vec![
            "api".to_owned(),
            text_cell(&a.api),
            text_cell(&a.api_name),
            a.accounts.to_string(),
            a.calls.to_string(),
            a.free_calls.to_string(),
            a.prepaid_calls.to_string(),
            a.billable_calls.to_string(),
        ];
        r.extend(a.accounts_per_tier.iter().map(u64::to_string));
        r.extend([format_money(a.revenue), String::new(), String::new(), cur.clone()]);
        r.extend(blank(8));
        rows.push(r);
    }
    let sum = |f: fn(&crate::reporting::summary::ApiSummary) -> i64| s.apis.iter().map(f).sum::<i64>().to_string();
    let mut total = vec![
        "total".to_owned(),
        "TOTAL".to_owned(),
        String::new(),
        s.bills.to_string(),
        sum(|a| a.calls),
        sum(|a| a.free_calls),
        sum(|a| a.prepaid_calls),
        sum(|a| a.billable_calls),
    ];
    total.extend((0..s.tiers).map(|t| s.apis.iter().map(|a| a.accounts_per_tier[t]).sum::<u64>().to_string()));
    total.extend([
        format_money(s.revenue),
        format_money(s.rounding),
        format_money(from_fen(s.billed_fen)),
        cur.clone(),
    ]);
    total.extend(blank(6));
    total.extend([
        format_money(from_fen(s.credited_fen)),
        format_money(from_fen(s.due_fen)),
    ]);
    rows.push(total);
    for b in &s.arrears {
        let mut r = vec!["arrears".to_owned()];
        r.extend(blank(7 + s.tiers + 2));
        r.extend([
            format_money(from_fen(b.total_fen)),
            cur.clone(),
            text_cell(&b.account_id),
            text_cell(&b.account_name),
            text_cell(&b.bill_id),
            b.revision.to_string(),
            format_money(from_fen(b.owed_fen())),
            b.suspend_at.map(|t| ctx.local(t)).unwrap_or_default(),
            format_money(from_fen(b.credited_fen)),
            format_money(from_fen(b.due_fen)),
        ]);
        rows.push(r);
    }
    let mut r = vec![
        "arrears_total".to_owned(),
        String::new(),
        String::new(),
        s.arrears.len().to_string(),
    ];
    r.extend(blank(4 + s.tiers + 3));
    r.push(cur);
    r.extend(blank(4));
    r.extend([format_money(from_fen(s.owed_fen())), String::new()]);
    r.extend(blank(2));
    rows.push(r);
    rows
}

/// Writes the summary CSV to `out`, after a byte-order mark if `excel`.
pub fn write<W: Write>(ctx: &Ctx, s: &MonthSummary, currency: &str, excel: bool, mut out: W) -> anyhow::Result<()> {
    if excel {
        out.write_all(BOM.as_bytes())?;
    }
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header(s.tiers))?;
    for r in rows(ctx, s, currency) {
        w.write_record(r)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes the month's summary to `path` whole or not at all, or to standard output.
pub async fn summary<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    path: Option<&Path>,
    excel: bool,
) -> anyhow::Result<MonthSummary> {
    super::check_settled(store, month).await?;
    let s = month_summary(store, ctx, month).await?;
    let currency = currency(ctx, month);
    let mut out = Destination::open(path)?;
    write(ctx, &s, &currency, excel, &mut out)?;
    out.finish()?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_as_many_cells_as_the_header() {
        let ctx = Ctx {
            now: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            tz: chrono_tz::Asia::Shanghai,
            catalog: crate::domain::catalog::Catalog::built_in(),
            progress: false,
            page_size: 1,
            settle_after: chrono::Duration::zero(),
        };
        let mut s = Summarizer::new(
            vec![KnownApi {
                api: "A".into(),
                api_name: "=A".into(),
                tiers: 4,
            }],
            vec![],
            1,
        )
        .finish();
        s.arrears.push(crate::reporting::summary::BillSummary {
            account_id: "-x".into(),
            account_name: "X".into(),
            bill_id: "b".into(),
            revision: 1,
            exact_total: 1.into(),
            total_fen: 100,
            rounding_adjustment: 0.into(),
            credited_fen: 0,
            due_fen: 100,
            balance_after_fen: -5,
            suspend_at: None,
        });
        let h = header(s.tiers);
        let rows = rows(&ctx, &s, "CNY");
        assert_eq!(rows.len(), 4);
        for r in &rows {
            assert_eq!(r.len(), h.len(), "{r:?}");
        }
        let col = |name: &str| h.iter().position(|c| c == name).unwrap();
        assert_eq!(rows[0][col("api_name")], "'=A");
        assert_eq!(rows[2][col("account_id")], "'-x");
        assert_eq!(rows[2][col("owed")], "0.05");
        assert_eq!(rows[3][col("owed")], "0.05");
        assert_eq!(rows[3][col("accounts")], "1");
        assert_eq!(rows[1][col("billed")], "0.00");
    }
}
