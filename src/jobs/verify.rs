//! `billrun verify`: checks the books and names every breach.
//!
//! The checks are:
//!
//! - each account's balance equals the sum of its ledger entries;
//! - there is at most one original bill per account and month, and revisions are numbered
//!   without gaps;
//! - every bill and adjustment is debited exactly once, by exactly what it moved;
//! - each bill's total equals its exact lines, rounded with its strategy, and its rounding
//!   adjustment is the difference;
//! - every usage row of a settled month is counted by exactly one current bill revision, but
//!   late usage, which waits for the next run and is listed as pending (`jobs::billed_usage`,
//!   from the totals and the imports' kept content);
//! - each month's usage totals, which settle reads, are the sum of the rows the imports kept,
//!   read back from their stored content (`jobs::recount`);
//! - each usage import's stored content (`input::stored`) is what was imported;
//! - each pack's remainder is its size minus what current bills took from it.
//!
//! The checks on money and keys and the pack checks are SQL (`store::sql::verify`); the usage
//! checks read the imports' kept content back (`jobs::billed_usage`, `jobs::recount`). The
//! arithmetic of each bill is checked here, with `rust_decimal`.

use crate::domain::money::{from_fen, Rounding};
use crate::domain::month::Month;
use crate::store::sql::verify::{BookCheck, MAX_PER_CHECK};
use crate::store::{LateUsage, LineAmount, Store};
use anyhow::Context;
use rust_decimal::Decimal;
use std::path::Path;

/// One check and what it found.
#[derive(Clone, Debug)]
pub struct Check {
    pub what: &'static str,
    pub breaches: u64,
    /// The first breaches, named.
    pub examples: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub checks: Vec<Check>,
    pub bills_checked: u64,
    /// Late usage waiting for the next run to bill it: pending, not a breach.
    pub pending: Vec<LateUsage>,
    /// The months whose usage is archived in part or whole, and whether it was read back.
    pub archived: Vec<ArchivedMonth>,
}

/// A month some of whose usage imports are archived (`billrun archive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMonth {
    pub month: String,
    /// How many of its imports are archived.
    pub imports: u64,
    /// Their calls in the month, as recorded when they were archived.
    pub calls: i64,
    /// Read back from the archive's files (`verify --archive`); else checked as a whole
    /// against the calls recorded.
    pub read: bool,
}

impl Report {
    pub fn breaches(&self) -> u64 {
        self.checks.iter().map(|c| c.breaches).sum()
    }
}

/// The checks, of `month` (`None`: every month), reading the content of archived imports from
/// `archive` if given.
pub async fn verify<S: Store>(store: &S, month: Option<Month>, archive: Option<&Path>) -> anyhow::Result<Report> {
    let mut checks = Vec::new();
    for check in BookCheck::all() {
        let what = check.what();
        let started = std::time::Instant::now();
        let found = store
            .breaches(check, month)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("checking that {what}"))?;
        tracing::debug!(check = what, millis = started.elapsed().as_millis() as u64, "checked");
        let breaches = found.len() as u64;
        let examples = found.into_iter().take(MAX_PER_CHECK).collect();
        checks.push(Check {
            what,
            breaches,
            examples,
        });
    }
    let billed = super::billed_usage::check(store, month).await?;
    let (stored, totals) = super::recount::recount(store, month, super::recount::TOTALS_PER_PASS, archive).await?;
    for found in [billed, totals, stored] {
        checks.push(Check {
            what: found.what,
            breaches: found.breaches,
            examples: found.examples,
        });
    }
    let mut arithmetic = Check {
        what: "each bill's total is its exact lines rounded to 0.01 with its strategy, plus its rounding adjustment",
        breaches: 0,
        examples: Vec::new(),
    };
    let started = std::time::Instant::now();
    let mut bills_checked = 0u64;
    let mut bill: Option<(LineAmount, Decimal)> = None;
    let check_bill = |head: &LineAmount, lines_sum: Decimal, found: &mut Check| {
        if let Some(problem) = bill_problem(head, lines_sum) {
            found.breaches += 1;
            if found.examples.len() < MAX_PER_CHECK {
                found.examples.push(format!("bill {}: {problem}", head.bill_id));
            }
        }
    };
    store
        .line_amounts(month, &mut |line| {
            match &mut bill {
                Some((head, sum)) if head.bill_id == line.bill_id => *sum += line.amount,
                _ => {
                    if let Some((head, sum)) = bill.take() {
                        check_bill(&head, sum, &mut arithmetic);
                    }
                    bills_checked += 1;
                    let amount = line.amount;
                    bill = Some((line, amount));
                }
            }
            Ok(())
        })
        .await?;
    if let Some((head, sum)) = bill.take() {
        check_bill(&head, sum, &mut arithmetic);
    }
    tracing::debug!(
        check = arithmetic.what,
        millis = started.elapsed().as_millis() as u64,
        "checked"
    );
    checks.push(arithmetic);
    let pending = store
        .late_usage()
        .await?
        .into_iter()
        .filter(|l| month.map_or(true, |m| m == l.month))
        .collect();
    let mut archived: std::collections::BTreeMap<String, ArchivedMonth> = Default::default();
    for import in store.stored_imports().await? {
        let Some(a) = import.archived.filter(|_| !import.retracted) else {
            continue;
        };
        for (m, calls) in a.calls {
            if month.is_some_and(|only| only.to_string() != m) {
                continue;
            }
            let entry = archived.entry(m.clone()).or_insert(ArchivedMonth {
                month: m,
                imports: 0,
                calls: 0,
                read: archive.is_some(),
            });
            entry.imports += 1;
            entry.calls += calls;
        }
    }
    Ok(Report {
        checks,
        bills_checked,
        pending,
        archived: archived.into_values().collect(),
    })
}

/// What is wrong with a bill's arithmetic, if anything.
fn bill_problem(head: &LineAmount, lines_sum: Decimal) -> Option<String> {
    let total = from_fen(head.total_fen);
    let rounding: Rounding = match head.rounding.parse() {
        Ok(r) => r,
        Err(e) => return Some(e),
    };
    if lines_sum != head.exact_total {
        Some(format!("lines sum to {lines_sum}, the bill says {}", head.exact_total))
    } else if rounding.to_fen_precision(lines_sum) != total {
        Some(format!(
            "{lines_sum} rounded {rounding} is {}, the bill says {total}",
            rounding.to_fen_precision(lines_sum)
        ))
    } else if lines_sum + head.rounding_adjustment != total {
        Some(format!(
            "lines {lines_sum} + adjustment {} ≠ total {total}",
            head.rounding_adjustment
        ))
    } else {
        None
    }
}
