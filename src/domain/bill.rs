//! One account's bill for one month, computed from its usage totals and its packs
//! (docs/rules.md, rules 3–5).
//!
//! Each API with usage gives one line that keeps its exact amount. The bill's total is the sum
//! of the exact lines rounded to 0.01 CNY with the catalog version's strategy, and the
//! difference is kept as the rounding adjustment, so `lines + adjustment = total` exactly.

use super::catalog::{ApiPricing, CatalogVersion, PricingMode, TierBasis};
use super::money::Rounding;
use super::packs::{deduct, Consumption, PackBalance};
use super::pricing::{price, Slice};
use rust_decimal::Decimal;

/// One API's calls in the month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUsage {
    pub api: String,
    pub calls: i64,
}

/// One priced line of a bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillLine {
    pub api: String,
    pub total_calls: i64,
    pub free_calls: i64,
    pub prepaid_calls: i64,
    pub billable_calls: i64,
    /// 1-based tier used.
    pub tier: usize,
    /// Lower bound (inclusive) of `tier`.
    pub tier_from: i64,
    /// Upper bound (exclusive) of `tier`; `None` for the open-ended last tier.
    pub tier_to: Option<i64>,
    pub unit_price: Decimal,
    /// Exact: never rounded.
    pub amount: Decimal,
    pub mode: PricingMode,
    pub tier_basis: TierBasis,
    pub slices: Vec<Slice>,
    pub consumed: Vec<Consumption>,
}

/// A bill before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillDraft {
    pub catalog_version: String,
    pub rounding: Rounding,
    pub lines: Vec<BillLine>,
    /// Sum of the exact line amounts.
    pub exact_total: Decimal,
    /// `exact_total` rounded to 0.01 CNY with `rounding`.
    pub total: Decimal,
    /// `total − exact_total`.
    pub rounding_adjustment: Decimal,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    #[error("API '{api}' has usage but no price in catalog version '{version}'")]
    ApiNotInCatalog { api: String, version: String },
    #[error("calls for API '{api}' are negative or the amount is out of range")]
    OutOfRange { api: String },
}

/// Prices `usage` with `version`, taking calls from `packs` (whose `remaining` is lowered).
/// Lines come out in the order of `usage`'s APIs sorted by name.
pub fn compute_bill(
    version: &CatalogVersion,
    usage: &[ApiUsage],
    packs: &mut [PackBalance],
) -> Result<BillDraft, BillError> {
    let mut usage: Vec<&ApiUsage> = usage.iter().collect();
    usage.sort_by(|a, b| a.api.cmp(&b.api));
    let mut lines = Vec::with_capacity(usage.len());
    for u in usage {
        let pricing: &ApiPricing = version.apis.get(&u.api).ok_or_else(|| BillError::ApiNotInCatalog {
            api: u.api.clone(),
            version: version.version.clone(),
        })?;
        if u.calls < 0 {
            return Err(BillError::OutOfRange { api: u.api.clone() });
        }
        let d = deduct(&u.api, u.calls, packs);
        let p =
            price(pricing, u.calls, d.billable_calls).ok_or_else(|| BillError::OutOfRange { api: u.api.clone() })?;
        lines.push(BillLine {
            api: u.api.clone(),
            total_calls: u.calls,
            free_calls: d.free_calls,
            prepaid_calls: d.prepaid_calls,
            billable_calls: d.billable_calls,
            tier: p.tier,
            tier_from: pricing.tiers[p.tier - 1].from,
            tier_to: pricing.tier_upper(p.tier - 1),
            unit_price: p.unit_price,
            amount: p.amount,
            mode: pricing.mode,
            tier_basis: pricing.tier_basis,
            slices: p.slices,
            consumed: d.consumed,
        });
    }
    let exact_total = lines
        .iter()
        .try_fold(Decimal::ZERO, |acc, l| acc.checked_add(l.amount))
        .ok_or_else(|| BillError::OutOfRange { api: "(total)".into() })?;
    let total = version.rounding.to_fen_precision(exact_total);
    Ok(BillDraft {
        catalog_version: version.version.clone(),
        rounding: version.rounding,
        lines,
        exact_total,
        total,
        rounding_adjustment: total - exact_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{Catalog, Tier};
    use crate::domain::packs::PackKind;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn seed() -> CatalogVersion {
        Catalog::built_in()
            .for_month("2026-10".parse().unwrap())
            .unwrap()
            .clone()
    }

    fn free(api: &str) -> PackBalance {
        PackBalance {
            pack_id: format!("free-{api}"),
            kind: PackKind::Free,
            api: api.into(),
            remaining: 1000,
            valid_until: t("2026-10-31T16:00:00Z"),
            purchased_at: t("2026-09-30T16:00:00Z"),
        }
    }

    fn usage(api: &str, calls: i64) -> ApiUsage {
        ApiUsage { api: api.into(), calls }
    }

    #[test]
    fn the_three_seed_examples_on_one_bill() {
        let mut packs = vec![free("AssessQuality"), free("CropImage"), free("EnhanceImage")];
        let bill = compute_bill(
            &seed(),
            &[
                usage("EnhanceImage", 3_500_000),
                usage("AssessQuality", 2_000_000),
                usage("CropImage", 500_000),
            ],
            &mut packs,
        )
        .unwrap();
        let amounts: Vec<(&str, Decimal, i64, usize)> = bill
            .lines
            .iter()
            .map(|l| (l.api.as_str(), l.amount, l.free_calls, l.tier))
            .collect();
        assert_eq!(
            amounts,
            [
                ("AssessQuality", d("4997.5"), 1000, 2),
                ("CropImage", d("998"), 1000, 1),
                ("EnhanceImage", d("24493"), 1000, 3)
            ]
        );
        assert_eq!(bill.total.to_string(), "30488.50");
        assert_eq!(bill.rounding_adjustment, Decimal::ZERO);
        assert_eq!(bill.lines[1].tier_to, Some(1_000_000));
        assert_eq!(bill.lines[2].tier_from, 3_000_000);
    }

    #[test]
    fn bill_total_rounds_half_up_and_keeps_the_adjustment() {
        // 1,735 calls of AssessQuality: 735 billable × 0.003 = 2.205 → 2.21, adjustment 0.005.
        let mut packs = vec![free("AssessQuality")];
        let bill = compute_bill(&seed(), &[usage("AssessQuality", 1735)], &mut packs).unwrap();
        assert_eq!(bill.exact_total, d("2.205"));
        assert_eq!(bill.total.to_string(), "2.21");
        assert_eq!(bill.rounding_adjustment, d("0.005"));
    }

    #[test]
    fn usage_of_an_api_missing_from_the_version_is_an_error() {
        let e = compute_bill(&seed(), &[usage("Teleport", 5)], &mut []).unwrap_err();
        assert!(matches!(e, BillError::ApiNotInCatalog { .. }));
    }

    proptest! {
        #[test]
        fn lines_plus_adjustment_equal_the_total(
            calls in prop::collection::vec(0i64..20_000_000, 1..4),
            prices in prop::collection::vec(0u32..1_000_000, 1..4),
            rounding in prop_oneof![Just(Rounding::HalfUp), Just(Rounding::HalfEven), Just(Rounding::Truncate)],
            prepaid in 0i64..3_000_000,
        ) {
            let mut v = seed();
            v.rounding = rounding;
            let api_names = ["AssessQuality", "CropImage", "EnhanceImage"];
            for (i, p) in prices.iter().enumerate() {
                let a = v.apis.get_mut(api_names[i]).unwrap();
                a.tiers = vec![Tier { from: 0, unit_price: Decimal::new((*p).into(), 6) }];
            }
            let us: Vec<ApiUsage> = calls.iter().enumerate().map(|(i, c)| usage(api_names[i], *c)).collect();
            let mut packs = vec![free("AssessQuality"), free("CropImage"), free("EnhanceImage")];
            let mut pp = free("AssessQuality");
            pp.kind = PackKind::Prepaid;
            pp.pack_id = "pp".into();
            pp.remaining = prepaid;
            packs.push(pp);
            let bill = compute_bill(&v, &us, &mut packs).unwrap();
            let sum: Decimal = bill.lines.iter().map(|l| l.amount).sum();
            prop_assert_eq!(sum + bill.rounding_adjustment, bill.total);
            prop_assert_eq!(bill.total.scale(), 2);
            prop_assert!(bill.rounding_adjustment.abs() < d("0.01"));
            for l in &bill.lines {
                prop_assert!(l.amount >= Decimal::ZERO);
                prop_assert_eq!(l.free_calls + l.prepaid_calls + l.billable_calls, l.total_calls);
            }
            prop_assert!(packs.iter().all(|p| p.remaining >= 0));
        }

        /// Random accounts, packs and usage through the seed catalog: every invariant finance
        /// relies on, at once.
        #[test]
        fn random_months_keep_every_invariant(
            accounts in prop::collection::vec(
                (
                    prop::collection::vec((0usize..3, 1i64..20_000_000), 1..4),
                    prop::collection::vec((0usize..3, 0i64..2_000_000, 1u32..28, 1u32..28), 0..4),
                ),
                1..6,
            )
        ) {
            let v = seed();
            let apis = ["AssessQuality", "CropImage", "EnhanceImage"];
            for (usage_spec, packs_spec) in accounts {
                let mut totals = std::collections::BTreeMap::new();
                for (api, calls) in usage_spec {
                    *totals.entry(apis[api]).or_insert(0i64) += calls;
                }
                let usage: Vec<ApiUsage> = totals.iter().map(|(a, c)| usage(a, *c)).collect();
                let mut packs: Vec<PackBalance> = apis.iter().map(|a| free(a)).collect();
                for (k, (api, size, until, bought)) in packs_spec.into_iter().enumerate() {
                    packs.push(PackBalance {
                        pack_id: format!("pp{k}"),
                        kind: PackKind::Prepaid,
                        api: apis[api].into(),
                        remaining: size,
                        valid_until: t(&format!("2026-11-{until:02}T00:00:00Z")),
                        purchased_at: t(&format!("2026-09-{bought:02}T00:00:00Z")),
                    });
                }
                let before: std::collections::HashMap<String, i64> =
                    packs.iter().map(|p| (p.pack_id.clone(), p.remaining)).collect();
                let bill = compute_bill(&v, &usage, &mut packs).unwrap();
                // Lines plus the rounding adjustment are the total, to the fen.
                let sum: Decimal = bill.lines.iter().map(|l| l.amount).sum();
                prop_assert_eq!(sum + bill.rounding_adjustment, bill.total);
                prop_assert_eq!(bill.total, Rounding::HalfUp.to_fen_precision(sum));
                for l in &bill.lines {
                    // No negative amounts; every call is free, prepaid or billable.
                    prop_assert!(l.amount >= Decimal::ZERO);
                    prop_assert_eq!(l.free_calls + l.prepaid_calls + l.billable_calls, l.total_calls);
                    prop_assert!(l.free_calls <= 1000);
                    // Volume pricing: billable × the unit price of the tier the month's total reaches.
                    let tiers = &v.apis[&l.api].tiers;
                    let reached = tiers.iter().filter(|t| t.from <= l.total_calls).count();
                    prop_assert_eq!(l.tier, reached);
                    prop_assert_eq!(l.amount, Decimal::from(l.billable_calls) * tiers[reached - 1].unit_price);
                }
                // Packs are never over-consumed, and what they lost is what the lines took.
                for p in &packs {
                    prop_assert!(p.remaining >= 0 && p.remaining <= before[&p.pack_id]);
                }
                let taken: i64 = packs.iter().map(|p| before[&p.pack_id] - p.remaining).sum();
                let covered: i64 = bill.lines.iter().map(|l| l.free_calls + l.prepaid_calls).sum();
                prop_assert_eq!(taken, covered);
            }
        }
    }
}
