//! Month to date: what an account has used of a month not yet settled, what it would be billed
//! if the month ended now, and where the month is heading at the pace so far
//! (docs/rules.md, "Month to date").
//!
//! Nothing here prices on its own: the figure so far is [`compute_bill`] on the month's totals
//! and the packs as they stand, exactly what the settle computes, so once the month has ended
//! the estimate is the bill. The projection is the same rule applied to projected calls: each
//! API's calls so far scaled linearly from the part of the month elapsed to the whole month
//! (to the second, rounded half up to a whole call), priced against the same packs as if no
//! call had been taken from them yet.

use super::bill::{compute_bill, ApiUsage, BillDraft, BillError, BillLine};
use super::catalog::CatalogVersion;
use super::month::Month;
use super::packs::{PackBalance, PackKind};
use chrono::{DateTime, Utc};

/// The month an estimate is of, and when.
#[derive(Clone, Debug)]
pub struct MonthToDate {
    pub month: Month,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `--now`, or the month's end if it has ended.
    pub as_of: DateTime<Utc>,
    pub elapsed: Elapsed,
    pub version: CatalogVersion,
}

/// How far into the month the estimate is, in seconds: `so_far` of `whole` (both ≥ 0,
/// `so_far ≤ whole`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    pub so_far: i64,
    pub whole: i64,
}

impl Elapsed {
    /// `so_far` seconds of a month of `whole`, clamped into the month.
    pub fn new(so_far: i64, whole: i64) -> Elapsed {
        let whole = whole.max(0);
        Elapsed {
            so_far: so_far.clamp(0, whole),
            whole,
        }
    }

    /// The calls of the whole month at the pace of `calls` so far: `calls × whole / so_far`,
    /// rounded half up; `calls` itself at the month's very start (no pace yet) or end.
    pub fn project(self, calls: i64) -> i64 {
        if self.so_far == 0 || self.so_far == self.whole {
            return calls;
        }
        let (calls, so_far, whole) = (i128::from(calls), i128::from(self.so_far), i128::from(self.whole));
        let projected = (2 * calls * whole + so_far) / (2 * so_far);
        i64::try_from(projected).unwrap_or(i64::MAX)
    }
}

/// One pack's part in an API's month so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackUse {
    pub pack_id: String,
    pub kind: PackKind,
    /// Calls this month takes from it so far.
    pub used: i64,
    /// What is left of it after them.
    pub left: i64,
}

/// One API's month so far, and where it is heading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiEstimate {
    /// The line the settle would write now: calls, free, prepaid and billable calls, the tier
    /// reached (and its upper bound, the next tier's threshold), the unit price and the exact
    /// amount.
    pub line: BillLine,
    /// Free calls left of the month's free pack.
    pub free_left: i64,
    /// Every pack of the API that covers the month, in the order the settle takes from them.
    pub packs: Vec<PackUse>,
    pub projected_calls: i64,
    /// The line the settle would write for the projected calls.
    pub projected: BillLine,
}

/// An account's month so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountEstimate {
    /// One per API with calls or a pack, sorted by API.
    pub apis: Vec<ApiEstimate>,
    /// The bill if the month ended now: its exact total, the total rounded with the catalog
    /// version's strategy, and the rounding.
    pub so_far: BillDraft,
    /// The bill for the projected calls.
    pub projected: BillDraft,
}

/// The month so far of an account with `usage` (its totals) and `packs` (every pack covering
/// the month, the month's free packs included, as they stand before the month is billed).
/// APIs the account holds a pack for but has not called are listed with no calls, when
/// `version` prices them.
pub fn estimate(
    version: &CatalogVersion,
    usage: &[ApiUsage],
    packs: &[PackBalance],
    elapsed: Elapsed,
) -> Result<AccountEstimate, BillError> {
    let mut usage = usage.to_vec();
    for pack in packs {
        if version.apis.contains_key(&pack.api) && !usage.iter().any(|u| u.api == pack.api) {
            usage.push(ApiUsage {
                api: pack.api.clone(),
                calls: 0,
            });
        }
    }
    let projected_usage: Vec<ApiUsage> = usage
        .iter()
        .map(|u| ApiUsage {
            api: u.api.clone(),
            calls: elapsed.project(u.calls),
        })
        .collect();
    let mut after = packs.to_vec();
    let so_far = compute_bill(version, &usage, &mut after)?;
    let projected = compute_bill(version, &projected_usage, &mut packs.to_vec())?;
    let apis = so_far
        .lines
        .iter()
        .zip(&projected.lines)
        .map(|(line, projected)| {
            let mut held: Vec<PackUse> = after
                .iter()
                .filter(|p| p.api == line.api)
                .map(|p| PackUse {
                    pack_id: p.pack_id.clone(),
                    kind: p.kind,
                    used: line
                        .consumed
                        .iter()
                        .filter(|c| c.pack_id == p.pack_id)
                        .map(|c| c.calls)
                        .sum(),
                    left: p.remaining,
                })
                .collect();
            held.sort_by(|a, b| {
                let order = |u: &PackUse| {
                    let p = after.iter().find(|p| p.pack_id == u.pack_id).expect("a listed pack");
                    (p.kind, p.valid_until, p.purchased_at, p.pack_id.clone())
                };
                order(a).cmp(&order(b))
            });
            ApiEstimate {
                free_left: held.iter().filter(|p| p.kind == PackKind::Free).map(|p| p.left).sum(),
                packs: held,
                projected_calls: projected.total_calls,
                projected: projected.clone(),
                line: line.clone(),
            }
        })
        .collect();
    Ok(AccountEstimate {
        apis,
        so_far,
        projected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn seed() -> CatalogVersion {
        Catalog::built_in()
            .for_month("2026-10".parse().unwrap())
            .unwrap()
            .clone()
    }

    fn pack(id: &str, kind: PackKind, api: &str, remaining: i64) -> PackBalance {
        PackBalance {
            pack_id: id.into(),
            kind,
            api: api.into(),
            remaining,
            valid_until: at("2026-11-01T00:00:00Z"),
            purchased_at: at("2026-10-01T00:00:00Z"),
        }
    }

    fn usage(api: &str, calls: i64) -> ApiUsage {
        ApiUsage { api: api.into(), calls }
    }

    #[test]
    fn the_pace_is_scaled_to_the_whole_month_rounded_half_up() {
        let ten_days_of_thirty = Elapsed::new(10 * 86_400, 30 * 86_400);
        assert_eq!(ten_days_of_thirty.project(1_000), 3_000);
        // 1 call in 2 seconds of 3 is 1.5 calls for the month, rounded half up to 2.
        assert_eq!(Elapsed::new(2, 3).project(1), 2);
        assert_eq!(Elapsed::new(3, 4).project(1), 1);
        assert_eq!(Elapsed::new(0, 30).project(5), 5, "no pace at the month's start");
        assert_eq!(Elapsed::new(40, 30).project(5), 5, "clamped: the month has ended");
        assert_eq!(
            Elapsed::new(1, i64::MAX).project(i64::MAX),
            i64::MAX,
            "saturates, never wraps"
        );
    }

    #[test]
    fn free_and_prepaid_use_and_what_is_left_per_pack() {
        let v = seed();
        let api = v.apis.keys().next().unwrap().clone();
        let free = v.apis[&api].free_calls;
        let packs = vec![
            pack("free", PackKind::Free, &api, free),
            pack("prepaid", PackKind::Prepaid, &api, 100),
        ];
        let e = estimate(&v, &[usage(&api, free + 30)], &packs, Elapsed::new(1, 2)).unwrap();
        let a = e.apis.iter().find(|a| a.line.api == api).unwrap();
        assert_eq!(a.free_left, 0);
        assert_eq!(
            a.packs,
            vec![
                PackUse {
                    pack_id: "free".into(),
                    kind: PackKind::Free,
                    used: free,
                    left: 0
                },
                PackUse {
                    pack_id: "prepaid".into(),
                    kind: PackKind::Prepaid,
                    used: 30,
                    left: 70
                },
            ]
        );
        assert_eq!(a.line.billable_calls, 0);
        assert_eq!(a.projected_calls, 2 * (free + 30));
        assert_eq!(a.projected.billable_calls, 2 * (free + 30) - free - 100);
    }

    #[test]
    fn an_api_held_but_not_called_is_listed_with_nothing_used() {
        let v = seed();
        let apis: Vec<String> = v.apis.keys().cloned().collect();
        let packs: Vec<PackBalance> = apis
            .iter()
            .map(|a| pack(&format!("free:{a}"), PackKind::Free, a, 10))
            .collect();
        let e = estimate(&v, &[usage(&apis[0], 4)], &packs, Elapsed::new(1, 2)).unwrap();
        assert_eq!(e.apis.len(), apis.len());
        assert!(e.apis[1..].iter().all(|a| a.line.total_calls == 0 && a.free_left == 10));
        assert_eq!(e.apis[0].free_left, 6);
        assert_eq!(e.so_far.total, Decimal::ZERO);
    }

    proptest! {
        /// The figure so far is the bill the settle computes from the same totals and packs,
        /// whatever the usage; and a month that has ended projects to itself.
        #[test]
        fn so_far_is_the_bill(calls in proptest::collection::vec(0i64..3_000_000, 3), prepaid in 0i64..500_000) {
            let v = seed();
            let usage: Vec<ApiUsage> = v.apis.keys().zip(&calls).map(|(a, c)| usage(a, *c)).collect();
            let mut packs: Vec<PackBalance> =
                v.apis.values().map(|a| pack(&format!("free:{}", a.api), PackKind::Free, &a.api, a.free_calls)).collect();
            packs.push(pack("prepaid", PackKind::Prepaid, &usage[0].api, prepaid));
            let bill = compute_bill(&v, &usage, &mut packs.clone()).unwrap();
            let e = estimate(&v, &usage, &packs, Elapsed::new(30, 30)).unwrap();
            prop_assert_eq!(&e.so_far, &bill);
            prop_assert_eq!(&e.projected, &bill);
        }
    }
}
