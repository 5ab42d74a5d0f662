//! One account's bill for a month, told the way support explains it on the phone: where the
//! account stands now, then for each revision and API the calls, what the packs took off, the
//! tier and its price, the amount, then the rounding, the total and the balance before and
//! after. Pure: [`explain`] returns the text.

use super::group_digits;
use crate::domain::credit::amount_due;
use crate::domain::money::{format_money, from_fen};
use crate::domain::settle::RevisionKind;
use crate::store::{AccountStatus, AccountView, ExportLine};
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::fmt::Write;

/// What [`explain`] needs besides the lines.
pub struct BillContext<'a> {
    pub month: &'a str,
    pub tz: Tz,
    pub currency: &'a str,
    /// The account as it is now.
    pub account: &'a AccountView,
    /// Now: `--now`.
    pub now: DateTime<Utc>,
    /// Service stops of the revisions that left the balance negative, by bill id.
    pub stops: &'a HashMap<String, Option<DateTime<Utc>>>,
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn calls(n: i64) -> String {
    group_digits(&n.to_string())
}

/// The account's state now, in one sentence.
pub fn status_line(a: &AccountView, now: DateTime<Utc>, tz: Tz, currency: &str) -> String {
    let balance = format_money(a.balance);
    let at = a.suspend_at.map(|t| local(t, tz)).unwrap_or_default();
    match a.status(now) {
        AccountStatus::Inactive => format!("not opened (balance {balance} {currency})"),
        AccountStatus::Active => format!("active (balance {balance} {currency})"),
        AccountStatus::Arrears if a.suspend_at.is_some_and(|t| t <= now) => format!(
            "in arrears (balance {balance} {currency}): service was due to stop at {at}, and stops at the next \
             enforcement unless a recharge brings the balance to 0 or above first"
        ),
        AccountStatus::Arrears => format!(
            "in arrears (balance {balance} {currency}): service stops at {at} unless a recharge brings the \
             balance to 0 or above"
        ),
        AccountStatus::Suspended => format!(
            "suspended since {at} (balance {balance} {currency}): a recharge that brings the balance to 0 or \
             above restores the service at once"
        ),
    }
}

/// The range of calls a tier covers, as support would read it out.
fn tier_range(l: &ExportLine) -> String {
    match l.tier_to {
        Some(to) => format!("{} to {} calls", calls(l.tier_from), calls(to - 1)),
        None => format!("{} calls and more", calls(l.tier_from)),
    }
}

/// Explains one bill line; `api_name` is its API's display name.
fn explain_line(out: &mut String, l: &ExportLine, api_name: &str, currency: &str) {
    let named = if api_name == l.api {
        l.api.clone()
    } else {
        format!("{} ({api_name})", l.api)
    };
    let _ = writeln!(
        out,
        "  {named}: {} calls − {} free − {} prepaid = {} billable",
        calls(l.total_calls),
        calls(l.free_calls),
        calls(l.prepaid_calls),
        calls(l.billable_calls)
    );
    let basis = match l.tier_basis.as_str() {
        "billable" => format!("the month's {} billable calls", calls(l.billable_calls)),
        _ => format!("the month's {} calls in all", calls(l.total_calls)),
    };
    if l.pricing == "graduated" {
        let _ = writeln!(
            out,
            "    graduated pricing: each slice of the billable calls at its own tier's price, up to tier {} \
             ({}, {} {currency} a call)",
            l.tier,
            tier_range(l),
            l.unit_price.normalize()
        );
        let _ = writeln!(out, "    amount {} {currency}", format_money(l.amount));
    } else {
        let _ = writeln!(
            out,
            "    tier {} ({}), chosen by {basis}: {} {currency} a call",
            l.tier,
            tier_range(l),
            l.unit_price.normalize()
        );
        let _ = writeln!(
            out,
            "    {} × {} = {} {currency}",
            calls(l.billable_calls),
            l.unit_price.normalize(),
            format_money(l.amount)
        );
    }
}

/// The whole explanation. `lines` are every revision's lines in export order;
/// `api_name` gives a line's API display name.
pub fn explain(c: &BillContext<'_>, lines: &[ExportLine], api_name: &dyn Fn(&ExportLine) -> String) -> String {
    let mut out = String::new();
    let Some(first) = lines.first() else {
        return out;
    };
    let cur = c.currency;
    let revisions = lines.iter().map(|l| l.revision).max().unwrap_or(1);
    let _ = writeln!(
        out,
        "{} bill of {} ({}): {revisions} revision(s)",
        c.month, first.account_id, first.account_name
    );
    let _ = writeln!(out, "account status now: {}", status_line(c.account, c.now, c.tz, cur));
    for rev in lines.chunk_by(|a, b| a.revision == b.revision) {
        let head = &rev[0];
        let _ = writeln!(
            out,
            "\nrevision {} ({}), {} {}, catalog {}",
            head.revision,
            head.kind.as_str(),
            if head.credit.is_some() { "issued" } else { "settled" },
            local(head.settled_at, c.tz),
            head.catalog_version
        );
        if let Some(note) = &head.credit {
            let by = note.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
            let _ = writeln!(out, "  credit note {}{by}: {}", note.reference, note.reason);
        }
        for l in rev {
            explain_line(&mut out, l, &api_name(l), cur);
        }
        let sign = if head.rounding_adjustment.is_sign_negative() && !head.rounding_adjustment.is_zero() {
            ""
        } else {
            "+"
        };
        let _ = writeln!(
            out,
            "  lines        {} {cur} (exact)\n  rounding     {sign}{} {cur} ({} to 0.01)\n  total        {} {cur}",
            format_money(head.bill_exact_total),
            format_money(head.rounding_adjustment),
            head.rounding,
            format_money(from_fen(head.bill_total_fen)),
        );
        if head.credited_fen > 0 {
            let _ = writeln!(
                out,
                "  credits      -{} {cur}\n  due          {} {cur}",
                format_money(from_fen(head.credited_fen)),
                format_money(from_fen(amount_due(head.bill_total_fen, head.credited_fen))),
            );
        }
        let what = match head.kind {
            RevisionKind::Original => "the total",
            RevisionKind::Adjustment => "the difference from the previous revision",
            RevisionKind::Credit => "a credit note; the lines are unchanged",
        };
        let moved = if head.debited_fen < 0 { "credited" } else { "debited" };
        let _ = writeln!(
            out,
            "  {moved} {} {cur} ({what}); balance {} -> {} {cur}",
            format_money(from_fen(head.debited_fen).abs()),
            format_money(from_fen(head.balance_before_fen)),
            format_money(from_fen(head.balance_after_fen)),
        );
        if head.balance_after_fen < 0 {
            let stop = match c.stops.get(&head.bill_id).copied().flatten() {
                Some(t) => format!("; service stop scheduled at {}", local(t, c.tz)),
                None => String::new(),
            };
            let _ = writeln!(out, "  this left the account in arrears{stop}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn line(rev: i32, debited_fen: i64, after_fen: i64) -> ExportLine {
        ExportLine {
            month: "2026-10".into(),
            bill_id: format!("2026-10-down-r{rev}"),
            revision: rev,
            kind: if rev == 1 {
                RevisionKind::Original
            } else {
                RevisionKind::Adjustment
            },
            debited_fen,
            rounding: "half-up".into(),
            account_id: "down".into(),
            account_name: "Owes less".into(),
            api: "AssessQuality".into(),
            total_calls: 999_999,
            free_calls: 1000,
            prepaid_calls: 0,
            billable_calls: 998_999,
            tier: 1,
            tier_from: 0,
            tier_to: Some(1_000_000),
            unit_price: Decimal::from_str("0.003").unwrap(),
            amount: Decimal::from_str("2996.997").unwrap(),
            pricing: "volume".into(),
            tier_basis: "total".into(),
            catalog_version: "seed-2023-12".into(),
            bill_exact_total: Decimal::from_str("2996.997").unwrap(),
            bill_total_fen: 299_700,
            rounding_adjustment: Decimal::from_str("0.003").unwrap(),
            balance_before_fen: after_fen + debited_fen,
            balance_after_fen: after_fen,
            period_start: t("2026-10-01T00:00:00+08:00"),
            period_end: t("2026-11-01T00:00:00+08:00"),
            settled_at: t("2026-11-01T02:00:00+08:00"),
            credited_fen: 0,
            credit: None,
        }
    }

    #[test]
    fn a_stop_in_the_past_is_not_told_as_if_to_come() {
        let account = AccountView {
            account_id: "late".into(),
            name: "Late".into(),
            balance: Decimal::new(-100, 2),
            activated_at: Some(t("2026-01-01T00:00:00+08:00")),
            suspended: false,
            suspend_at: Some(t("2026-11-02T02:00:00+08:00")),
        };
        let tz = chrono_tz::Asia::Shanghai;
        let before = status_line(&account, t("2026-11-01T12:00:00+08:00"), tz, "CNY");
        assert!(
            before.contains("service stops at 2026-11-02T02:00:00+08:00"),
            "{before}"
        );
        let after = status_line(&account, t("2026-11-28T00:00:00+08:00"), tz, "CNY");
        assert!(
            after.contains("was due to stop at 2026-11-02T02:00:00+08:00"),
            "{after}"
        );
        assert!(!after.contains("service stops at"), "{after}");
    }

    #[test]
    fn a_bill_is_explained_step_by_step() {
        let account = AccountView {
            account_id: "down".into(),
            name: "Owes less".into(),
            balance: Decimal::new(-49750, 2),
            activated_at: Some(t("2026-01-01T00:00:00+08:00")),
            suspended: true,
            suspend_at: Some(t("2026-11-02T02:00:00+08:00")),
        };
        let stops = HashMap::from([("2026-10-down-r1".to_owned(), Some(t("2026-11-02T02:00:00+08:00")))]);
        let c = BillContext {
            month: "2026-10",
            tz: chrono_tz::Asia::Shanghai,
            currency: "CNY",
            account: &account,
            now: t("2026-11-05T00:00:00+08:00"),
            stops: &stops,
        };
        let text = explain(&c, &[line(1, 299_700, -99_700), line(2, -49_950, -49_750)], &|_| {
            "图像质量评估".into()
        });
        for expected in [
            "2026-10 bill of down (Owes less): 2 revision(s)",
            "account status now: suspended since 2026-11-02T02:00:00+08:00 (balance -497.50 CNY)",
            "AssessQuality (图像质量评估): 999,999 calls − 1,000 free − 0 prepaid = 998,999 billable",
            "tier 1 (0 to 999,999 calls), chosen by the month's 999,999 calls in all: 0.003 CNY a call",
            "998,999 × 0.003 = 2996.997 CNY",
            "rounding     +0.003 CNY (half-up to 0.01)",
            "total        2997.00 CNY",
            "debited 2997.00 CNY (the total); balance 2000.00 -> -997.00 CNY",
            "this left the account in arrears; service stop scheduled at 2026-11-02T02:00:00+08:00",
            "revision 2 (adjustment)",
            "credited 499.50 CNY (the difference from the previous revision); balance -997.00 -> -497.50 CNY",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
