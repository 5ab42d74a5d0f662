//! The month report: one self-contained HTML page for the finance lead. Pure: [`render`] turns
//! a [`ReportData`] into text.
//!
//! Self-contained means the page needs nothing but itself: the CSS is inline, the charts are
//! inline SVG, there is no script, no font, image or link to fetch, and a
//! `Content-Security-Policy` of `default-src 'none'` (inline styles only) makes the browser
//! refuse any fetch, so a mistake would show up as a refused load rather than a silent one.
//! Every piece of text from the database or the catalog (account names above all) is escaped.

use super::summary::{BillSummary, MonthSummary};
use super::svg::{self, Bar, Series};
use super::{esc, group_digits};
use crate::domain::money::{format_money, from_fen};
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::fmt::Write;

/// One month of the history chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthPoint {
    pub month: String,
    pub bills: u64,
    pub billed_fen: i64,
}

/// An account in arrears after the month's bill, with where it stands now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrearsRow {
    pub bill: BillSummary,
    /// `arrears`, `suspended`, `active`… as `accounts list` says it, at the time of the report.
    pub status_now: String,
    pub balance_now: Decimal,
}

/// Everything the page shows.
#[derive(Clone, Debug)]
pub struct ReportData {
    pub month: String,
    pub tz: Tz,
    /// The clock (`--now`) when the report was made.
    pub generated_at: DateTime<Utc>,
    pub currency: String,
    /// The catalog version in force for the month.
    pub catalog_version: String,
    /// When the month's settlement ran to the end, if it has.
    pub settled_at: Option<DateTime<Utc>>,
    pub summary: MonthSummary,
    /// Months before this one and this one, oldest first.
    pub history: Vec<MonthPoint>,
    /// The accounts in arrears shown, largest debt first (at most [`ARREARS_SHOWN`]).
    pub arrears: Vec<ArrearsRow>,
}

/// How many accounts in arrears the page lists; the summary export lists them all.
pub const ARREARS_SHOWN: usize = 100;

const CSS: &str = "
body { font-family: system-ui, 'Noto Sans CJK SC', 'Noto Sans', sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; }
p.meta { color: #5b6270; margin: 0 0 20px; }
section { background: #fff; border-radius: 8px; padding: 18px 22px; margin: 0 0 18px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 0 0 18px; }
.kpi { background: #fff; border-radius: 8px; padding: 14px 18px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.kpi .label { display: block; color: #5b6270; font-size: 13px; }
.kpi .value { display: block; font-size: 22px; font-weight: 600; margin-top: 4px; }
.kpi .note { display: block; color: #5b6270; font-size: 12px; margin-top: 2px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 10px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e3e5e9; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #1d2330; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg .label { font-size: 12px; fill: #1d2330; }
svg .value { font-size: 12px; fill: #5b6270; }
svg .highlight { fill: #fff4d6; }
.warn { color: #b3261e; }
footer, p.note { color: #5b6270; font-size: 12px; }
td:first-child { white-space: nowrap; }
";

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn money(amount: Decimal) -> String {
    group_digits(&format_money(amount))
}

fn fen(amount: i64) -> String {
    money(from_fen(amount))
}

fn count(n: i64) -> String {
    group_digits(&n.to_string())
}

/// The page.
pub fn render(r: &ReportData) -> String {
    let s = &r.summary;
    let cur = esc(&r.currency);
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>billrun · {month} month report</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>Month report {month}</h1>
<p class="meta">Billing month {month} in {tz} · catalog {version} · {settled} · made at {made}</p>
"#,
        month = esc(&r.month),
        tz = esc(r.tz.name()),
        version = esc(&r.catalog_version),
        settled = match r.settled_at {
            Some(t) => format!("settled {}", esc(&local(t, r.tz))),
            None => r#"<span class="warn">not fully settled yet: figures may still change</span>"#.into(),
        },
        made = esc(&local(r.generated_at, r.tz)),
    );
    kpis(&mut h, r, &cur);
    revenue_section(&mut h, s, &cur);
    tier_section(&mut h, s);
    history_section(&mut h, r, &cur);
    largest_section(&mut h, s, &cur);
    arrears_section(&mut h, r, &cur);
    let _ = write!(
        h,
        r#"<footer><p>Each account's latest bill revision counts. Revenue is the sum of exact line
amounts; each bill total is its exact lines rounded to 0.01 {cur} with the catalog's rounding
strategy, and the difference is its rounding adjustment, so revenue + rounding = billed, exactly.
<code>billrun export summary --month {month}</code> has the same figures as CSV, and
<code>billrun export bills --month {month}</code> every line.</p></footer>
</main>
</body>
</html>
"#,
        month = esc(&r.month)
    );
    h
}

fn kpis(h: &mut String, r: &ReportData, cur: &str) {
    let s = &r.summary;
    let _ = write!(
        h,
        r#"<div class="kpis">
<div class="kpi" id="total-billed"><span class="label">Billed in {month}</span><span class="value">{billed} {cur}</span><span class="note">sum of {bills} rounded bill totals; credit notes {credited} {cur}, due {due} {cur}</span></div>
<div class="kpi"><span class="label">Revenue (exact lines)</span><span class="value">{revenue} {cur}</span><span class="note">rounding {rounding} {cur}</span></div>
<div class="kpi"><span class="label">Bills</span><span class="value">{bills}</span><span class="note">{billable} billable calls</span></div>
<div class="kpi"><span class="label">Accounts in arrears</span><span class="value">{arrears}</span><span class="note">owing {owed} {cur}</span></div>
</div>
"#,
        month = esc(&r.month),
        billed = fen(s.billed_fen),
        credited = fen(s.credited_fen),
        due = fen(s.due_fen),
        bills = count(s.bills as i64),
        revenue = money(s.revenue),
        rounding = format_money(s.rounding),
        billable = count(s.apis.iter().map(|a| a.billable_calls).sum()),
        arrears = count(s.arrears.len() as i64),
        owed = fen(s.owed_fen()),
    );
}

fn revenue_section(h: &mut String, s: &MonthSummary, cur: &str) {
    let bars: Vec<Bar> = s
        .apis
        .iter()
        .map(|a| Bar {
            label: a.api_name.clone(),
            value: a.revenue,
            text: format!("{} {}", money(a.revenue), cur),
        })
        .collect();
    let _ = write!(
        h,
        "<section><h2>Revenue by API</h2>{}<table><tr><th>API</th><th>name</th><th class=\"n\">accounts</th>\
         <th class=\"n\">calls</th><th class=\"n\">free</th><th class=\"n\">prepaid</th><th class=\"n\">billable</th>\
         <th class=\"n\">revenue ({cur})</th></tr>",
        svg::bars("chart-revenue", "Revenue by API", &bars, 1000)
    );
    for a in &s.apis {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&a.api),
            esc(&a.api_name),
            count(a.accounts as i64),
            count(a.calls),
            count(a.free_calls),
            count(a.prepaid_calls),
            count(a.billable_calls),
            money(a.revenue)
        );
    }
    let sum = |f: fn(&super::summary::ApiSummary) -> i64| count(s.apis.iter().map(f).sum());
    let _ = writeln!(
        h,
        "<tr class=\"total\"><td>TOTAL</td><td></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\
         <tr><td colspan=\"7\">rounding adjustments</td><td class=\"n\">{}</td></tr>\
         <tr class=\"total\"><td colspan=\"7\">billed</td><td class=\"n\">{}</td></tr>\
         <tr><td colspan=\"7\">credit notes</td><td class=\"n\">{}</td></tr>\
         <tr class=\"total\"><td colspan=\"7\">due after credit notes</td><td class=\"n\">{}</td></tr></table></section>",
        count(s.bills as i64),
        sum(|a| a.calls),
        sum(|a| a.free_calls),
        sum(|a| a.prepaid_calls),
        sum(|a| a.billable_calls),
        money(s.revenue),
        format_money(s.rounding),
        fen(s.billed_fen),
        fen(-s.credited_fen),
        fen(s.due_fen)
    );
}

fn tier_section(h: &mut String, s: &MonthSummary) {
    let categories: Vec<String> = (1..=s.tiers).map(|t| format!("tier {t}")).collect();
    let series: Vec<Series> = s
        .apis
        .iter()
        .map(|a| Series {
            name: a.api_name.clone(),
            values: a.billable_per_tier.iter().map(|&c| Decimal::from(c)).collect(),
            texts: a.billable_per_tier.iter().map(|&c| count(c)).collect(),
        })
        .collect();
    let _ = write!(
        h,
        "<section><h2>Billable calls by tier</h2>{}<table><tr><th>API</th>",
        svg::columns(
            "chart-tiers",
            "Billable calls by tier",
            &categories,
            &series,
            None,
            1000,
            170
        )
    );
    for c in &categories {
        let _ = write!(h, "<th class=\"n\">{c}</th>");
    }
    h.push_str("</tr>");
    for a in &s.apis {
        let _ = write!(h, "<tr><td>{}</td>", esc(&a.api_name));
        for (calls, accounts) in a.billable_per_tier.iter().zip(&a.accounts_per_tier) {
            let _ = write!(
                h,
                "<td class=\"n\">{} ({})</td>",
                count(*calls),
                count(*accounts as i64)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str(
        "</table><p class=\"note\">Each cell: billable calls (accounts). A line counts in the tier that priced \
         it (graduated pricing: the highest tier it reached).</p></section>\n",
    );
}

fn history_section(h: &mut String, r: &ReportData, cur: &str) {
    let categories: Vec<String> = r.history.iter().map(|p| p.month.clone()).collect();
    let series = [Series {
        name: "billed".into(),
        values: r.history.iter().map(|p| from_fen(p.billed_fen)).collect(),
        texts: r.history.iter().map(|p| fen(p.billed_fen)).collect(),
    }];
    let highlight = r.history.iter().position(|p| p.month == r.month);
    let _ = write!(
        h,
        "<section><h2>{} against the months before</h2>{}<table><tr><th>month</th><th class=\"n\">bills</th>\
         <th class=\"n\">billed ({cur})</th></tr>",
        esc(&r.month),
        svg::columns(
            "chart-history",
            "Billed per month",
            &categories,
            &series,
            highlight,
            1000,
            120
        )
    );
    for p in &r.history {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&p.month),
            count(p.bills as i64),
            fen(p.billed_fen)
        );
    }
    h.push_str("</table></section>\n");
}

fn largest_section(h: &mut String, s: &MonthSummary, cur: &str) {
    let _ = write!(
        h,
        "<section><h2>Largest bills</h2><table id=\"largest\"><tr><th>#</th><th>account</th><th>name</th>\
         <th>bill</th><th class=\"n\">total ({cur})</th><th class=\"n\">exact lines</th><th class=\"n\">rounding</th>\
         <th class=\"n\">balance after</th></tr>"
    );
    for (i, b) in s.largest.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            esc(&b.account_id),
            esc(&b.account_name),
            esc(&b.bill_id),
            fen(b.total_fen),
            money(b.exact_total),
            format_money(b.rounding_adjustment),
            fen(b.balance_after_fen)
        );
    }
    h.push_str("</table></section>\n");
}

fn arrears_section(h: &mut String, r: &ReportData, cur: &str) {
    let s = &r.summary;
    let _ = write!(
        h,
        "<section><h2>Accounts in arrears</h2><p class=\"meta\">{} accounts were left with a negative balance by \
         their {} bill, owing {} {cur} in all{}. Service stops at <code>suspend_at</code> unless a recharge \
         brings the balance to 0 or above.</p><table id=\"arrears\"><tr><th>account</th><th>name</th><th>bill</th>\
         <th class=\"n\">bill total</th><th class=\"n\">owed after it</th><th>suspend_at</th><th>status now</th>\
         <th class=\"n\">balance now</th></tr>",
        count(s.arrears.len() as i64),
        esc(&r.month),
        fen(s.owed_fen()),
        if r.arrears.len() < s.arrears.len() {
            format!("; the {} largest debts are listed", r.arrears.len())
        } else {
            String::new()
        }
    );
    for a in &r.arrears {
        let b = &a.bill;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n warn\">{}</td><td>{}</td>\
             <td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&b.account_id),
            esc(&b.account_name),
            esc(&b.bill_id),
            fen(b.total_fen),
            fen(b.owed_fen()),
            b.suspend_at.map(|t| esc(&local(t, r.tz))).unwrap_or_default(),
            esc(&a.status_now),
            money(a.balance_now)
        );
    }
    h.push_str("</table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::summary::{KnownApi, Summarizer};

    fn data(name: &str) -> ReportData {
        let mut summary = Summarizer::new(
            vec![KnownApi {
                api: "AssessQuality".into(),
                api_name: "图像质量评估".into(),
                tiers: 4,
            }],
            vec![],
            10,
        )
        .finish();
        let bill = BillSummary {
            account_id: "x".into(),
            account_name: name.into(),
            bill_id: "2026-10-x-r1".into(),
            revision: 1,
            exact_total: Decimal::new(2205, 3),
            total_fen: 221,
            rounding_adjustment: Decimal::new(5, 3),
            credited_fen: 0,
            due_fen: 221,
            balance_after_fen: -121,
            suspend_at: DateTime::from_timestamp(1_793_500_000, 0),
        };
        summary.largest.push(bill.clone());
        summary.arrears.push(bill.clone());
        summary.billed_fen = 3_049_871;
        ReportData {
            month: "2026-10".into(),
            tz: chrono_tz::Asia::Shanghai,
            generated_at: DateTime::from_timestamp(1_793_480_000, 0).unwrap(),
            currency: "CNY".into(),
            catalog_version: "seed-2023-12".into(),
            settled_at: None,
            summary,
            history: vec![MonthPoint {
                month: "2026-10".into(),
                bills: 1,
                billed_fen: 3_049_871,
            }],
            arrears: vec![ArrearsRow {
                bill,
                status_now: "suspended".into(),
                balance_now: Decimal::new(-121, 2),
            }],
        }
    }

    #[test]
    fn names_are_escaped_and_nothing_is_fetched() {
        let page = render(&data("<img src=x onerror=alert(1)>"));
        assert!(!page.contains("<img"), "an account name became markup");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<script") && !page.contains("<link"));
        assert!(page.contains("default-src 'none'"));
    }

    #[test]
    fn the_page_shows_the_total_three_charts_and_the_tables() {
        let page = render(&data("示例一"));
        assert!(page.contains("30,498.71 CNY"), "the month's total");
        for id in ["chart-revenue", "chart-tiers", "chart-history"] {
            assert!(page.contains(&format!("<svg id=\"{id}\"")), "{id}");
        }
        assert!(page.contains("示例一"));
        assert!(page.contains("2026-11-01T"), "suspend_at in the billing zone");
        assert!(page.contains("not fully settled yet"));
    }
}
