//! Tier pricing of one API's month (docs/rules.md, rule 4).
//!
//! Volume pricing (the default, 阶梯到达): `amount = billable × unit price of the tier that the
//! basis count falls in`, where the basis is the month's total calls (pack-covered calls
//! included) or, if the catalog says so, the billable calls. Tier bounds are lower-inclusive.
//! Volume pricing is not monotonic at tier edges — 999,999 calls cost more than 1,000,000 —
//! and that is the rule, not a bug.
//!
//! Graduated pricing (阶梯累进) prices each slice of the billable calls at its own tier. With
//! basis `total` the billable calls are the last ones of the month (packs cover the first
//! calls), so they occupy positions `[total − billable, total)`; with basis `billable` they
//! occupy `[0, billable)`. No amount is rounded here: lines keep their exact amount.

use super::catalog::{ApiPricing, PricingMode, TierBasis};
use rust_decimal::Decimal;

/// The part of a line priced at one tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// 1-based tier number.
    pub tier: usize,
    pub calls: i64,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

/// The price of one API's billable calls for a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    /// 1-based tier used: the tier reached (volume) or the highest tier any slice fell in
    /// (graduated).
    pub tier: usize,
    /// Unit price of `tier`.
    pub unit_price: Decimal,
    /// Exact amount, never rounded.
    pub amount: Decimal,
    /// One slice for volume pricing, one per tier touched for graduated pricing.
    pub slices: Vec<Slice>,
}

/// 0-based index of the tier that `calls` falls in: the last tier whose `from` ≤ `calls`.
pub fn tier_index(pricing: &ApiPricing, calls: i64) -> usize {
    pricing.tiers.iter().rposition(|t| t.from <= calls).unwrap_or(0)
}

/// Prices `billable` calls out of a month `total`. Requires `0 ≤ billable ≤ total`.
/// Returns `None` only if the amount overflows the decimal range.
pub fn price(pricing: &ApiPricing, total: i64, billable: i64) -> Option<Priced> {
    debug_assert!(0 <= billable && billable <= total);
    match pricing.mode {
        PricingMode::Volume => {
            let basis = match pricing.tier_basis {
                TierBasis::Total => total,
                TierBasis::Billable => billable,
            };
            let i = tier_index(pricing, basis);
            let unit_price = pricing.tiers[i].unit_price;
            let amount = unit_price.checked_mul(Decimal::from(billable))?;
            let slice = Slice {
                tier: i + 1,
                calls: billable,
                unit_price,
                amount,
            };
            Some(Priced {
                tier: i + 1,
                unit_price,
                amount,
                slices: vec![slice],
            })
        }
        PricingMode::Graduated => {
            let start = match pricing.tier_basis {
                TierBasis::Total => total - billable,
                TierBasis::Billable => 0,
            };
            let end = start + billable;
            let mut slices = Vec::new();
            let mut amount = Decimal::ZERO;
            for (i, t) in pricing.tiers.iter().enumerate() {
                let lo = t.from.max(start);
                let hi = pricing.tier_upper(i).unwrap_or(i64::MAX).min(end);
                if lo < hi {
                    let calls = hi - lo;
                    let part = t.unit_price.checked_mul(Decimal::from(calls))?;
                    amount = amount.checked_add(part)?;
                    slices.push(Slice {
                        tier: i + 1,
                        calls,
                        unit_price: t.unit_price,
                        amount: part,
                    });
                }
            }
            let top = slices
                .last()
                .map(|s| s.tier - 1)
                .unwrap_or_else(|| tier_index(pricing, start));
            Some(Priced {
                tier: top + 1,
                unit_price: pricing.tiers[top].unit_price,
                amount,
                slices,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::{Catalog, Tier};
    use proptest::prelude::*;

    fn seed(api: &str) -> ApiPricing {
        Catalog::built_in().for_month("2026-10".parse().unwrap()).unwrap().apis[api].clone()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn the_seed_worked_examples_come_out_exactly() {
        let p = price(&seed("AssessQuality"), 2_000_000, 2_000_000 - 1000).unwrap();
        assert_eq!((p.tier, p.unit_price, p.amount), (2, d("0.0025"), d("4997.5")));
        let p = price(&seed("CropImage"), 500_000, 500_000 - 1000).unwrap();
        assert_eq!((p.tier, p.unit_price, p.amount), (1, d("0.002"), d("998")));
        let p = price(&seed("EnhanceImage"), 3_500_000, 3_500_000 - 1000).unwrap();
        assert_eq!((p.tier, p.unit_price, p.amount), (3, d("0.007"), d("24493")));
    }

    #[test]
    fn tier_edges_are_lower_inclusive() {
        let aq = seed("AssessQuality");
        assert_eq!(tier_index(&aq, 999_999), 0);
        assert_eq!(tier_index(&aq, 1_000_000), 1);
        assert_eq!(tier_index(&aq, 2_999_999), 1);
        assert_eq!(tier_index(&aq, 3_000_000), 2);
        assert_eq!(tier_index(&aq, 15_000_000), 3);
        assert_eq!(tier_index(&aq, 0), 0);
    }

    #[test]
    fn volume_pricing_is_not_monotonic_at_the_edge() {
        let aq = seed("AssessQuality");
        let below = price(&aq, 999_999, 999_999).unwrap().amount;
        let at = price(&aq, 1_000_000, 1_000_000).unwrap().amount;
        assert_eq!(below, d("2999.997"));
        assert_eq!(at, d("2500"));
        assert!(below > at);
    }

    #[test]
    fn tier_basis_billable_picks_the_tier_by_billable_calls() {
        let mut aq = seed("AssessQuality");
        aq.tier_basis = TierBasis::Billable;
        // 1,000,500 total, 1000 free: billable 999,500 is tier 1.
        let p = price(&aq, 1_000_500, 999_500).unwrap();
        assert_eq!((p.tier, p.amount), (1, d("2998.5")));
    }

    #[test]
    fn graduated_pricing_prices_each_slice_at_its_tier() {
        let mut aq = seed("AssessQuality");
        aq.mode = PricingMode::Graduated;
        // Total basis: 2,000,000 calls, the first 1000 free; billable calls are positions
        // [1000, 2,000,000): 999,000 at 0.003 and 1,000,000 at 0.0025.
        let p = price(&aq, 2_000_000, 1_999_000).unwrap();
        assert_eq!(p.amount, d("2997") + d("2500"));
        assert_eq!(p.tier, 2);
        assert_eq!(p.slices.len(), 2);
        assert_eq!(p.slices[0].calls + p.slices[1].calls, 1_999_000);
        // Billable basis: positions [0, 1,999,000): 1,000,000 at 0.003, 999,000 at 0.0025.
        aq.tier_basis = TierBasis::Billable;
        let p = price(&aq, 2_000_000, 1_999_000).unwrap();
        assert_eq!(p.amount, d("3000") + d("2497.5"));
    }

    #[test]
    fn nothing_billable_costs_nothing_but_still_names_a_tier() {
        let p = price(&seed("CropImage"), 800, 0).unwrap();
        assert_eq!((p.tier, p.amount), (1, Decimal::ZERO));
        let mut g = seed("CropImage");
        g.mode = PricingMode::Graduated;
        let p = price(&g, 2_000_000, 0).unwrap();
        assert_eq!((p.tier, p.amount), (2, Decimal::ZERO));
    }

    fn any_pricing() -> impl Strategy<Value = ApiPricing> {
        (
            prop::collection::vec((1i64..5_000_000, 0u32..100_000), 0..5),
            0u32..100_000,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(rest, first_price, graduated, total_basis)| {
                let mut froms: Vec<(i64, u32)> = rest;
                froms.sort();
                froms.dedup_by_key(|t| t.0);
                let mut tiers = vec![Tier {
                    from: 0,
                    unit_price: Decimal::new(first_price.into(), 5),
                }];
                tiers.extend(froms.into_iter().map(|(from, p)| Tier {
                    from,
                    unit_price: Decimal::new(p.into(), 5),
                }));
                ApiPricing {
                    api: "X".into(),
                    display_name: "X".into(),
                    product: String::new(),
                    free_calls: 0,
                    mode: if graduated {
                        PricingMode::Graduated
                    } else {
                        PricingMode::Volume
                    },
                    tier_basis: if total_basis {
                        TierBasis::Total
                    } else {
                        TierBasis::Billable
                    },
                    tiers,
                }
            })
    }

    proptest! {
        #[test]
        fn amounts_are_never_negative_and_slices_add_up(p in any_pricing(), total in 0i64..20_000_000, covered in 0i64..20_000_000) {
            let billable = (total - covered).max(0);
            let priced = price(&p, total, billable).unwrap();
            prop_assert!(priced.amount >= Decimal::ZERO);
            prop_assert_eq!(priced.slices.iter().map(|s| s.calls).sum::<i64>(), billable);
            prop_assert_eq!(priced.slices.iter().map(|s| s.amount).sum::<Decimal>(), priced.amount);
            prop_assert!(priced.tier >= 1 && priced.tier <= p.tiers.len());
        }

        #[test]
        fn volume_equals_billable_times_the_price_of_the_basis_tier(mut p in any_pricing(), total in 0i64..20_000_000, covered in 0i64..20_000_000) {
            p.mode = PricingMode::Volume;
            let billable = (total - covered).max(0);
            let basis = if p.tier_basis == TierBasis::Total { total } else { billable };
            let tier = p.tiers.iter().filter(|t| t.from <= basis).count();
            let priced = price(&p, total, billable).unwrap();
            prop_assert_eq!(priced.tier, tier);
            prop_assert_eq!(priced.amount, Decimal::from(billable) * p.tiers[tier - 1].unit_price);
        }

        #[test]
        fn graduated_with_billable_basis_never_costs_less_for_more_calls(mut p in any_pricing(), a in 0i64..10_000_000, extra in 0i64..10_000_000) {
            p.mode = PricingMode::Graduated;
            p.tier_basis = TierBasis::Billable;
            let less = price(&p, a, a).unwrap().amount;
            let more = price(&p, a + extra, a + extra).unwrap().amount;
            prop_assert!(more >= less);
        }
    }
}
