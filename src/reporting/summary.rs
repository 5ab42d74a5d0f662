//! A month's bills summed up: per API, in total, the largest bills and the accounts left in
//! arrears. Pure: it is fed the bill lines in export order and never touches a database.
//!
//! Only each account's **latest revision** counts, the same rule as the month's current
//! billing ("the sum of `bill_total` over each account's latest revision"). So:
//!
//! - an API's `revenue` is the sum of its exact line amounts (never rounded);
//! - `revenue` (all APIs) + `rounding` (the sum of the bills' rounding adjustments) =
//!   `billed` (the sum of the rounded bill totals), exactly, because each bill's lines plus
//!   its adjustment equal its total (docs/rules.md, rule 5). Nothing is rounded here.
//!
//! Credit notes take money off a bill without changing its lines: `credited` sums the credits
//! the latest revisions carry, and `due` what those revisions ask for (each bill's total less
//! its credits, never below zero; `domain::credit::amount_due`), which is the money the month
//! moved.
//!
//! An account is "in arrears" for the month when its latest revision left its balance below
//! zero (docs/rules.md, rule 7); what it owes is minus that balance.

use crate::domain::credit::amount_due;
use crate::store::{ArrearsBill, ExportLine};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// One API's month.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiSummary {
    pub api: String,
    pub api_name: String,
    /// Accounts with a line for this API.
    pub accounts: u64,
    pub calls: i64,
    pub free_calls: i64,
    pub prepaid_calls: i64,
    pub billable_calls: i64,
    /// Sum of the exact line amounts.
    pub revenue: Decimal,
    /// Accounts whose line was priced at tier i + 1 (graduated: the highest tier reached).
    pub accounts_per_tier: Vec<u64>,
    /// Billable calls of the lines priced at tier i + 1.
    pub billable_per_tier: Vec<i64>,
}

/// One bill (an account's latest revision), as the summary lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillSummary {
    pub account_id: String,
    pub account_name: String,
    pub bill_id: String,
    pub revision: i32,
    pub exact_total: Decimal,
    pub total_fen: i64,
    pub rounding_adjustment: Decimal,
    /// Credit notes issued against the bill, and what it asks for after them.
    pub credited_fen: i64,
    pub due_fen: i64,
    pub balance_after_fen: i64,
    /// The service stop the account was under after this bill, if it left it in arrears.
    pub suspend_at: Option<DateTime<Utc>>,
}

impl BillSummary {
    /// What the account owes after this bill: minus a negative balance, else zero.
    pub fn owed_fen(&self) -> i64 {
        (-self.balance_after_fen).max(0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthSummary {
    /// Per API, by API id: every API of the catalog version in force, and any other billed.
    pub apis: Vec<ApiSummary>,
    /// How many tier columns: the most tiers any API has, or any line reached.
    pub tiers: usize,
    /// Accounts billed (one latest revision each).
    pub bills: u64,
    /// Sum of every exact line amount.
    pub revenue: Decimal,
    /// Sum of the bills' rounding adjustments.
    pub rounding: Decimal,
    /// Sum of the rounded bill totals, in fen.
    pub billed_fen: i64,
    /// Sum of the credit notes the bills carry, in fen.
    pub credited_fen: i64,
    /// Sum of what the bills ask for after their credits, in fen.
    pub due_fen: i64,
    /// The largest bills, largest first (then by account id).
    pub largest: Vec<BillSummary>,
    /// Accounts whose latest revision left them in arrears, by account id.
    pub arrears: Vec<BillSummary>,
}

impl MonthSummary {
    /// What the accounts in arrears owe in all, in fen.
    pub fn owed_fen(&self) -> i64 {
        self.arrears.iter().map(BillSummary::owed_fen).sum()
    }
}

/// An API the summary lists even without bills: (id, display name, number of tiers).
pub struct KnownApi {
    pub api: String,
    pub api_name: String,
    pub tiers: usize,
}

/// Builds a [`MonthSummary`] from bill lines pushed in export order (account, revision, API).
pub struct Summarizer {
    apis: BTreeMap<String, ApiSummary>,
    tiers: usize,
    stops: HashMap<String, Option<DateTime<Utc>>>,
    largest_n: usize,
    /// The lines of the revision being read; a later revision of the same account replaces it.
    current: Vec<ExportLine>,
    out: MonthSummary,
}

impl Summarizer {
    /// `names` gives an API's display name for a line's catalog version; `arrears` are the
    /// month's revisions that left a balance negative (for their `suspend_at`).
    pub fn new(known: Vec<KnownApi>, arrears: Vec<ArrearsBill>, largest_n: usize) -> Summarizer {
        let tiers = known.iter().map(|k| k.tiers).max().unwrap_or(0);
        let apis = known
            .into_iter()
            .map(|k| {
                (
                    k.api.clone(),
                    ApiSummary {
                        api: k.api,
                        api_name: k.api_name,
                        ..ApiSummary::default()
                    },
                )
            })
            .collect();
        Summarizer {
            apis,
            tiers,
            stops: arrears.into_iter().map(|b| (b.bill_id, b.suspend_at)).collect(),
            largest_n,
            current: Vec::new(),
            out: MonthSummary {
                apis: Vec::new(),
                tiers: 0,
                bills: 0,
                revenue: Decimal::ZERO,
                rounding: Decimal::ZERO,
                billed_fen: 0,
                credited_fen: 0,
                due_fen: 0,
                largest: Vec::new(),
                arrears: Vec::new(),
            },
        }
    }

    /// Adds one line; `api_name` gives its API's display name, asked once per API not known.
    pub fn push(&mut self, line: ExportLine, api_name: impl FnOnce(&ExportLine) -> String) {
        match self.current.first() {
            Some(c) if c.account_id != line.account_id => self.fold(),
            Some(c) if c.revision != line.revision => self.current.clear(),
            _ => {}
        }
        if !self.apis.contains_key(&line.api) {
            let api = line.api.clone();
            self.apis.insert(
                api.clone(),
                ApiSummary {
                    api,
                    api_name: api_name(&line),
                    ..ApiSummary::default()
                },
            );
        }
        self.current.push(line);
    }

    /// Counts the buffered revision: the latest of its account.
    fn fold(&mut self) {
        let lines = std::mem::take(&mut self.current);
        let Some(head) = lines.first() else { return };
        for l in &lines {
            let a = self.apis.get_mut(&l.api).expect("API registered on push");
            let tier = usize::try_from(l.tier.max(1)).unwrap_or(1);
            self.tiers = self.tiers.max(tier);
            if a.accounts_per_tier.len() < tier {
                a.accounts_per_tier.resize(tier, 0);
                a.billable_per_tier.resize(tier, 0);
            }
            a.accounts += 1;
            a.calls += l.total_calls;
            a.free_calls += l.free_calls;
            a.prepaid_calls += l.prepaid_calls;
            a.billable_calls += l.billable_calls;
            a.revenue += l.amount;
            a.accounts_per_tier[tier - 1] += 1;
            a.billable_per_tier[tier - 1] += l.billable_calls;
            self.out.revenue += l.amount;
        }
        let bill = BillSummary {
            account_id: head.account_id.clone(),
            account_name: head.account_name.clone(),
            bill_id: head.bill_id.clone(),
            revision: head.revision,
            exact_total: head.bill_exact_total,
            total_fen: head.bill_total_fen,
            rounding_adjustment: head.rounding_adjustment,
            credited_fen: head.credited_fen,
            due_fen: amount_due(head.bill_total_fen, head.credited_fen),
            balance_after_fen: head.balance_after_fen,
            suspend_at: self.stops.get(&head.bill_id).copied().flatten(),
        };
        self.out.bills += 1;
        self.out.rounding += bill.rounding_adjustment;
        self.out.billed_fen += bill.total_fen;
        self.out.credited_fen += bill.credited_fen;
        self.out.due_fen += bill.due_fen;
        if bill.balance_after_fen < 0 {
            self.out.arrears.push(bill.clone());
        }
        self.keep_if_large(bill);
    }

    fn keep_if_large(&mut self, bill: BillSummary) {
        if self.largest_n == 0 {
            return;
        }
        let key = |b: &BillSummary| (std::cmp::Reverse(b.total_fen), b.account_id.clone());
        let largest = &mut self.out.largest;
        if largest.len() == self.largest_n && largest.last().is_some_and(|l| key(l) <= key(&bill)) {
            return;
        }
        let at = largest.partition_point(|l| key(l) <= key(&bill));
        largest.insert(at, bill);
        largest.truncate(self.largest_n);
    }

    pub fn finish(mut self) -> MonthSummary {
        self.fold();
        let tiers = self.tiers;
        self.out.apis = self
            .apis
            .into_values()
            .map(|mut a| {
                a.accounts_per_tier.resize(tiers, 0);
                a.billable_per_tier.resize(tiers, 0);
                a
            })
            .collect();
        self.out.tiers = tiers;
        self.out.arrears.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::settle::RevisionKind;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// A line of `account`'s bill revision `rev`: `amount` exact, the bill rounded to `total`.
    fn line(account: &str, rev: i32, api: &str, tier: i64, amount: &str, total_fen: i64, after: i64) -> ExportLine {
        let t = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        ExportLine {
            month: "2026-10".into(),
            bill_id: format!("2026-10-{account}-r{rev}"),
            revision: rev,
            kind: if rev == 1 {
                RevisionKind::Original
            } else {
                RevisionKind::Adjustment
            },
            debited_fen: total_fen,
            rounding: "half-up".into(),
            account_id: account.into(),
            account_name: account.to_uppercase(),
            api: api.into(),
            total_calls: 2000,
            free_calls: 1000,
            prepaid_calls: 0,
            billable_calls: 1000,
            tier,
            tier_from: 0,
            tier_to: None,
            unit_price: d("0.003"),
            amount: d(amount),
            pricing: "volume".into(),
            tier_basis: "total".into(),
            catalog_version: "v".into(),
            bill_exact_total: d(amount),
            bill_total_fen: total_fen,
            rounding_adjustment: Decimal::new(total_fen, 2) - d(amount),
            balance_before_fen: 0,
            balance_after_fen: after,
            period_start: t,
            period_end: t,
            settled_at: t,
            credited_fen: 0,
            credit: None,
        }
    }

    fn known(api: &str) -> KnownApi {
        KnownApi {
            api: api.into(),
            api_name: format!("{api} name"),
            tiers: 2,
        }
    }

    #[test]
    fn only_the_latest_revision_counts_and_totals_reconcile() {
        let mut s = Summarizer::new(
            vec![known("A"), known("B")],
            vec![ArrearsBill {
                bill_id: "2026-10-y-r2".into(),
                account_id: "y".into(),
                revision: 2,
                balance_after_fen: -50,
                suspend_at: DateTime::from_timestamp(86_400, 0),
            }],
            1,
        );
        for l in [
            line("x", 1, "A", 1, "2.205", 221, 100),
            line("y", 1, "A", 1, "9.0", 900, -10),
            line("y", 2, "A", 3, "0.5", 50, -50),
        ] {
            s.push(l, |_| unreachable!("A is known"));
        }
        s.push(line("z", 1, "C", 1, "0.004", 0, 5), |_| "C name".into());
        let m = s.finish();
        assert_eq!(m.bills, 3);
        assert_eq!(m.tiers, 3);
        let a = &m.apis[0];
        assert_eq!((a.api.as_str(), a.accounts, a.revenue), ("A", 2, d("2.705")));
        assert_eq!(a.accounts_per_tier, [1, 0, 1]);
        assert_eq!(a.billable_per_tier, [1000, 0, 1000]);
        assert_eq!(m.apis[1].accounts_per_tier, [0, 0, 0], "B had no bills");
        assert_eq!(m.apis[2].api_name, "C name");
        assert_eq!(m.revenue, d("2.709"));
        assert_eq!(m.billed_fen, 271);
        assert_eq!(m.revenue + m.rounding, Decimal::new(m.billed_fen, 2));
        assert_eq!(
            m.largest.iter().map(|b| b.account_id.as_str()).collect::<Vec<_>>(),
            ["x"]
        );
        assert_eq!(m.arrears.len(), 1);
        assert_eq!((m.arrears[0].owed_fen(), m.owed_fen()), (50, 50));
        assert_eq!(m.arrears[0].suspend_at, DateTime::from_timestamp(86_400, 0));
    }

    #[test]
    fn the_largest_bills_are_kept_in_order() {
        let mut s = Summarizer::new(vec![known("A")], vec![], 3);
        for (acct, fen) in [("a", 5), ("b", 50), ("c", 7), ("d", 50), ("e", 1), ("f", 60)] {
            s.push(line(acct, 1, "A", 1, "0", fen, 0), |_| String::new());
        }
        let m = s.finish();
        let order: Vec<&str> = m.largest.iter().map(|b| b.account_id.as_str()).collect();
        assert_eq!(order, ["f", "b", "d"]);
        assert!(m.arrears.is_empty());
    }
}
