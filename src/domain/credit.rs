//! Credit notes: an operator gives money back against a settled bill (an outage, a disputed
//! charge), as a revision of kind `credit` (docs/rules.md, rule 9).
//!
//! A credit changes no line of the bill: the revision it writes holds the same lines and the
//! same pack use as the one it follows, and adds the amount to the credits the bill carries
//! (`credited_fen`), which every later revision keeps. What the account owes for the month is
//! the bill's total less its credits ([`amount_due`]), so a credit can never take more than
//! is still due, and a later adjustment for late usage moves only the difference in what is
//! due: it never charges the credit back. The credit reaches the balance as a recharge does:
//! it clears the arrears countdown, or restores a suspended service, once the balance is zero
//! or more (rule 7).

use super::arrears::{self, ServiceState};
use super::money::{to_fen, Rounding};
pub use super::settle::amount_due;
use super::settle::CurrentBill;

/// How much to credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditAmount {
    /// This many fen.
    Fen(i64),
    /// One line of the bill, whole: its exact amount, rounded to the fen with the bill's own
    /// rounding strategy (at most what is still due).
    Line(String),
    /// Everything still due: the bill waived.
    Rest,
}

/// What a credit writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditPlan {
    /// The revision the credit is written as: the current one's number plus one.
    pub revision: i32,
    /// The amount credited, in fen (> 0). The ledger entry is this, the revision moves minus this.
    pub amount_fen: i64,
    /// The credits the bill carries after this one.
    pub credited_fen: i64,
    pub before: ServiceState,
    pub after: ServiceState,
    /// The service comes back (the balance reached zero or more on a suspended account).
    pub restored: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    #[error("a credit must be more than 0.00")]
    NotPositive,
    #[error("nothing is due on the bill any more: its total {total_fen} fen is credited in full")]
    NothingDue { total_fen: i64 },
    #[error("a credit of {asked_fen} fen is more than the {due_fen} fen still due on the bill")]
    MoreThanDue { asked_fen: i64, due_fen: i64 },
    #[error("the bill has no line for API '{api}' (its lines: {lines})")]
    NoSuchLine { api: String, lines: String },
    #[error("the balance after the credit is beyond the largest amount billrun keeps")]
    OutOfRange,
}

/// Plans a credit of `ask` against `current`, the bill's current revision (rounded with
/// `rounding`), on an account in `state`.
pub fn plan_credit(
    current: &CurrentBill,
    rounding: Rounding,
    ask: &CreditAmount,
    state: ServiceState,
) -> Result<CreditPlan, CreditError> {
    let due_fen = amount_due(current.total_fen, current.credited_fen);
    if matches!(ask, CreditAmount::Fen(fen) if *fen <= 0) {
        return Err(CreditError::NotPositive);
    }
    if due_fen == 0 {
        return Err(CreditError::NothingDue {
            total_fen: current.total_fen,
        });
    }
    let amount_fen = match ask {
        CreditAmount::Fen(fen) if *fen > due_fen => {
            return Err(CreditError::MoreThanDue {
                asked_fen: *fen,
                due_fen,
            })
        }
        CreditAmount::Fen(fen) => *fen,
        CreditAmount::Rest => due_fen,
        CreditAmount::Line(api) => {
            let line = current
                .lines
                .iter()
                .find(|l| &l.api == api)
                .ok_or_else(|| CreditError::NoSuchLine {
                    api: api.clone(),
                    lines: current
                        .lines
                        .iter()
                        .map(|l| l.api.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let fen = to_fen(rounding.to_fen_precision(line.amount)).ok_or(CreditError::OutOfRange)?;
            fen.min(due_fen)
        }
    };
    if amount_fen <= 0 {
        // A line of 0.00 (all of it free or prepaid).
        return Err(CreditError::NotPositive);
    }
    let credited_fen = current
        .credited_fen
        .checked_add(amount_fen)
        .ok_or(CreditError::OutOfRange)?;
    let after = arrears::recharge(state, amount_fen).ok_or(CreditError::OutOfRange)?;
    Ok(CreditPlan {
        revision: current.revision + 1,
        amount_fen,
        credited_fen,
        before: state,
        after: after.state,
        restored: after.restored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bill::ApiUsage;
    use crate::domain::catalog::{Catalog, CatalogVersion};
    use crate::domain::packs::{PackBalance, PackKind};
    use crate::domain::settle::{plan, AccountMonth, Plan, StoredLine};
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn version() -> CatalogVersion {
        Catalog::built_in()
            .for_month("2026-10".parse().unwrap())
            .unwrap()
            .clone()
    }

    fn free_packs() -> Vec<PackBalance> {
        ["AssessQuality", "CropImage", "EnhanceImage"]
            .iter()
            .map(|api| PackBalance {
                pack_id: format!("free:{api}"),
                kind: PackKind::Free,
                api: (*api).into(),
                remaining: 1000,
                valid_until: at("2026-11-01T00:00:00Z"),
                purchased_at: at("2026-10-01T00:00:00Z"),
            })
            .collect()
    }

    fn bill(total_fen: i64, credited_fen: i64) -> CurrentBill {
        CurrentBill {
            revision: 1,
            total_fen,
            credited_fen,
            lines: vec![StoredLine {
                api: "CropImage".into(),
                total_calls: 3000,
                free_calls: 1000,
                prepaid_calls: 0,
                billable_calls: 2000,
                unit_price: "0.004".parse().unwrap(),
                amount: "8.005".parse().unwrap(),
            }],
            consumed: vec![],
        }
    }

    fn rich() -> ServiceState {
        ServiceState {
            balance_fen: 10_000,
            suspend_at: None,
            suspended: false,
        }
    }

    #[test]
    fn a_credit_takes_at_most_what_is_still_due() {
        let b = bill(1_000, 300);
        let p = plan_credit(&b, Rounding::HalfUp, &CreditAmount::Fen(700), rich()).unwrap();
        assert_eq!((p.revision, p.amount_fen, p.credited_fen), (2, 700, 1_000));
        assert_eq!(p.after.balance_fen, 10_700);
        assert_eq!(
            plan_credit(&b, Rounding::HalfUp, &CreditAmount::Fen(701), rich()),
            Err(CreditError::MoreThanDue {
                asked_fen: 701,
                due_fen: 700
            })
        );
        assert_eq!(
            plan_credit(&b, Rounding::HalfUp, &CreditAmount::Fen(0), rich()),
            Err(CreditError::NotPositive)
        );
        assert_eq!(
            plan_credit(&bill(1_000, 1_000), Rounding::HalfUp, &CreditAmount::Rest, rich()),
            Err(CreditError::NothingDue { total_fen: 1_000 })
        );
        assert_eq!(
            plan_credit(&b, Rounding::HalfUp, &CreditAmount::Rest, rich())
                .unwrap()
                .amount_fen,
            700
        );
    }

    #[test]
    fn a_whole_line_is_its_amount_rounded_as_the_bill_is() {
        // 8.005 CNY: 8.01 half up, 8.00 half even and truncated.
        let b = bill(10_000, 0);
        let line = CreditAmount::Line("CropImage".into());
        assert_eq!(
            plan_credit(&b, Rounding::HalfUp, &line, rich()).unwrap().amount_fen,
            801
        );
        assert_eq!(
            plan_credit(&b, Rounding::HalfEven, &line, rich()).unwrap().amount_fen,
            800
        );
        assert_eq!(
            plan_credit(&b, Rounding::Truncate, &line, rich()).unwrap().amount_fen,
            800
        );
        // Never more than is still due.
        assert_eq!(
            plan_credit(&bill(10_000, 9_500), Rounding::HalfUp, &line, rich())
                .unwrap()
                .amount_fen,
            500
        );
        assert!(matches!(
            plan_credit(&b, Rounding::HalfUp, &CreditAmount::Line("EnhanceImage".into()), rich()),
            Err(CreditError::NoSuchLine { .. })
        ));
    }

    #[test]
    fn a_credit_restores_a_suspended_service_once_the_balance_is_zero_or_more() {
        let suspended = ServiceState {
            balance_fen: -500,
            suspend_at: Some(at("2026-11-02T00:00:00Z")),
            suspended: true,
        };
        let p = plan_credit(&bill(1_000, 0), Rounding::HalfUp, &CreditAmount::Fen(400), suspended).unwrap();
        assert!(!p.restored && p.after.suspended && p.after.balance_fen == -100);
        let p = plan_credit(&bill(1_000, 0), Rounding::HalfUp, &CreditAmount::Fen(500), suspended).unwrap();
        assert!(p.restored && !p.after.suspended && p.after.suspend_at.is_none());
    }

    /// The revision a plan leaves behind.
    fn kept(p: &Plan) -> CurrentBill {
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

    /// A month's usage, an API's calls possibly zero: a retraction takes a line to zero calls.
    fn usage() -> impl Strategy<Value = Vec<ApiUsage>> {
        (0i64..3_000_000, 0i64..30_000, any::<bool>()).prop_map(|(crop, enhance, keep_zero)| {
            [("CropImage", crop), ("EnhanceImage", enhance)]
                .into_iter()
                .filter(|(_, calls)| *calls > 0 || keep_zero)
                .map(|(api, calls)| ApiUsage { api: api.into(), calls })
                .collect()
        })
    }

    /// One step of a month's life after its first bill.
    #[derive(Clone, Debug)]
    enum Step {
        /// Late usage, a correction or a retraction: the month's usage is now this.
        Usage(Vec<ApiUsage>),
        /// An operator credits this share (in thousandths) of what is still due.
        Credit(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![usage().prop_map(Step::Usage), (1u16..=1000).prop_map(Step::Credit)]
    }

    proptest! {
        /// Money is conserved through any mix of credits and adjustments (for late usage or a
        /// retraction, which may take a line to zero calls, or a bill to zero): the balance is the
        /// opening balance less everything the revisions moved, what they moved adds up to
        /// what the last revision says is due, nothing due is ever below zero, a credit never
        /// takes more than was due, and the credits the bill carries never shrink.
        #[test]
        fn credits_and_adjustments_conserve_money(
            first in usage(),
            steps in prop::collection::vec(step(), 1..8),
            opening in -100_000i64..100_000,
        ) {
            let v = version();
            let now = at("2026-11-01T02:00:00+08:00");
            let state = ServiceState { balance_fen: opening, suspend_at: None, suspended: false };
            let mut packs = free_packs();
            let month = AccountMonth { usage: &first, packs: packs.clone(), current: None, state };
            let Some(original) = plan(month, &v, now).unwrap() else { return Ok(()) };
            let mut moved = original.debited_fen;
            let mut state = original.after;
            let mut current = kept(&original);
            for pack in &mut packs {
                pack.remaining += original.pack_deltas.get(&pack.pack_id).copied().unwrap_or(0);
            }
            for s in steps {
                let credited_before = current.credited_fen;
                match s {
                    Step::Usage(u) => {
                        let month = AccountMonth { usage: &u, packs: packs.clone(), current: Some(&current), state };
                        if let Some(a) = plan(month, &v, now).unwrap() {
                            prop_assert_eq!(a.credited_fen, credited_before);
                            moved += a.debited_fen;
                            state = a.after;
                            for pack in &mut packs {
                                pack.remaining += a.pack_deltas.get(&pack.pack_id).copied().unwrap_or(0);
                                prop_assert!(pack.remaining >= 0);
                            }
                            current = kept(&a);
                        }
                    }
                    Step::Credit(share) => {
                        let due = amount_due(current.total_fen, current.credited_fen);
                        let fen = (Decimal::from(due) * Decimal::from(share) / Decimal::from(1000)).floor();
                        let fen = i64::try_from(fen).unwrap();
                        match plan_credit(&current, Rounding::HalfUp, &CreditAmount::Fen(fen), state) {
                            Ok(c) => {
                                prop_assert!(c.amount_fen <= due);
                                moved -= c.amount_fen;
                                state = c.after;
                                current.revision = c.revision;
                                current.credited_fen = c.credited_fen;
                            }
                            Err(CreditError::NotPositive | CreditError::NothingDue { .. }) => prop_assert!(fen == 0 || due == 0),
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                }
                prop_assert!(current.credited_fen >= credited_before);
                let due = amount_due(current.total_fen, current.credited_fen);
                prop_assert!(due >= 0);
                prop_assert_eq!(moved, due, "the account paid exactly what the last revision says is due");
                prop_assert_eq!(state.balance_fen, opening - moved);
            }
        }
    }
}
