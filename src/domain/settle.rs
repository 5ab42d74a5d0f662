//! The settlement rule for one account's month, as a plan (docs/rules.md, rules 3–8).
//!
//! Given what an account's month holds (its usage totals per API, the packs that may cover
//! the month, the current revision of its bill if any, and its balance and service state),
//! [`plan`] says what to write, or that nothing changed:
//!
//! - No bill yet: the original (revision 1), debited in full.
//! - A bill whose recomputed lines differ: an adjustment (revision n + 1) holding the
//!   recomputed lines. Only the difference is debited, or credited if negative. The packs the
//!   revision being replaced took are handed back before the new one takes its share.
//! - A bill that comes out the same: nothing.
//!
//! Credits an operator issued against the bill (`domain::credit`) are carried by every later
//! revision (`credited_fen`) and come off what the bill asks for: an account owes a revision's
//! total less its credits, never less than zero ([`amount_due`]). An adjustment moves the
//! difference between what is due before and after it, so late usage never charges a credit
//! back.
//!
//! A debit follows the arrears rule: a balance below zero after it sends a notice (except an
//! adjustment of zero, which moves no money). A credit follows the recharge rule: it clears
//! the countdown, or restores a suspended service, once the balance is zero or more. Every sum
//! is checked: an amount that would leave the range of a 64-bit count of fen is an error, never
//! a wrapped number.
//!
//! Stores only read the inputs and write the plan; the rule lives here.

use super::arrears::{self, ServiceState};
use super::bill::{compute_bill, ApiUsage, BillDraft, BillError};
use super::catalog::CatalogVersion;
use super::money::to_fen;
use super::packs::PackBalance;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentBill {
    pub revision: i32,
    pub total_fen: i64,
    /// What credits issued against the bill add up to, carried by every revision.
    pub credited_fen: i64,
    pub lines: Vec<StoredLine>,
    /// (pack_id, calls) this revision took from packs.
    pub consumed: Vec<(String, i64)>,
}

/// What an account's month holds, as read by the store.
#[derive(Clone, Debug)]
pub struct AccountMonth<'a> {
    pub usage: &'a [ApiUsage],
    /// Every pack that may cover the month, used up or not, as it stands now.
    pub packs: Vec<PackBalance>,
    pub current: Option<&'a CurrentBill>,
    pub state: ServiceState,
}

/// Whether a revision is the month's first bill, a correction of its usage, or a credit an
/// operator issued against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevisionKind {
    Original,
    Adjustment,
    Credit,
}

impl RevisionKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionKind::Original => "original",
            RevisionKind::Adjustment => "adjustment",
            RevisionKind::Credit => "credit",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<RevisionKind> {
        [RevisionKind::Original, RevisionKind::Adjustment, RevisionKind::Credit]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// What to write for one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub revision: i32,
    pub kind: RevisionKind,
    /// The recomputed bill: its lines, totals and what it takes from each pack.
    pub draft: BillDraft,
    /// `draft.total` in fen.
    pub total_fen: i64,
    /// The credits issued against the bill, carried from the revision replaced.
    pub credited_fen: i64,
    /// What this revision moves: the whole total for an original, the difference in what is
    /// due for an adjustment (negative: a credit). The ledger entry is its negation.
    pub debited_fen: i64,
    pub before: ServiceState,
    pub after: ServiceState,
    /// Send an arrears notice.
    pub notice: bool,
    /// The service comes back (a credit brought a suspended account to zero or more).
    pub restored: bool,
    /// Net change of each pack's `remaining`: what the replaced revision took comes back, what
    /// this one takes goes. Packs that do not change are left out.
    pub pack_deltas: BTreeMap<String, i64>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Pricing(#[from] BillError),
    /// The bill, the difference or the balance after it would not fit in a 64-bit count of fen.
    #[error("the bill of {total} or the balance after it is beyond the largest amount billrun keeps")]
    OutOfRange { total: Decimal },
}

/// What a revision asks the account to pay: its total less the credits issued against the
/// bill, never less than zero (a credit larger than a bill that later went down is spent).
pub fn amount_due(total_fen: i64, credited_fen: i64) -> i64 {
    total_fen.saturating_sub(credited_fen).max(0)
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

/// Plans one account's month, priced with `version`, as of `now` (the debit's time).
/// `None`: its bill already says what its usage does.
pub fn plan(month: AccountMonth<'_>, version: &CatalogVersion, now: DateTime<Utc>) -> Result<Option<Plan>, PlanError> {
    let AccountMonth {
        usage,
        mut packs,
        current,
        state,
    } = month;
    // Hand back what the revision being replaced took, so the new one is computed from the
    // packs as they stood before it.
    for (pack_id, calls) in current.map(|c| c.consumed.as_slice()).unwrap_or_default() {
        if let Some(p) = packs.iter_mut().find(|p| &p.pack_id == pack_id) {
            p.remaining += calls;
        }
    }
    let draft = compute_bill(version, usage, &mut packs)?;
    if current.is_some_and(|c| same_bill(&draft, c)) {
        return Ok(None);
    }
    let out_of_range = || PlanError::OutOfRange { total: draft.total };
    let total_fen = to_fen(draft.total).ok_or_else(out_of_range)?;
    let (revision, kind, credited_fen, debited_fen) = match current {
        None => (1, RevisionKind::Original, 0, total_fen),
        Some(c) => (
            c.revision + 1,
            RevisionKind::Adjustment,
            c.credited_fen,
            amount_due(total_fen, c.credited_fen)
                .checked_sub(amount_due(c.total_fen, c.credited_fen))
                .ok_or_else(out_of_range)?,
        ),
    };
    let (after, notice, restored) = if debited_fen >= 0 {
        let d = arrears::debit(state, debited_fen, now).ok_or_else(out_of_range)?;
        // An adjustment of zero moves no money and sends no new notice.
        let notice = d.arrears_notice && (kind == RevisionKind::Original || debited_fen > 0);
        (d.state, notice, false)
    } else {
        let r = arrears::recharge(state, -debited_fen).ok_or_else(out_of_range)?;
        (r.state, false, r.restored)
    };
    let mut pack_deltas: BTreeMap<String, i64> = BTreeMap::new();
    for (pack_id, calls) in current.map(|c| c.consumed.as_slice()).unwrap_or_default() {
        *pack_deltas.entry(pack_id.clone()).or_default() += calls;
    }
    for c in draft.lines.iter().flat_map(|l| &l.consumed) {
        *pack_deltas.entry(c.pack_id.clone()).or_default() -= c.calls;
    }
    pack_deltas.retain(|_, d| *d != 0);
    Ok(Some(Plan {
        revision,
        kind,
        total_fen,
        credited_fen,
        debited_fen,
        before: state,
        after,
        notice,
        restored,
        pack_deltas,
        draft,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use crate::domain::packs::PackKind;
    use proptest::prelude::*;

    const APIS: [&str; 3] = ["AssessQuality", "CropImage", "EnhanceImage"];

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn version() -> CatalogVersion {
        Catalog::built_in()
            .for_month("2026-10".parse().unwrap())
            .unwrap()
            .clone()
    }

    /// A month's packs: the free pack of each API and one prepaid pack.
    fn packs(prepaid: i64) -> Vec<PackBalance> {
        let mut packs: Vec<PackBalance> = APIS
            .iter()
            .map(|api| PackBalance {
                pack_id: format!("free:{api}"),
                kind: PackKind::Free,
                api: (*api).into(),
                remaining: 1000,
                valid_until: at("2026-11-01T00:00:00Z"),
                purchased_at: at("2026-10-01T00:00:00Z"),
            })
            .collect();
        packs.push(PackBalance {
            pack_id: "prepaid".into(),
            kind: PackKind::Prepaid,
            api: "CropImage".into(),
            remaining: prepaid,
            valid_until: at("2027-01-01T00:00:00Z"),
            purchased_at: at("2026-09-01T00:00:00Z"),
        });
        packs
    }

    /// A plan as the store would keep it: the current revision it leaves behind.
    fn stored(p: &Plan) -> CurrentBill {
        CurrentBill {
            revision: p.revision,
            total_fen: p.total_fen,
            credited_fen: p.credited_fen,
            lines: p
                .draft
                .lines
                .iter()
                .map(|l| StoredLine {
                    api: l.api.clone(),
                    total_calls: l.total_calls,
                    free_calls: l.free_calls,
                    prepaid_calls: l.prepaid_calls,
                    billable_calls: l.billable_calls,
                    unit_price: l.unit_price,
                    amount: l.amount,
                })
                .collect(),
            consumed: p
                .draft
                .lines
                .iter()
                .flat_map(|l| &l.consumed)
                .map(|c| (c.pack_id.clone(), c.calls))
                .collect(),
        }
    }

    /// The packs after `p` is written.
    fn apply(mut packs: Vec<PackBalance>, p: &Plan) -> Vec<PackBalance> {
        for pack in &mut packs {
            pack.remaining += p.pack_deltas.get(&pack.pack_id).copied().unwrap_or(0);
        }
        packs
    }

    fn usage() -> impl Strategy<Value = Vec<ApiUsage>> {
        prop::collection::vec((0usize..3, 1i64..5_000_000), 1..4).prop_map(|v| {
            let mut by_api: BTreeMap<&str, i64> = BTreeMap::new();
            for (i, calls) in v {
                *by_api.entry(APIS[i]).or_default() += calls;
            }
            by_api
                .into_iter()
                .map(|(api, calls)| ApiUsage { api: api.into(), calls })
                .collect()
        })
    }

    fn state() -> impl Strategy<Value = ServiceState> {
        (-1_000_000i64..10_000_000, any::<bool>()).prop_map(|(balance_fen, suspended)| ServiceState {
            balance_fen,
            suspend_at: (balance_fen < 0).then(|| at("2026-10-20T00:00:00Z")),
            suspended: suspended && balance_fen < 0,
        })
    }

    const NOW: &str = "2026-11-01T02:00:00+08:00";

    #[test]
    fn the_seed_example_is_an_original_debited_in_full() {
        let usage = [ApiUsage {
            api: "AssessQuality".into(),
            calls: 2_000_000,
        }];
        let state = ServiceState {
            balance_fen: 100_000,
            suspend_at: None,
            suspended: false,
        };
        let month = AccountMonth {
            usage: &usage,
            packs: packs(0),
            current: None,
            state,
        };
        let p = plan(month, &version(), at(NOW)).unwrap().unwrap();
        assert_eq!((p.revision, p.kind), (1, RevisionKind::Original));
        assert_eq!(p.total_fen, 499_750);
        assert_eq!(p.debited_fen, 499_750);
        assert_eq!(p.after.balance_fen, 100_000 - 499_750);
        assert!(p.notice);
        assert_eq!(p.after.suspend_at, Some(at("2026-11-02T02:00:00+08:00")));
        assert_eq!(
            p.pack_deltas,
            BTreeMap::from([("free:AssessQuality".to_owned(), -1000)])
        );
    }

    proptest! {
        /// Money is conserved: the balance moves by exactly what the revision debits, an
        /// adjustment debits exactly the difference from the revision before, and a re-plan of
        /// a month whose usage did not change plans nothing.
        #[test]
        fn money_moves_by_exactly_the_difference_and_an_unchanged_month_plans_nothing(
            first in usage(),
            second in usage(),
            state in state(),
            prepaid in 0i64..5000,
        ) {
            let v = version();
            let now = at(NOW);
            let month = AccountMonth { usage: &first, packs: packs(prepaid), current: None, state };
            let original = plan(month, &v, now).unwrap().unwrap();
            prop_assert_eq!(original.debited_fen, original.total_fen);
            prop_assert_eq!(original.after.balance_fen, state.balance_fen - original.debited_fen);

            let kept = stored(&original);
            let after_original = apply(packs(prepaid), &original);
            let again = AccountMonth {
                usage: &first,
                packs: after_original.clone(),
                current: Some(&kept),
                state: original.after,
            };
            prop_assert!(plan(again, &v, now).unwrap().is_none(), "an unchanged month plans nothing");

            let changed = AccountMonth {
                usage: &second,
                packs: after_original,
                current: Some(&kept),
                state: original.after,
            };
            if let Some(adjustment) = plan(changed, &v, now).unwrap() {
                prop_assert_eq!(adjustment.kind, RevisionKind::Adjustment);
                prop_assert_eq!(adjustment.revision, 2);
                prop_assert_eq!(adjustment.debited_fen, adjustment.total_fen - original.total_fen);
                prop_assert_eq!(adjustment.after.balance_fen, original.after.balance_fen - adjustment.debited_fen);
                // Over both revisions, the account paid exactly the latest bill.
                prop_assert_eq!(
                    original.debited_fen + adjustment.debited_fen,
                    adjustment.total_fen
                );
            }
        }

        /// Packs are never taken below zero, and an adjustment first hands back what the
        /// revision it replaces took.
        #[test]
        fn packs_are_never_over_consumed(first in usage(), second in usage(), prepaid in 0i64..5000) {
            let v = version();
            let now = at(NOW);
            let rich = ServiceState { balance_fen: 10_000_000, suspend_at: None, suspended: false };
            let month = AccountMonth { usage: &first, packs: packs(prepaid), current: None, state: rich };
            let original = plan(month, &v, now).unwrap().unwrap();
            let after = apply(packs(prepaid), &original);
            prop_assert!(after.iter().all(|p| p.remaining >= 0), "{after:?}");
            let kept = stored(&original);
            let changed = AccountMonth { usage: &second, packs: after.clone(), current: Some(&kept), state: original.after };
            if let Some(adjustment) = plan(changed, &v, now).unwrap() {
                let after2 = apply(after, &adjustment);
                prop_assert!(after2.iter().all(|p| p.remaining >= 0), "{after2:?}");
                // The packs end as if the month had been billed once, from scratch, with the
                // second usage.
                let fresh = AccountMonth { usage: &second, packs: packs(prepaid), current: None, state: rich };
                let once = plan(fresh, &v, now).unwrap().unwrap();
                prop_assert_eq!(after2, apply(packs(prepaid), &once));
            }
        }

        /// A notice goes out exactly when a debit leaves the balance negative (an adjustment
        /// of zero moves nothing and sends none); a credit never sends one, and restores a
        /// suspended service exactly when the balance comes back to zero or more.
        #[test]
        fn a_notice_is_planned_exactly_when_the_rules_say(
            first in usage(),
            second in usage(),
            state in state(),
        ) {
            let v = version();
            let now = at(NOW);
            let month = AccountMonth { usage: &first, packs: packs(0), current: None, state };
            let original = plan(month, &v, now).unwrap().unwrap();
            prop_assert_eq!(original.notice, original.after.balance_fen < 0);
            prop_assert!(!original.restored);
            let kept = stored(&original);
            let changed = AccountMonth {
                usage: &second,
                packs: apply(packs(0), &original),
                current: Some(&kept),
                state: original.after,
            };
            if let Some(a) = plan(changed, &v, now).unwrap() {
                if a.debited_fen > 0 {
                    prop_assert_eq!(a.notice, a.after.balance_fen < 0);
                } else {
                    prop_assert!(!a.notice);
                }
                let restores = a.debited_fen < 0 && original.after.suspended && a.after.balance_fen >= 0;
                prop_assert_eq!(a.restored, restores);
                if a.after.balance_fen >= 0 && a.debited_fen < 0 {
                    prop_assert_eq!(a.after.suspend_at, None);
                    prop_assert!(!a.after.suspended);
                }
            }
        }
    }

    #[test]
    fn a_balance_that_would_overflow_is_an_error_not_a_wrapped_number() {
        let usage = [ApiUsage {
            api: "EnhanceImage".into(),
            calls: 5000,
        }];
        let deep = ServiceState {
            balance_fen: i64::MIN + 10,
            suspend_at: None,
            suspended: false,
        };
        let month = AccountMonth {
            usage: &usage,
            packs: packs(0),
            current: None,
            state: deep,
        };
        assert!(matches!(
            plan(month, &version(), at(NOW)),
            Err(PlanError::OutOfRange { .. })
        ));
    }
}
